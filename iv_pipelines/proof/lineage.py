"""A DAC's lineage bundle: content digests of everything it was built from, a Merkle tree over
them, and a signed in-toto Statement v1 with an SLSA Provenance v1 predicate.

Bundle layout (`<storage>/dacs/<dac_id>/lineage/`):
- `lineage.json`   leaves (name, stored path, size, sha256), the Merkle root, and one RFC 9162
                   inclusion proof per leaf;
- `provenance.dsse.json`  DSSE envelope (Ed25519) of the in-toto Statement whose `subject` is
                   `lineage.json` (by digest) and whose predicate names the Merkle root, the
                   upstream asset versions (`resolvedDependencies`), this code location
                   (`builder.id`) and the Dagster run (`invocationId`);
- `public_key.pem` the signer's public key (informative: verification trusts the key it is
                   given, never the one in the bundle).
Leaves cover every file of the DAC's directory (so assets added later join the lineage
automatically) plus the shared inputs it used (base model, score calibration). Shared inputs
change when they are rebuilt, so they are first copied into a content-addressed store
(`<storage>/cas/sha256/..`): an old bundle keeps verifying after a retrain.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from iv_pipelines.paths import atomic_write_bytes, atomic_write_text
from iv_pipelines.proof.dsse import (
    INTOTO_PAYLOAD_TYPE,
    SignatureError,
    SigningKey,
    canonical_json,
    public_pem,
    sign_envelope,
    verify_envelope,
)
from iv_pipelines.proof.merkle import (
    InclusionProof,
    inclusion_proof,
    lineage_leaf,
    merkle_root,
    verify_inclusion,
)
from iv_pipelines.storage import LINEAGE_DIR, StorageLayout

LINEAGE_VERSION = "iv-lineage-1"
BUNDLE_DIR = LINEAGE_DIR
LINEAGE_FILE = "lineage.json"
ENVELOPE_FILE = "provenance.dsse.json"
PUBKEY_FILE = "public_key.pem"
ZK_FILE = "zk_proof.json"
SCORE_LEAF = "dac/validated_hypothesis.json"  # the leaf whose score the zk proof commits to
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/industriverse/dac-factory/lineage/v1"
BUILDER_ID = "dagster://iv_pipelines.definitions"  # this code location
EXCLUDED_DIRS = {BUNDLE_DIR}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Leaf:
    name: str  # logical name: dac/<relative path> or shared/<relative path>
    path: str  # where the bytes are, relative to the storage root (POSIX)
    size: int
    sha256: str

    def data(self) -> bytes:
        return lineage_leaf(self.name, self.sha256)


def _files(directory: Path, exclude: set[str] = frozenset()) -> list[Path]:
    out = []
    for p in sorted(directory.rglob("*")):
        rel = p.relative_to(directory)
        if not p.is_file() or rel.parts[0] in exclude or any(x.startswith(".") for x in rel.parts):
            continue
        out.append(p)
    return out


def _cas_put(root: Path, src: Path, digest: str) -> str:
    dst = StorageLayout(root).cas_file(digest)
    rel = dst.relative_to(root).as_posix()
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{digest}.tmp")
        shutil.copyfile(src, tmp)
        if sha256_file(tmp) != digest:  # the source changed while we copied it
            tmp.unlink()
            raise RuntimeError(f"{src} changed while it was being snapshotted; rerun")
        tmp.replace(dst)
    return rel


def collect_leaves(root: Path, dac_id: str) -> list[Leaf]:
    """Every file of the DAC's directory (except its lineage bundle) and the shared inputs,
    sorted by name."""
    root = Path(root)
    leaves = []
    layout = StorageLayout(root)
    dac_dir = layout.dac_dir(dac_id, create=False)
    for p in _files(dac_dir, EXCLUDED_DIRS):
        rel = p.relative_to(dac_dir).as_posix()
        leaves.append(Leaf(f"dac/{rel}", p.relative_to(root).as_posix(), p.stat().st_size, sha256_file(p)))
    for base in layout.shared_lineage_inputs():
        if not base.exists():
            continue
        for p in _files(base):
            digest = sha256_file(p)
            name = f"shared/{p.relative_to(root).as_posix()}"
            leaves.append(Leaf(name, _cas_put(root, p, digest), p.stat().st_size, digest))
    return sorted(leaves, key=lambda leaf: leaf.name)


@dataclass
class LineageBundle:
    directory: Path
    root_hex: str
    n_leaves: int
    statement: dict
    envelope_sha256: str
    keyid: str
    seconds: dict = field(default_factory=dict)


def build_bundle(
    storage_root: Path,
    dac_id: str,
    key: SigningKey,
    run_id: str,
    dependencies: list[dict],
    zk_prover=None,
) -> LineageBundle:
    """Hash, tree, sign and write the bundle for one DAC. `dependencies` are upstream asset
    versions: dicts with `name` (asset key[partition]), `data_version`, `code_version`, `run_id`."""
    import time

    t0 = time.perf_counter()
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    storage_root = Path(storage_root).resolve()
    leaves = collect_leaves(storage_root, dac_id)
    if not leaves:
        raise ValueError(f"DAC {dac_id!r} has no files under {storage_root / 'dacs' / dac_id}")
    t_hash = time.perf_counter() - t0
    data = [leaf.data() for leaf in leaves]
    root = merkle_root(data)
    lineage = {
        "version": LINEAGE_VERSION,
        "dac_id": dac_id,
        "storage_root": "../../..",  # from this bundle directory
        "merkle": {
            "construction": "RFC 9162: leaf=SHA256(0x00||data), node=SHA256(0x01||l||r)",
            "leaf_data": "b'iv-lineage-leaf-v1\\x00' || u32be(len(name)) || name || sha256",
            "root": root.hex(),
            "size": len(leaves),
        },
        "leaves": [
            {
                "name": leaf.name,
                "path": leaf.path,
                "size": leaf.size,
                "sha256": leaf.sha256,
                "inclusion_proof": inclusion_proof(data, i).to_json(),
            }
            for i, leaf in enumerate(leaves)
        ],
    }
    lineage_bytes = json.dumps(lineage, indent=2, sort_keys=True).encode() + b"\n"
    internal = {"merkle_root": root.hex(), "lineage_version": LINEAGE_VERSION}
    zk_bytes = None
    if zk_prover is not None:  # Groth16 proof over the same leaves, bound into the statement
        t2 = time.perf_counter()
        zk_doc = zk_prover(leaves)
        zk_bytes = json.dumps(zk_doc, indent=2, sort_keys=True).encode() + b"\n"
        internal |= {
            "poseidon_root": zk_doc["public"][0],
            "zk_threshold": zk_doc["public"][1],
            "zk_commitment": zk_doc["public"][2],
            "zk_proof_sha256": hashlib.sha256(zk_bytes).hexdigest(),
        }
        t_prove = time.perf_counter() - t2
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": f"dac/{dac_id}/{BUNDLE_DIR}/{LINEAGE_FILE}",
                "digest": {"sha256": hashlib.sha256(lineage_bytes).hexdigest()},
            }
        ],
        "predicateType": SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"dac_id": dac_id},
                "internalParameters": internal,
                "resolvedDependencies": [
                    {
                        "name": d["name"],
                        "uri": f"dagster-asset://{d['name']}",
                        **(
                            {"digest": {"sha256": d["data_version"]}}
                            if _is_sha256(d.get("data_version"))
                            else {}
                        ),
                        "annotations": {k: v for k, v in d.items() if k != "name" and v is not None},
                    }
                    for d in dependencies
                ],
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID},
                "metadata": {
                    "invocationId": run_id,
                    "startedOn": started.isoformat().replace("+00:00", "Z"),
                    "finishedOn": now.isoformat().replace("+00:00", "Z"),
                },
            },
        },
    }
    t1 = time.perf_counter()
    envelope = sign_envelope(canonical_json(statement), key)
    t_sign = time.perf_counter() - t1
    out = StorageLayout(storage_root).lineage_dir(dac_id)
    env_bytes = json.dumps(envelope, indent=2).encode() + b"\n"
    # lineage.json last-but-one, envelope last: a reader never sees a signature over a
    # lineage file that is not yet there
    atomic_write_bytes(out / LINEAGE_FILE, lineage_bytes)
    if zk_bytes is not None:
        atomic_write_bytes(out / ZK_FILE, zk_bytes)
    else:
        (out / ZK_FILE).unlink(missing_ok=True)
    atomic_write_text(out / PUBKEY_FILE, public_pem(key.public))
    atomic_write_bytes(out / ENVELOPE_FILE, env_bytes)
    return LineageBundle(
        out,
        root.hex(),
        len(leaves),
        statement,
        hashlib.sha256(env_bytes).hexdigest(),
        envelope["signatures"][0]["keyid"],
        {"hash_s": t_hash, "sign_s": t_sign, "total_s": time.perf_counter() - t0}
        | ({"zk_total_s": t_prove} if zk_bytes is not None else {}),
    )


def _is_sha256(v) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


@dataclass
class VerifyReport:
    bundle: Path
    problems: list[str]
    merkle_root: str | None = None
    n_leaves: int = 0
    dac_id: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _safe_path(base: Path, rel: str) -> Path | None:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not rel:
        return None
    return base / p


def verify_bundle(
    bundle: Path, trusted_key, storage_root: Path | None = None, zk_verify=None
) -> VerifyReport:
    """Check a lineage bundle offline: signature by `trusted_key`, statement shape, subject
    digest of lineage.json, Merkle root, every inclusion proof, every file's size and digest.
    Every problem found is reported (not just the first). `zk_verify(proof, public) -> bool`
    replaces the pure-Python Groth16 verifier (e.g. a warm `SnarkjsVerifier` when re-verifying
    many bundles)."""
    bundle = Path(bundle)
    rep = VerifyReport(bundle, [])
    env_path, lin_path = bundle / ENVELOPE_FILE, bundle / LINEAGE_FILE
    for p in (env_path, lin_path):
        if not p.is_file():
            rep.problems.append(f"{p.name}: missing from {bundle}")
    if rep.problems:
        return rep
    try:
        envelope = json.loads(env_path.read_bytes())
        payload = verify_envelope(envelope, trusted_key)
        if envelope.get("payloadType") != INTOTO_PAYLOAD_TYPE:
            rep.problems.append(
                f"{ENVELOPE_FILE}: payloadType {envelope.get('payloadType')!r} is not in-toto"
            )
        statement = json.loads(payload)
    except (SignatureError, ValueError) as e:
        rep.problems.append(f"{ENVELOPE_FILE}: {e}")
        return rep
    lin_bytes = lin_path.read_bytes()
    try:
        subject_digest = statement["subject"][0]["digest"]["sha256"]
        signed_root = statement["predicate"]["buildDefinition"]["internalParameters"]["merkle_root"]
        if statement["_type"] != STATEMENT_TYPE or statement["predicateType"] != SLSA_PROVENANCE:
            rep.problems.append("statement: not an in-toto v1 Statement with an SLSA v1 provenance predicate")
    except (KeyError, IndexError, TypeError) as e:
        rep.problems.append(f"statement: missing field {e}")
        return rep
    if hashlib.sha256(lin_bytes).hexdigest() != subject_digest:
        rep.problems.append(f"{LINEAGE_FILE}: sha256 differs from the signed subject digest")
    try:
        lineage = json.loads(lin_bytes)
        leaves = [Leaf(x["name"], x["path"], int(x["size"]), x["sha256"]) for x in lineage["leaves"]]
        proofs = [InclusionProof.from_json(x["inclusion_proof"]) for x in lineage["leaves"]]
        root_hex = lineage["merkle"]["root"]
        rep.dac_id = lineage.get("dac_id")
        data = [leaf.data() for leaf in leaves]
    except (KeyError, TypeError, ValueError) as e:
        rep.problems.append(f"{LINEAGE_FILE}: malformed ({e!r})")
        return rep
    rep.merkle_root, rep.n_leaves = signed_root, len(leaves)
    internal = statement["predicate"]["buildDefinition"]["internalParameters"]
    if "poseidon_root" in internal:
        rep.problems += _verify_zk(bundle, internal, leaves, zk_verify)
    root = merkle_root(data)
    if root.hex() != signed_root or root_hex != signed_root:
        rep.problems.append(
            f"merkle root: recomputed {root.hex()[:16]}..., lineage.json says {str(root_hex)[:16]}..., "
            f"signed {str(signed_root)[:16]}..."
        )
    base = (
        Path(storage_root) if storage_root else (bundle / lineage.get("storage_root", "../../..")).resolve()
    )
    for leaf, proof, d in zip(leaves, proofs, data, strict=True):
        if not verify_inclusion(d, proof, bytes.fromhex(signed_root)):
            rep.problems.append(f"{leaf.name}: inclusion proof does not lead to the signed root")
        path = _safe_path(base, leaf.path)
        if path is None:
            rep.problems.append(f"{leaf.name}: stored path {leaf.path!r} escapes the storage root")
        elif not path.is_file():
            rep.problems.append(f"{leaf.name}: file {path} is missing")
        elif path.stat().st_size != leaf.size or sha256_file(path) != leaf.sha256:
            rep.problems.append(f"{leaf.name}: content of {path} differs from its recorded sha256")
    return rep


def _verify_zk(bundle: Path, internal: dict, leaves: list[Leaf], zk_verify=None) -> list[str]:
    """The zk proof file is the signed one, its public inputs are the signed ones, its root is
    the Poseidon root of these leaves, and the Groth16 proof verifies."""
    from iv_pipelines.proof import zk

    path = bundle / ZK_FILE
    if not path.is_file():
        return [f"{ZK_FILE}: missing, but the statement names a zk proof"]
    raw = path.read_bytes()
    problems = []
    if hashlib.sha256(raw).hexdigest() != internal.get("zk_proof_sha256"):
        problems.append(f"{ZK_FILE}: sha256 differs from the signed one")
    try:
        doc = json.loads(raw)
        public, proof = [str(x) for x in doc["public"]], doc["proof"]
    except (ValueError, KeyError, TypeError) as e:
        return problems + [f"{ZK_FILE}: malformed ({e!r})"]
    signed = [internal.get("poseidon_root"), internal.get("zk_threshold"), internal.get("zk_commitment")]
    if public != signed:
        problems.append(f"{ZK_FILE}: public inputs differ from the signed ones")
    try:
        root = zk.PoseidonTree([bytes.fromhex(leaf.sha256) for leaf in leaves]).root
    except (zk.ZkError, ValueError) as e:
        return problems + [f"{ZK_FILE}: cannot rebuild the Poseidon tree ({e})"]
    if str(root) != public[0]:
        problems.append(f"{ZK_FILE}: Poseidon root of the lineage leaves differs from the proof's")
    ok = zk_verify(proof, public) if zk_verify else zk.verify(zk.verification_key(), proof, public)
    if not ok:
        problems.append(f"{ZK_FILE}: Groth16 proof does not verify")
    return problems


def zk_prover_for(key: SigningKey, dac_id: str, storage_root: Path, leaf_name: str = SCORE_LEAF):
    """A prover for build_bundle: proves that `leaf_name` is a lineage leaf and that the
    validation score it records clears the threshold it records (both read from that file)."""
    from cryptography.hazmat.primitives import serialization

    from iv_pipelines.proof import zk

    secret = key.key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )

    def prover(leaves: list[Leaf]) -> dict:
        names = [leaf.name for leaf in leaves]
        if leaf_name not in names:
            raise zk.ZkError(f"{leaf_name} is not among the lineage leaves: no score to prove")
        index = names.index(leaf_name)
        record = json.loads((Path(storage_root) / leaves[index].path).read_text())
        score, threshold = float(record["validation_score"]), float(record["threshold"])
        digests = [bytes.fromhex(leaf.sha256) for leaf in leaves]
        salt = zk.salt_for(secret, dac_id, zk.leaf_value(digests[index]))
        p = zk.prove(digests, index, score, threshold, salt)
        return p.to_json() | {
            "leaf": leaf_name,
            "score_scale": zk.SCORE_SCALE,
            "timings_s": {"prove": round(p.prove_s, 3), "verify": round(p.verify_s, 3)},
        }

    return prover
