"""UI group `packaging` (lifecycle steps 11-14, 20-24): the measured energy signature, the
sealed DAC package, and the AI Shield review before deployment."""

import json

import dagster as dg

from defs.common import (
    OWNERS,
    dac_partitions,
    metered,
    step_observations,
    tidy,
)
from defs.proof import upstream_versions
from iv_pipelines.deploy.step_sizes import table_md
from iv_pipelines.paths import atomic_write_text
from resources.deploy import EnergyAtlasResource, PackagingResource
from resources.proof import ProofResource
from resources.storage import FactoryStorage

# the lifecycle steps that produce a DAC (shared assets are amortised over DACs, not counted)
METERED_STEPS = (
    "dac_request",
    "hypotheses",
    "shadow_twin_context",
    "validated_hypothesis",
    "lora_adapter",
    "lineage_proof",
    "utid",
)

PACKAGE_PROVENANCE_CHECK = "provenance_verifies"  # the lineage_proof check of the same name: phase 2

POLICY_CHECK = "shield_policies_pass"

DECISION_CHECK = "shield_approves"


def _current_package(storage: FactoryStorage, dac_id: str) -> dict:
    cur = storage.layout.current_package(dac_id)
    if cur is None:
        raise dg.Failure(
            description=f"no package for {dac_id}: materialize dac_package first "
            f"({storage.layout.current_pointer(dac_id)} missing)"
        )
    return cur


def latest_step_energy(instance: dg.DagsterInstance, asset: str, partition: str) -> dict | None:
    """The newest metered observation of `asset` for `partition` (None: never metered)."""
    for _, md, run_id in step_observations(instance, asset, partition, limit=1):
        return md | {"run_id": run_id}
    return None


def _measured_step_sizes(instance: dg.DagsterInstance, dac_id: str) -> dict:
    from iv_pipelines.deploy.step_sizes import sizes_from

    return sizes_from(
        {n: [e] for n in METERED_STEPS if (e := latest_step_energy(instance, n, dac_id)) is not None}
    )


@dg.asset(
    partitions_def=dac_partitions,
    pool="atlas",
    group_name="packaging",
    owners=OWNERS,
    kinds={"python"},
    deps=list(METERED_STEPS),
    description=(
        "Measured energy of producing this DAC: every lifecycle step is metered (process CPU "
        "time x a documented per-core power model; RAPL and NVML counters where readable). "
        "E_state (J), dE_dt (W, mean power over the steps), S_state (normalised entropy of energy "
        "across steps, 0..1); written to the Energy Atlas."
    ),
)
def energy_signature(
    context: dg.AssetExecutionContext, storage: FactoryStorage, atlas: EnergyAtlasResource
) -> dg.Output[dict]:
    from iv_pipelines.energy.signature import lifecycle_states, signature

    dac_id = context.partition_key
    steps, missing = {}, []
    for name in METERED_STEPS:
        e = latest_step_energy(context.instance, name, dac_id)
        (missing.append(name) if e is None else steps.__setitem__(name, e))
    if missing:
        raise dg.Failure(
            description=f"steps never metered for {dac_id}: {missing}; materialize them (dac_lifecycle_job) first"
        )
    methods = sorted({s["method"] for s in steps.values()})
    sig = signature(steps, "; ".join(methods))
    states = lifecycle_states(dac_id, steps, sig, context.run_id)
    with atlas.open(storage.root) as graph:
        new = graph.record(states)
    out = {
        "dac_id": dac_id,
        **sig.manifest_fields(),
        "steps_j": {k: round(v, 3) for k, v in sig.steps.items()},
    }
    path = storage.layout.energy_signature_file(dac_id)
    atomic_write_text(
        path,
        json.dumps(out | {"cpu_seconds": sig.cpu_seconds, "wall_seconds": sig.wall_seconds}, indent=2) + "\n",
    )
    table = "| step | energy (J) | CPU (s) | wall (s) | share |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {k} | {s['energy_j']:.2f} | {s['cpu_seconds']:.2f} | {s['wall_seconds']:.2f} | "
        f"{s['energy_j'] / sig.E_state if sig.E_state else 0:.1%} |"
        for k, s in steps.items()
    )
    context.log.info(
        f"{dac_id}: E_state {sig.E_state:.1f} J over {sig.wall_seconds:.1f} s (dE_dt {sig.dE_dt:.2f} W), "
        f"S_state {sig.S_state:.3f}; {new} new Atlas states"
    )
    return dg.Output(
        out,
        metadata=tidy(
            {
                "E_state_J": round(sig.E_state, 3),
                "dE_dt_W": round(sig.dE_dt, 4),
                "S_state": round(sig.S_state, 4),
                "cpu_seconds": round(sig.cpu_seconds, 3),
                "wall_seconds": round(sig.wall_seconds, 3),
                "steps": dg.MetadataValue.md(table),
                "method": "; ".join(methods),
                "atlas_states_written": new,
                "signature_path": dg.MetadataValue.path(str(path)),
            }
        ),
    )


