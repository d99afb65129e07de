"""Deployment phase (seed steps 25-29): run the approved package on its target and smoke
test it with held-out Shadow Twin data."""

import json

import dagster as dg

from assets.metering import metered
from assets.partitions import dac_partitions
from iv_pipelines.paths import atomic_write_text
from iv_pipelines.request import DacRequest
from resources.deploy import DeployerResource
from resources.mesh import AsiRegistryResource
from resources.sensing import SensingResource
from resources.storage import FactoryStorage

OWNERS = ["team:dac-factory"]


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
    pointer = json.loads((storage.root / "packages" / dac_id / "current.json").read_text())
    if pointer["digest"] != shield_review["package_digest"]:
        raise dg.Failure(description="the package changed after review; re-run shield_review")
    pkg_dir = Path(pointer["directory"])
    target = deployer.resolve_target(dac_request.target)
    manifest = json.loads((pkg_dir / "manifest.json").read_text())
    try:
        if target == "local":
            rec = deployer.local(storage.root).deploy(pkg_dir, dac_id, pointer["version"])
        elif target == "docker":
            rec = deployer.docker().deploy(
                pkg_dir,
                dac_id,
                pointer["version"],
                manifest["deployment"]["image"],
                manifest["deployment"]["resources"]["memory"],
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
    gateways = register_capsule(
        registry.get(storage.root), dac_id, target, rec.url or "", caps, manifest["energy_signature"]
    )
    context.log.info(f"ASI: {dac_id} registered with capabilities {caps}, linked to {gateways}")
    record = rec.to_json() | {
        "smoke": smoke.to_json() if smoke else None,
        "capabilities": caps,
        "gateways": gateways,
    }
    atomic_write_text(
        storage.root / "deployments" / dac_id / "deployment.json", json.dumps(record, indent=2) + "\n"
    )
    if smoke is not None and smoke.accuracy <= 0.5:
        raise dg.Failure(
            description=f"smoke test failed: the deployed capsule got {smoke.correct}/{smoke.n} held-out episodes right",
            metadata={"errors": dg.MetadataValue.json(smoke.errors)},
        )
    md = {
        "target": target,
        "version": pointer["version"],
        "url": rec.url or "",
        "details": dg.MetadataValue.json(rec.details),
        "asi_capabilities": ", ".join(caps),
        "asi_gateways": ", ".join(gateways),
    }
    if smoke:
        md |= {
            "smoke_accuracy": round(smoke.accuracy, 4),
            "smoke_n": smoke.n,
            "latency_ms_p50": round(smoke.latency_ms_p50, 2),
            "latency_ms_p99": round(smoke.latency_ms_p99, 2),
            "smoke_per_class": dg.MetadataValue.json(smoke.per_class_accuracy),
        }
    return dg.Output(record, metadata=md)
