"""UI group `proof` (lifecycle steps 15-16, 25-26): the signed lineage proof, the UTID on the
ledger, and the daily re-verification of every registered DAC (`ledger_in_sync_job`)."""

import time

import dagster as dg

from defs.common import (
    OWNERS,
    dac_partitions,
    metered,
    schedule,
    tidy,
)
from resources.ledger import LedgerResource
from resources.proof import ProofResource
from resources.storage import FactoryStorage

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
        "(DSSE), plus a Groth16 proof that the validation score clears its threshold with only a "
        "Poseidon root, the threshold and a score commitment public. `iv verify <bundle>` checks "
        "it all offline."
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
@metered
def lineage_proof(context: dg.AssetExecutionContext, storage: FactoryStorage, proof: ProofResource):
    from iv_pipelines.proof.lineage import build_bundle, verify_bundle, zk_prover_for

    dac_id = context.partition_key
    deps = upstream_versions(context)
    missing = [d["name"] for d in deps if d["run_id"] is None]
    if missing:
        context.log.warning(f"upstream assets never materialized (recorded without a version): {missing}")
    key = proof.signing_key()
    prover = zk_prover_for(key, dac_id, storage.root) if proof.zk else None
    bundle = build_bundle(storage.root, dac_id, key, context.run_id, deps, zk_prover=prover)
    internal = bundle.statement["predicate"]["buildDefinition"]["internalParameters"]
    context.log.info(
        f"lineage of {dac_id}: {bundle.n_leaves} files, Merkle root {bundle.root_hex[:16]}..., "
        f"signed by {bundle.keyid[:16]}... ({key.source})"
    )
    t0 = time.perf_counter()
    report = verify_bundle(bundle.directory, proof.trusted_key())
    verify_s = time.perf_counter() - t0
    zk_md = (
        {
            "poseidon_root": internal["poseidon_root"],
            "zk_threshold_scaled": int(internal["zk_threshold"]),
            "zk_prove_seconds": round(bundle.seconds["zk_total_s"], 3),
        }
        if "poseidon_root" in internal
        else {"zk_proof": "disabled (ProofResource.zk = false)"}
    )
    yield dg.Output(
        {"bundle": str(bundle.directory), "merkle_root": bundle.root_hex, "keyid": bundle.keyid},
        metadata=tidy(
            {
                "bundle": dg.MetadataValue.path(str(bundle.directory)),
                "merkle_root": bundle.root_hex,
                "leaves": bundle.n_leaves,
                "signer_keyid": bundle.keyid,
                "envelope_sha256": bundle.envelope_sha256,
                "hash_seconds": round(bundle.seconds["hash_s"], 4),
                "sign_seconds": round(bundle.seconds["sign_s"], 5),
                "verify_seconds": round(verify_s, 3),
                **zk_md,
                "resolved_dependencies": dg.MetadataValue.json(deps),
            }
        ),
    )
    yield dg.AssetCheckResult(
        check_name=PROVENANCE_CHECK,
        passed=report.ok,
        description=f"DAC {context.partition_key}: "
        + ("the lineage bundle verifies" if report.ok else "; ".join(report.problems[:3])),
        metadata=tidy(
            {
                "dac_id": context.partition_key,
                "problems": dg.MetadataValue.json(report.problems),
                "verified_leaves": report.n_leaves,
            }
        ),
    )


