"""Deployment phase: the service-mesh snapshot (TTF routes, re-routing logged to the Atlas)."""

import json

import dagster as dg

from iv_pipelines.paths import atomic_write_text
from resources.deploy import DeployerResource, EnergyAtlasResource
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
            "routes_cost_rose": dg.MetadataValue.json(
                {k: {"before": b, "now": n} for k, (b, n) in snap.rose.items()}
            ),
            "routes": dg.MetadataValue.md(table if snap.routes else "(no deployed capsule registered yet)"),
            "routes_path": dg.MetadataValue.path(str(path)),
        }
    )


@dg.asset(
    group_name="operations",
    owners=OWNERS,
    kinds={"ladybug"},
    deps=["service_mesh"],
    description=(
        "energy_atlas_optimization: the last 24 h of DAC energy trajectories against the 24 h "
        "before (rising DACs), and the routes whose cost rose since the last routing snapshot "
        "(service_mesh recomputes the routing tables in the same job)."
    ),
)
def energy_trends(
    context: dg.AssetExecutionContext, storage: FactoryStorage, atlas: EnergyAtlasResource
) -> dg.MaterializeResult:
    import time

    now = int(time.time() * 1000)
    day = 86_400_000
    rows = []
    with atlas.open(storage.root) as graph:
        dacs = [r["id"] for r in graph.run("MATCH (d:DAC) RETURN d.id AS id ORDER BY id")]
        for d in dacs:
            cur = [s.E_state for s in graph.trajectory(f"dac:{d}", now - day, now)]
            prev = [s.E_state for s in graph.trajectory(f"dac:{d}", now - 2 * day, now - day)]
            if cur and prev:
                a, b = sum(prev) / len(prev), sum(cur) / len(cur)
                rows.append((d, a, b, (b - a) / a if a else 0.0))
    rising = [r for r in rows if r[3] > 0.10]
    mesh = context.instance.get_latest_materialization_event(dg.AssetKey("service_mesh"))
    rose = (
        mesh.asset_materialization.metadata["routes_cost_rose"].value
        if mesh and "routes_cost_rose" in mesh.asset_materialization.metadata
        else {}
    )
    table = (
        "| DAC | mean E previous 24 h (J) | mean E last 24 h (J) | change |\n|---|---|---|---|\n"
        + "\n".join(f"| {d} | {a:.1f} | {b:.1f} | {c:+.1%} |" for d, a, b, c in rows)
    )

    return dg.MaterializeResult(
        metadata={
            "dacs_compared": len(rows),
            "rising_dacs": dg.MetadataValue.json([r[0] for r in rising]),
            "routes_cost_rose": dg.MetadataValue.json(rose),
            "trends": dg.MetadataValue.md(table if rows else "(no DAC with states in both windows)"),
        }
    )


@dg.asset(
    group_name="deployment",
    owners=OWNERS,
    kinds={"json"},
    deps=["dac_deployment"],
    description=(
        "Capsule Pin records (schema iv_pipelines/ops/pins.py): one per deployed DAC under "
        "<storage>/pins/, what a client-facing pin shows (identity, endpoint, status, health "
        "score, energy). Refreshed with the routes when a DAC is deployed (dac_deployed_sensor)."
    ),
)
def capsule_pins(
    context: dg.AssetExecutionContext, storage: FactoryStorage, deployer: DeployerResource
) -> dg.MaterializeResult:
    from iv_pipelines.ops.pins import build_pin
    from iv_pipelines.paths import atomic_write_text

    local = deployer.local(storage.root)
    pins = {}
    for dep in sorted((storage.root / "deployments").glob("*/deployment.json")):
        dac = dep.parent.name
        try:
            pin = build_pin(storage.root, dac, local)
        except (OSError, KeyError, ValueError) as e:
            context.log.warning(f"{dac}: no pin ({type(e).__name__}: {e})")
            continue
        atomic_write_text(storage.root / "pins" / f"{dac}.json", pin.model_dump_json(indent=2) + "\n")
        pins[dac] = pin.status
    return dg.MaterializeResult(
        metadata={
            "pins": len(pins),
            "status": dg.MetadataValue.json(pins),
            "pins_dir": dg.MetadataValue.path(str(storage.root / "pins")),
        }
    )