@dg.asset(
    partitions_def=dac_partitions,
    group_name="packaging",
    owners=OWNERS,
    kinds={"docker", "kubernetes", "safetensors"},
    deps=["utid", "lora_adapter", "lineage_proof", "wifi_sensing_base_model"],
    description=(
        "The DAC package: merged weights (safetensors), runtime config and sources, OpenAPI/GraphQL/"
        "gRPC contracts, Shadow Twin snapshot, lineage bundle, DAC manifest, Dockerfile and "
        "validated Kubernetes manifests; a deterministic tarball and a signed SLSA attestation "
        "beside it."
    ),
)
@metered
def dac_package(
    context: dg.AssetExecutionContext,
    energy_signature: dict,
    storage: FactoryStorage,
    proof: ProofResource,
    packaging: PackagingResource,
) -> dg.Output[dict]:
    from iv_pipelines.packaging.build import PackageError
    from iv_pipelines.packaging.dac import build_dac_package

    dac_id = context.partition_key
    energy = {k: energy_signature[k] for k in ("E_state", "dE_dt", "S_state", "method")}
    try:
        pkg, decision, policies = build_dac_package(
            storage.root,
            dac_id,
            proof.signing_key(),
            proof.trusted_key(),
            energy,
            context.run_id,
            upstream_versions(context),
            packaging.options(),
            log=context.log.info,
        )
    except PackageError as e:
        raise dg.Failure(description=str(e)) from e
    pointer = {
        "version": pkg.version,
        "digest": pkg.digest,
        "directory": str(pkg.directory),
        "tarball": str(pkg.tarball),
        "attestation": str(pkg.attestation),
    }
    storage.layout.write_current_package(dac_id, pointer)
    context.log.info(f"{dac_id} {pkg.version}: {len(pkg.files)} files, tarball sha256 {pkg.digest[:16]}...")
    res = pkg.manifest["deployment"]["resources"]
    sizes = _measured_step_sizes(context.instance, dac_id)
    return dg.Output(
        pointer | {"image": pkg.manifest["deployment"]["image"], "probe": pkg.probe},
        metadata=tidy(
            {
                "version": pkg.version,
                "package_digest": pkg.digest,
                "files": len(pkg.files),
                "package_dir": dg.MetadataValue.path(str(pkg.directory)),
                "tarball": dg.MetadataValue.path(str(pkg.tarball)),
                "attestation": dg.MetadataValue.path(str(pkg.attestation)),
                "tarball_bytes": pkg.tarball.stat().st_size,
                "image": pkg.manifest["deployment"]["image"],
                "cpu_request": res["cpu"],
                "memory_limit": res["memory"],
                "probe_peak_rss_mib": pkg.probe["peak_rss_mib"],
                "probe_load_seconds": pkg.probe["load_seconds"],
                "pre_seal_review": decision.reasons[0],
                "step_sizes": dg.MetadataValue.md(
                    "What this DAC's lifecycle steps would ask of Kubernetes, from the cores and peak "
                    "memory each measured in this run (`iv k8s step-sizes` sizes the prod executor "
                    "over many runs):\n\n" + table_md(sizes)
                )
                if sizes
                else "not measured (steps metered before peak memory was recorded)",
                "manifest": dg.MetadataValue.json(pkg.manifest),
            }
        ),
    )


