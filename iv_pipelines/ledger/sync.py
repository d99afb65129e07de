"""Re-verify every registered DAC: on-chain record, the registration event in its receipt,
the signed lineage bundle (signature, Merkle tree, file digests) and its zk proof."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from iv_pipelines.ledger.chain import dac_digest
from iv_pipelines.proof.lineage import BUNDLE_DIR, verify_bundle
from iv_pipelines.storage import StorageLayout

REGISTRATION_FILE = "registration.json"


@dataclass
class DacSync:
    dac_id: str
    utid: str | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def registered_bundles(storage_root: Path) -> list[Path]:
    return StorageLayout(storage_root).dac_files(f"{BUNDLE_DIR}/{REGISTRATION_FILE}")


def verify_dac(reg_path: Path, ledger, trusted_key, zk_verify=None) -> DacSync:
    dac_id = reg_path.parent.parent.name
    try:
        reg = json.loads(reg_path.read_text())
        utid = bytes.fromhex(reg["utid"].removeprefix("utid:"))
        digest = reg["digest"]
    except (ValueError, KeyError, TypeError) as e:
        return DacSync(dac_id, None, [f"{reg_path}: unreadable registration ({e!r})"])
    out = DacSync(dac_id, reg["utid"])
    registry, me = ledger.registry()
    if reg.get("contract") and registry and reg["contract"].lower() != registry.lower():
        # another chain or an older registry: its transaction is not readable here
        out.problems.append(
            f"registered on the registry at {reg['contract']} ({reg.get('backend', '?')} ledger), not on "
            f"the one this ledger uses ({registry}): re-materialize utid for {dac_id} to register it there"
        )
        return out
    rec = ledger.lookup(utid)
    if rec is None:
        out.problems.append(f"{reg['utid']} is not on the chain")
    else:
        if rec.registrant.lower() != me.lower():
            out.problems.append(
                f"{reg['utid']} was registered by {rec.registrant}, not by this factory's registrar {me}"
            )
        if rec.digest.hex() != digest:
            out.problems.append(
                f"on-chain digest {rec.digest.hex()[:16]}... differs from the recorded {digest[:16]}..."
            )
        if rec.dac_id != dac_id:
            out.problems.append(f"on-chain DAC id {rec.dac_id!r} differs from {dac_id!r}")
    if reg.get("tx_hash"):
        try:
            events = ledger.receipt_events(reg["tx_hash"], "Registered")
        except Exception as e:  # noqa: BLE001 - unknown transaction, wrong chain...
            out.problems.append(
                f"registration transaction {reg['tx_hash'][:16]}... unreadable ({type(e).__name__})"
            )
        else:
            if not any(bytes(ev["utid"]) == utid and bytes(ev["digest"]).hex() == digest for ev in events):
                out.problems.append("the registration transaction's receipt has no matching Registered event")
    report = verify_bundle(reg_path.parent, trusted_key, zk_verify=zk_verify)
    out.problems += [f"bundle: {p}" for p in report.problems]
    if report.merkle_root is not None:
        derived = {dac_digest(dac_id, report.merkle_root).hex()}
        zk_file = reg_path.parent / "zk_proof.json"
        if zk_file.is_file():  # anchored with its proof: v2 digest, bound to the Poseidon root
            try:
                poseidon = int(json.loads(zk_file.read_text())["public"][0])
                derived.add(dac_digest(dac_id, report.merkle_root, poseidon).hex())
            except (ValueError, KeyError, IndexError, TypeError):
                pass  # verify_bundle names an unreadable proof
        if digest not in derived:
            out.problems.append("the registered digest is not derived from the bundle's signed Merkle root")
    return out


def sync_all(storage_root: Path, ledger, trusted_key) -> list[DacSync]:
    """Every registered DAC, zk proofs checked by one warm snarkjs verifier process (~20 ms
    each) when the npm tools are installed, else by the pure-Python verifier (~0.5 s each)."""
    from iv_pipelines.proof import zk

    paths = registered_bundles(storage_root)
    try:
        verifier = zk.SnarkjsVerifier() if paths else None
    except zk.ZkError:
        verifier = None
    try:
        check = (lambda proof, public: verifier.verify(proof, public)[0]) if verifier else None
        return [verify_dac(p, ledger, trusted_key, check) for p in paths]
    finally:
        if verifier:
            verifier.close()
