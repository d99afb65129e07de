"""Deployment phase: the service-mesh snapshot (TTF routes, re-routing logged to the Atlas)."""

import json

import dagster as dg

from iv_pipelines.paths import atomic_write_text
from resources.deploy import EnergyAtlasResource
from resources.mesh import AsiRegistryResource, TtfRouterResource
from resources.storage import FactoryStorage

OWNERS = ["team:dac-factory"]


@dg.asset(
    group_name="deployment",
    owners=OWNERS,
    kinds={"scipy", "sqlite"},
    deps=["dac_deployment"],
    description=(
        "Service-mesh snapshot: TTF node costs (E + 0.5 dE_dt + 2 S, floored) over the ASI "
        "registry's topology, shortest routes from every deployed DAC capsule to the cheapest "
        "ledger, storage and energy services (unhealthy services excluded), re-routed only when "
        "cheaper by the hysteresis margin; every (re)route is a FOLLOWED_ROUTE in the Energy Atlas."
    ),
)
def service_mesh(
    context: dg.AssetExecutionContext,
    storage: FactoryStorage,
    registry: AsiRegistryResource,
    router: TtfRouterResource,
    atlas: EnergyAtlasResource,
) -> dg.MaterializeResult:
    import time

    from iv_pipelines.mesh.snapshot import load_previous, take_snapshot

    reg = registry.get(storage.root)
    path = storage.root / "mesh" / "routes.json"
    snap = take_snapshot(reg, load_previous(path), router.cost_floor, router.hysteresis)
    now_ms = int(time.time() * 1000)
    with atlas.open(storage.root) as graph:
        for key in snap.migrated:
            r = snap.routes[key]
            graph.followed_route(r["dac"], f"{key}@{now_ms}", r["path"][0], r["target"], r["cost"], now_ms)
            graph.add_service(r["target"], r["provider"], r["category"], [r["category"]])
            graph.uses_service(r["dac"], r["target"])
    atomic_write_text(path, json.dumps(snap.routes, indent=2, sort_keys=True) + "\n")
    context.log.info(
        f"{snap.services} services, {snap.links} links; routes in {snap.routes_seconds * 1000:.0f} ms; "
        f"{len(snap.migrated)} (re)routed, {len(snap.kept)} kept by hysteresis"
    )
    table = "| route | target | hops | cost |\n|---|---|---|---|\n" + "\n".join(
        f"| {k} | {r['target']} | {len(r['path']) - 1} | {r['cost']:.2f} |"
        for k, r in sorted(snap.routes.items())
    )
    return dg.MaterializeResult(
        metadata={
            "services": snap.services,
            "links": snap.links,
            "healthy_services": snap.healthy,
            "routes_ms": round(snap.routes_seconds * 1000, 1),
            "rerouted": len(snap.migrated),
            "kept_by_hysteresis": len(snap.kept),
            "routes": dg.MetadataValue.md(table if snap.routes else "(no deployed capsule registered yet)"),
            "routes_path": dg.MetadataValue.path(str(path)),
        }
    )