@dg.asset_check(
    asset=dac_package,
    name=PACKAGE_PROVENANCE_CHECK,
    blocking=True,
    description=(
        "the package attestation (signature, tarball digest, every file digest, no extra file) "
        "and the signature of the lineage bundle inside the package verify"
    ),
)
def package_provenance_verifies(
    context: dg.AssetCheckExecutionContext, storage: FactoryStorage, proof: ProofResource
) -> dg.AssetCheckResult:
    from pathlib import Path

    from iv_pipelines.packaging.build import verify_package
    from iv_pipelines.packaging.dac import package_provenance

    ctx = context.op_execution_context
    if ctx.has_partition_key:
        dac_ids = [ctx.partition_key]
    else:  # run on its own (no partition): every DAC's current package
        dac_ids = storage.layout.packaged_dacs()
    problems = {}
    files = 0
    for dac_id in dac_ids:
        cur = _current_package(storage, dac_id)
        files += verify_package(Path(cur["directory"]), proof.trusted_key()).files
        found = package_provenance(Path(cur["directory"]), proof.trusted_key())
        if found:
            problems[f"{dac_id} {cur['version']}"] = found
    return dg.AssetCheckResult(
        passed=not problems,
        description=f"{len(dac_ids)} package(s), {files} files re-verified"
        + (f"; failing: {', '.join(problems)}" if problems else ""),
        metadata=tidy(
            {
                "dac_ids": dg.MetadataValue.json(dac_ids),
                "problems": dg.MetadataValue.json(problems),
                "packages": len(dac_ids),
            }
        ),
    )


@dg.asset(
    partitions_def=dac_partitions,
    group_name="packaging",
    owners=OWNERS,
    kinds={"python"},
    description=(
        "AI Shield review of the sealed package: policies (secrets, pinned images, resource "
        "limits, NetworkPolicy, hardening, licences), provenance, and the decision engine "
        "(documented weights + hard gates, client constraints against measured values)."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            POLICY_CHECK, asset="shield_review", blocking=True, description="every shield policy passes"
        ),
        dg.AssetCheckSpec(
            DECISION_CHECK, asset="shield_review", blocking=True, description="the decision engine approves"
        ),
    ],
)
@metered
def shield_review(
    context: dg.AssetExecutionContext, dac_package: dict, storage: FactoryStorage, proof: ProofResource
):
    from pathlib import Path

    from iv_pipelines.packaging.dac import REVIEW_SUFFIX, review_package

    pkg_dir = Path(dac_package["directory"])
    decision, policies, prov = review_package(pkg_dir, proof.trusted_key())
    record = {
        "version": dac_package["version"],
        "package_digest": dac_package["digest"],
        "decision": decision.to_json(),
        "policies": policies.to_json(),
        "provenance_problems": prov,
    }
    path = pkg_dir.parent / f"{context.partition_key}-{dac_package['version']}{REVIEW_SUFFIX}"
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    for r in decision.reasons:
        (context.log.info if decision.approved else context.log.warning)(r)
    yield dg.Output(
        record,
        metadata=tidy(
            {
                "approved": decision.approved,
                "score": decision.score,
                "reasons": dg.MetadataValue.md("\n".join(f"- {r.strip()}" for r in decision.reasons)),
                "components": dg.MetadataValue.json(decision.components),
                "findings": len(policies.findings),
                "review_path": dg.MetadataValue.path(str(path)),
            }
        ),
    )
    yield dg.AssetCheckResult(
        check_name=POLICY_CHECK,
        passed=policies.ok,
        description=f"DAC {context.partition_key}: "
        + (
            f"{len(policies.passed)} shield policies pass"
            if policies.ok
            else f"{len(policies.findings)} finding(s)"
        ),
        metadata=tidy(
            {
                "dac_id": context.partition_key,
                "findings": dg.MetadataValue.json([str(f) for f in policies.findings]),
                "passed": dg.MetadataValue.json(policies.passed),
            }
        ),
    )
    yield dg.AssetCheckResult(
        check_name=DECISION_CHECK,
        passed=decision.approved,
        description=f"DAC {context.partition_key}: {decision.reasons[0]}",
        metadata=tidy(
            {
                "dac_id": context.partition_key,
                "reasons": dg.MetadataValue.json(decision.reasons),
                "provenance_problems": dg.MetadataValue.json(prov),
            }
        ),
    )