@dg.asset(
    partitions_def=dac_partitions,
    pool="ledger",
    group_name="proof",
    owners=OWNERS,
    kinds={"ethereum", "vyper"},
    description=(
        "UTID: registers the DAC's digest (sha256 of its id and lineage Merkle root) in the UTID "
        "registry contract, "
        "idempotently by digest; embedded py-evm chain by default, any JSON-RPC chain in prod."
    ),
)
@metered
def utid(
    context: dg.AssetExecutionContext, lineage_proof: dict, storage: FactoryStorage, ledger: LedgerResource
):
    import json

    from iv_pipelines.ledger.chain import dac_digest, utid_text
    from iv_pipelines.ledger.sync import REGISTRATION_FILE
    from iv_pipelines.paths import atomic_write_text
    from iv_pipelines.proof.lineage import BUNDLE_DIR

    dac_id = context.partition_key
    chain = ledger.get()
    zk_path = storage.dac_dir(dac_id) / BUNDLE_DIR / "zk_proof.json"
    zk_proof = json.loads(zk_path.read_text()) if ledger.anchor_zk_proof and zk_path.exists() else None
    if ledger.anchor_zk_proof and zk_proof is None:
        raise dg.Failure(
            description=f"anchor_zk_proof is set but {zk_path} is missing (ProofResource.zk off?)"
        )
    # anchored with its proof, the digest also commits to the proof's public Poseidon root,
    # which the registry recomputes: the proof cannot be replayed for another DAC
    poseidon = int(zk_proof["public"][0]) if zk_proof else None
    digest = dac_digest(dac_id, lineage_proof["merkle_root"], poseidon)
    reg = chain.register(dac_id, digest, zk_proof=zk_proof, merkle_root=lineage_proof["merkle_root"])
    path = storage.dac_dir(dac_id) / BUNDLE_DIR / REGISTRATION_FILE
    record = reg.to_json() | {"backend": chain.backend}
    if not reg.created and path.exists():  # keep the original transaction of this digest
        previous = json.loads(path.read_text())
        if previous.get("digest") == record["digest"]:
            record |= {k: previous[k] for k in ("tx_hash", "gas_used") if k in previous}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    context.log.info(
        f"{utid_text(reg.utid)} {'registered' if reg.created else 'already registered'} for {dac_id} "
        f"(digest {digest.hex()[:16]}..., block {reg.block_number}, {reg.seconds * 1000:.0f} ms)"
    )
    return dg.Output(
        record,
        metadata=tidy(
            {
                "utid": record["utid"],
                "tx_hash": record["tx_hash"] or "(none: digest registered before)",
                "block_number": reg.block_number,
                "gas_used": record["gas_used"],
                "newly_registered": reg.created,
                "contract": reg.contract,
                "ledger_backend": chain.backend,
                "zk_proof_checked_on_chain": zk_proof is not None and reg.created,
                "registration_ms": round(reg.seconds * 1000, 1),
                "registration_path": dg.MetadataValue.path(str(path)),
            }
        ),
    )


@dg.asset_check(
    asset=utid,
    name="ledger_in_sync",
    blocking=False,
    description=(
        "blockchain_sync: every registered DAC's on-chain record, registration event, signed "
        "lineage bundle and zk proof re-verify; failing DACs are named"
    ),
)
def ledger_in_sync(
    context: dg.AssetCheckExecutionContext,
    storage: FactoryStorage,
    ledger: LedgerResource,
    proof: ProofResource,
):
    from iv_pipelines.ledger.sync import sync_all

    results = sync_all(storage.root, ledger.get(), proof.trusted_key())
    bad = [r for r in results if not r.ok]
    for r in results:
        (context.log.error if r.problems else context.log.info)(
            f"{r.dac_id} ({r.utid}): " + ("; ".join(r.problems) if r.problems else "in sync")
        )
    return dg.AssetCheckResult(
        passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(results)} registered DACs re-verified"
            + (f"; out of sync: {', '.join(r.dac_id for r in bad)}" if bad else "; all in sync")
        ),
        metadata=tidy(
            {
                "verified": len(results),
                "out_of_sync": dg.MetadataValue.json({r.dac_id: r.problems for r in bad}),
            }
        ),
    )


SYNC_CHECK = dg.AssetCheckKey(dg.AssetKey("utid"), "ledger_in_sync")

ledger_in_sync_job = dg.define_asset_job(
    name="ledger_in_sync_job",
    selection=dg.AssetSelection.checks(SYNC_CHECK),
    description=(
        "Re-verifies every registered DAC (on-chain record, receipt event, signature, Merkle "
        "tree, zk proof). Seed name: blockchain_sync."
    ),
)

ledger_in_sync_schedule = schedule(
    "ledger_in_sync_schedule",
    ledger_in_sync_job,
    "0 0 * * *",
    "Daily 00:00: re-verify every registered DAC against the ledger and its proofs.",
)
