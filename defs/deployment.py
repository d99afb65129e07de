"""UI group `deployment` (lifecycle steps 27-32): the deployed capsule, the service-mesh
snapshot (TTF routes) and the Capsule Pin records; the mesh job, its weekly schedule and the
sensor that runs it after each deployment."""

import json

import dagster as dg

from defs.common import OWNERS, dac_partitions, metered, schedule, tidy
from iv_pipelines.paths import atomic_write_text
from iv_pipelines.request import DacRequest
from resources.deploy import DeployerResource, EnergyAtlasResource
from resources.mesh import AsiRegistryResource, TtfRouterResource
from resources.sensing import SensingResource
from resources.storage import FactoryStorage


@dg.asset(
    partitions_def=dac_partitions,
    group_name="deployment",
    owners=OWNERS,
    kinds={"fastapi"},
    description=(
        "Deploys the approved package through the Deployer (local supervised process by default; "
        "Docker; Kubernetes), waits for readiness, then smoke-tests /v1/predict with held-out "
        "Shadow Twin episodes of the client room and records accuracy and latency."
    ),
)
@metered
def dac_deployment(
    context: dg.AssetExecutionContext,
    dac_request: DacRequest,
    shield_review: dict,
    storage: FactoryStorage,
    deployer: DeployerResource,
    sensing: SensingResource,
    registry: AsiRegistryResource,
) -> dg.Output[dict]:
    from pathlib import Path

    from iv_pipelines.deploy import DeployError
    from iv_pipelines.deploy.smoke import run_smoke, smoke_payloads
    from iv_pipelines.sensing.pipeline import client_resident, client_room

    dac_id = context.partition_key
    if not shield_review["decision"]["approved"]:
        raise dg.Failure(
            description="AI Shield rejected the package: " + "; ".join(shield_review["decision"]["reasons"])
        )
    pointer = storage.layout.current_package(dac_id)
    if pointer is None:
        raise dg.Failure(description=f"no package for {dac_id}: materialize dac_package first")
    if pointer["digest"] != shield_review["package_digest"]:
        raise dg.Failure(description="the package changed after review; re-run shield_review")
    pkg_dir = Path(pointer["directory"])
    target = deployer.resolve_target(dac_request.target)
    manifest = json.loads((pkg_dir / "manifest.json").read_text())
    from iv_pipelines.deploy.canary import CanaryController, DeploymentHistory

    history = DeploymentHistory(storage.layout, dac_id)
    from iv_pipelines.deploy.targets import INFERENCE_LOG_IN_CONTAINER, inference_log_env

    req_doc = dac_request.model_dump(mode="json")
    # an evolution run (a sensor saw drift or low feedback accuracy) canaries its version beside
    # the deployed one; every other run replaces the deployment
    trigger = context.run.tags.get("iv/trigger", "")
    live = storage.layout.deployment(dac_id) or {}
    canary = (
        target == "local"
        and trigger in ("drift", "feedback_accuracy")
        and bool(live.get("url"))
        and live.get("version") != pointer["version"]
        and deployer.local(storage.root).status(dac_id).get("ready", False)
    )
    try:
        if canary:
            st = CanaryController(storage.layout, deployer.local(storage.root)).start(
                dac_id, pkg_dir, pointer["version"], reason=context.run.tags.get("iv/reason", trigger)
            )
            from iv_pipelines.deploy.targets import DeploymentRecord

            rec = DeploymentRecord(
                "local",
                dac_id,
                pointer["version"],
                st["url"],
                {"canary_of": live.get("version"), "share": st["share"]},
            )
            context.log.info(
                f"{dac_id} {pointer['version']} canaried beside {live.get('version')} ({st['share']:.0%} of windows)"
            )
        elif target == "local":
            # the capsule's inference log stays in the client's storage namespace
            log_dir = storage.layout.inference_log_dir(dac_id)
            rec = deployer.local(storage.root).deploy(
                pkg_dir, dac_id, pointer["version"], env=inference_log_env(req_doc, str(log_dir))
            )
        elif target == "docker":
            rec = deployer.docker().deploy(
                pkg_dir,
                dac_id,
                pointer["version"],
                manifest["deployment"]["image"],
                manifest["deployment"]["resources"]["memory"],
                inference_log=(
                    storage.layout.inference_log_dir(dac_id),
                    inference_log_env(req_doc, INFERENCE_LOG_IN_CONTAINER),
                ),
            )
        else:
            rec = deployer.kubernetes().deploy(pkg_dir, dac_id, pointer["version"])
    except DeployError as e:
        raise dg.Failure(description=str(e)) from e
    context.log.info(f"{dac_id} {pointer['version']} deployed on {target}: {rec.url}")
    smoke = None
    if target in ("local", "docker"):
        from iv_pipelines.sensing.calibration import resident_at
        from iv_pipelines.sensing.device import Device

        cal_path = storage.dac_dir(dac_id) / "twin" / "calibration.json"
        cal = json.loads(cal_path.read_text()) if cal_path.exists() else {}
        fit = cal.get("fit")
        payloads = smoke_payloads(
            client_room(dac_request),
            resident_at(client_resident(dac_request), (fit or {}).get("walk_speed_ms")),
            deployer.smoke_episodes_per_activity,
            sensing.seed,
            device=Device.from_dict(fit["device"]) if fit else None,
            amplitude_only=bool(cal.get("amplitude_only")),
        )
        smoke = run_smoke(rec.url, payloads)
        context.log.info(
            f"smoke test: {smoke.correct}/{smoke.n} held-out twin episodes classified right "
            f"({smoke.accuracy:.3f}); latency p50 {smoke.latency_ms_p50:.1f} ms, p99 {smoke.latency_ms_p99:.1f} ms"
        )
    from iv_pipelines.mesh.snapshot import capsule_capabilities, register_capsule

    vh = json.loads((storage.dac_dir(dac_id) / "validated_hypothesis.json").read_text())
    caps = capsule_capabilities(dac_request.domain, vh["hypothesis"]["task"], manifest)
    gateways = []
    if not canary:  # the mesh keeps routing to production until the canary is promoted
        gateways = register_capsule(
            registry.get(storage.root), dac_id, target, rec.url or "", caps, manifest["energy_signature"]
        )
        context.log.info(f"ASI: {dac_id} registered with capabilities {caps}, linked to {gateways}")
    monitoring = []
    if rec.url and not canary:
        from iv_pipelines.deploy.monitoring import write_monitoring

        monitoring = write_monitoring(
            storage.layout.monitoring_dir(dac_id), dac_id, pointer["version"], rec.url
        )
    record = rec.to_json() | {
        "smoke": smoke.to_json() if smoke else None,
        "capabilities": caps,
        "gateways": gateways,
        "monitoring": [str(p) for p in monitoring],
    }
    if canary:  # the production deployment record stays; the canary's is its own state file
        record["canary"] = True
    else:
        atomic_write_text(storage.layout.deployment_file(dac_id), json.dumps(record, indent=2) + "\n")
        history.record("deployed", pointer["version"], trigger or "lifecycle run", url=rec.url or "")
    if smoke is not None and smoke.accuracy <= 0.5:
        raise dg.Failure(
            description=f"smoke test failed: the deployed capsule got {smoke.correct}/{smoke.n} held-out episodes right",
            metadata=tidy({"errors": dg.MetadataValue.json(smoke.errors)}),
        )
    md = {
        "target": target,
        "version": pointer["version"],
        "aliases": dg.MetadataValue.json(history.aliases()),
        "url": rec.url or "",
        "details": dg.MetadataValue.json(rec.details),
        "asi_capabilities": ", ".join(caps),
        "asi_gateways": ", ".join(gateways),
    }
    if monitoring:
        md["prometheus_config"] = dg.MetadataValue.path(str(monitoring[0]))
        md["grafana_dashboard"] = dg.MetadataValue.path(str(monitoring[1]))
    if smoke:
        md |= {
            "smoke_accuracy": round(smoke.accuracy, 4),
            "smoke_n": smoke.n,
            "latency_ms_p50": round(smoke.latency_ms_p50, 2),
            "latency_ms_p99": round(smoke.latency_ms_p99, 2),
            "smoke_per_class": dg.MetadataValue.json(smoke.per_class_accuracy),
        }
    return dg.Output(record, metadata=md)


