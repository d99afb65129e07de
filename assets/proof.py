"""Proof phase (seed steps 20-23): the DAC's signed lineage bundle."""

import dagster as dg

from assets.partitions import dac_partitions
from resources.proof import ProofResource
from resources.storage import FactoryStorage

OWNERS = ["team:dac-factory"]
PROVENANCE_CHECK = "provenance_verifies"


def upstream_versions(context: dg.AssetExecutionContext) -> list[dict]:
    """Latest materialization of each upstream asset (this partition for partitioned ones):
    data version, code version and the run that produced it."""
    out = []
    pk = context.partition_key
    for key in sorted(context.assets_def.dependency_keys, key=lambda k: k.to_user_string()):
        graph = context.job_def.asset_layer.asset_graph
        partitioned = graph.has(key) and graph.get(key).partitions_def is not None
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[pk] if partitioned else None), limit=1
        ).records
        name = key.to_user_string() + (f"[{pk}]" if partitioned else "")
        if not records:
            out.append({"name": name, "data_version": None, "code_version": None, "run_id": None})
            continue
        ev = records[0].event_log_entry
        tags = ev.asset_materialization.tags or {}
        out.append(
            {
                "name": name,
                "data_version": tags.get("dagster/data_version"),
                "code_version": tags.get("dagster/code_version"),
                "run_id": ev.run_id,
            }
        )
    return out


@dg.asset(
    partitions_def=dac_partitions,
    group_name="proof",
    owners=OWNERS,
    kinds={"in-toto", "slsa"},
    deps=[
        "dac_request",
        "hypotheses",
        "shadow_twin_context",
        "validated_hypothesis",
        "lora_adapter",
        "score_calibration",
        "wifi_sensing_base_model",
    ],
    description=(
        "Lineage proof: sha256 of every file the DAC was built from, an RFC 9162 Merkle tree with "
        "inclusion proofs, and an in-toto Statement v1 / SLSA Provenance v1 signed with Ed25519 "
        "(DSSE). `iv verify <bundle>` checks it offline."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            PROVENANCE_CHECK,
            asset="lineage_proof",
            blocking=True,
            description="signature, statement, Merkle root, inclusion proofs and file digests re-verify",
        )
    ],
)
def lineage_proof(context: dg.AssetExecutionContext, storage: FactoryStorage, proof: ProofResource):
    from iv_pipelines.proof.lineage import build_bundle, verify_bundle

    dac_id = context.partition_key
    deps = upstream_versions(context)
    missing = [d["name"] for d in deps if d["run_id"] is None]
    if missing:
        context.log.warning(f"upstream assets never materialized (recorded without a version): {missing}")
    key = proof.signing_key()
    bundle = build_bundle(storage.root, dac_id, key, context.run_id, deps)
    context.log.info(
        f"lineage of {dac_id}: {bundle.n_leaves} files, Merkle root {bundle.root_hex[:16]}..., "
        f"signed by {bundle.keyid[:16]}... ({key.source})"
    )
    report = verify_bundle(bundle.directory, proof.trusted_key())
    yield dg.Output(
        {"bundle": str(bundle.directory), "merkle_root": bundle.root_hex, "keyid": bundle.keyid},
        metadata={
            "bundle": dg.MetadataValue.path(str(bundle.directory)),
            "merkle_root": bundle.root_hex,
            "leaves": bundle.n_leaves,
            "signer_keyid": bundle.keyid,
            "envelope_sha256": bundle.envelope_sha256,
            "hash_seconds": round(bundle.seconds["hash_s"], 4),
            "sign_seconds": round(bundle.seconds["sign_s"], 5),
            "resolved_dependencies": dg.MetadataValue.json(deps),
        },
    )
    yield dg.AssetCheckResult(
        check_name=PROVENANCE_CHECK,
        passed=report.ok,
        metadata={
            "problems": dg.MetadataValue.json(report.problems),
            "verified_leaves": report.n_leaves,
        },
    )