@dg.asset(
    pool="atlas",
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
    path = storage.layout.mesh_routes_file()
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
        metadata=tidy(
            {
                "services": snap.services,
                "links": snap.links,
                "healthy_services": snap.healthy,
                "routes_ms": round(snap.routes_seconds * 1000, 1),
                "rerouted": len(snap.migrated),
                "kept_by_hysteresis": len(snap.kept),
                "routes_cost_rose": dg.MetadataValue.json(
                    {k: {"before": b, "now": n} for k, (b, n) in snap.rose.items()}
                ),
                "routes": dg.MetadataValue.md(
                    table if snap.routes else "(no deployed capsule registered yet)"
                ),
                "routes_path": dg.MetadataValue.path(str(path)),
            }
        )
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
    for dac in storage.layout.deployed_dacs():
        try:
            pin = build_pin(storage.root, dac, local)
        except (OSError, KeyError, ValueError) as e:
            context.log.warning(f"{dac}: no pin ({type(e).__name__}: {e})")
            continue
        atomic_write_text(storage.layout.pin_file(dac), pin.model_dump_json(indent=2) + "\n")
        pins[dac] = pin.status
    return dg.MaterializeResult(
        metadata=tidy(
            {
                "pins": len(pins),
                "status": dg.MetadataValue.json(pins),
                "pins_dir": dg.MetadataValue.path(str(storage.layout.pins_dir())),
            }
        )
    )


service_mesh_job = dg.define_asset_job(
    name="service_mesh_job",
    selection=dg.AssetSelection.assets("service_mesh", "capsule_pins"),
    description="Recomputes TTF routes over the ASI registry, re-routes deployed capsules (hysteresis), refreshes Capsule Pin records.",
)

service_mesh_schedule = schedule(
    "service_mesh_schedule",
    service_mesh_job,
    "0 5 * * 0",
    "Sundays 05:00: recompute TTF routes and re-route deployed capsules (seed: service_mesh_rebalancing).",
)


@dg.asset_sensor(
    asset_key=dg.AssetKey("dac_deployment"),
    job=service_mesh_job,
    name="dac_deployed_sensor",
    description="A new deployment (registered in the ASI registry by dac_deployment) gets its TTF routes and Capsule Pin record.",
)
def dac_deployed_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    mat = asset_event.asset_materialization
    return dg.RunRequest(
        run_key=f"mesh:{mat.partition}:{int(asset_event.timestamp * 1000)}",
        tags={"iv/trigger": "dac_deployed", "iv/dac": mat.partition or ""},
    )
