"""Lineage proof: Merkle tree (RFC 9162), DSSE/Ed25519, bundles, and mutations that must fail."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from iv_pipelines.proof import merkle
from iv_pipelines.proof.dsse import SignatureError, SigningKey, pae, sign_envelope, verify_envelope
from iv_pipelines.proof.lineage import (
    ENVELOPE_FILE,
    LINEAGE_FILE,
    build_bundle,
    verify_bundle,
)

REPO = Path(__file__).resolve().parent.parent


def _bottom_up_root(leaves):
    """Independent construction: hash pairs level by level, promoting an odd last node
    (equivalent to RFC 9162's largest-power-of-two split)."""
    level = [hashlib.sha256(b"\x00" + x).digest() for x in leaves]
    while len(level) > 1:
        nxt = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


@pytest.mark.parametrize("n", list(range(1, 18)) + [31, 32, 33])
def test_merkle_root_and_every_inclusion_proof(n):
    leaves = [f"leaf-{i}".encode() for i in range(n)]
    root = merkle.merkle_root(leaves)
    assert root == _bottom_up_root(leaves)
    for i in range(n):
        proof = merkle.inclusion_proof(leaves, i)
        assert merkle.verify_inclusion(leaves[i], proof, root)
        assert not merkle.verify_inclusion(leaves[i] + b"x", proof, root)
        if n > 1:
            other = (i + 1) % n
            assert not merkle.verify_inclusion(leaves[other], proof, root)
            wrong_index = merkle.InclusionProof((i + 1) % n, n, proof.path)
            assert not merkle.verify_inclusion(leaves[i], wrong_index, root)
            bad = bytearray(proof.path[0])
            bad[0] ^= 1
            tampered = merkle.InclusionProof(i, n, (bytes(bad),) + proof.path[1:])
            assert not merkle.verify_inclusion(leaves[i], tampered, root)


def test_leaf_and_node_hashes_are_domain_separated():
    a, b = b"a", b"b"
    two = merkle.merkle_root([a, b])
    # a leaf whose data is the concatenation of the two child hashes must not equal the node
    forged = merkle.leaf_hash(merkle.leaf_hash(a) + merkle.leaf_hash(b))
    assert forged != two
    assert merkle.merkle_root([]) == hashlib.sha256(b"").digest()
    with pytest.raises(ValueError, match="32 bytes"):
        merkle.lineage_leaf("x", "ab")


def test_dsse_pae_matches_the_spec_example_and_signatures_bind_type_and_payload():
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    key = SigningKey(Ed25519PrivateKey.generate(), "test")
    env = sign_envelope(b'{"a":1}', key)
    assert verify_envelope(env, key.public) == b'{"a":1}'
    for mutate in (
        lambda e: e.update(payloadType="text/plain"),
        lambda e: e.update(payload="eyJhIjoyfQ=="),  # {"a":2}
        lambda e: e["signatures"][0].update(sig=e["signatures"][0]["sig"][::-1]),
    ):
        e = json.loads(json.dumps(env))
        mutate(e)
        with pytest.raises(SignatureError):
            verify_envelope(e, key.public)
    with pytest.raises(SignatureError, match="no signature by the trusted key"):
        verify_envelope(env, Ed25519PrivateKey.generate().public_key())


@pytest.fixture
def bundle(tmp_path):
    root = tmp_path / "store"
    dac = root / "dacs" / "acme"
    (dac / "adapter").mkdir(parents=True)
    (dac / "request.json").write_text('{"client": "acme"}\n')
    (dac / "adapter" / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 8)
    (dac / "validated_hypothesis.json").write_text('{"score": 0.71}\n')
    (root / "models" / "wifi-sensing-base").mkdir(parents=True)
    (root / "models" / "wifi-sensing-base" / "model.safetensors").write_bytes(b"\x01" * 1000)
    (root / "calibration").mkdir()
    (root / "calibration" / "score_calibration.npz").write_bytes(b"npz" * 50)
    key = SigningKey(Ed25519PrivateKey.generate(), "test")
    deps = [{"name": "lora_adapter[acme]", "data_version": "ab" * 32, "code_version": "1", "run_id": "r0"}]
    b = build_bundle(root, "acme", key, "run-123", deps)
    return root, b, key


def test_bundle_verifies_and_records_slsa_provenance(bundle):
    root, b, key = bundle
    rep = verify_bundle(b.directory, key.public)
    assert rep.ok, rep.problems
    assert rep.n_leaves == 5 and rep.dac_id == "acme"
    st = b.statement
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == "https://slsa.dev/provenance/v1"
    assert st["predicate"]["runDetails"]["metadata"]["invocationId"] == "run-123"
    dep = st["predicate"]["buildDefinition"]["resolvedDependencies"][0]
    assert dep["digest"] == {"sha256": "ab" * 32} and dep["annotations"]["run_id"] == "r0"
    # the shared inputs were snapshotted: retraining the base model does not break old bundles
    (root / "models" / "wifi-sensing-base" / "model.safetensors").write_bytes(b"\x02" * 1000)
    assert verify_bundle(b.directory, key.public).ok


def _flip(path: Path, at: int = 0):
    data = bytearray(path.read_bytes())
    data[at % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


def test_flipping_one_byte_of_any_file_fails_verification(bundle):
    root, b, key = bundle
    leaves = json.loads((b.directory / LINEAGE_FILE).read_text())["leaves"]
    targets = [root / leaf["path"] for leaf in leaves] + [
        b.directory / LINEAGE_FILE,
        b.directory / ENVELOPE_FILE,
    ]
    assert len(targets) == 7
    for path in targets:
        for at in (0, 17, -1):
            original = path.read_bytes()
            _flip(path, at)
            rep = verify_bundle(b.directory, key.public)
            path.write_bytes(original)
            assert not rep.ok, f"flipping byte {at} of {path.name} went unnoticed"
    assert verify_bundle(b.directory, key.public).ok


def test_payload_forgery_and_foreign_keys_fail(bundle):
    root, b, key = bundle
    env_path = b.directory / ENVELOPE_FILE
    env = json.loads(env_path.read_text())
    import base64

    st = json.loads(base64.b64decode(env["payload"]))
    st["predicate"]["buildDefinition"]["internalParameters"]["merkle_root"] = "00" * 32
    forged = dict(env, payload=base64.b64encode(json.dumps(st).encode()).decode())
    env_path.write_text(json.dumps(forged))
    assert "does not verify" in " ".join(verify_bundle(b.directory, key.public).problems)
    # re-signed by someone else's key: the trusted key must be the factory's
    other = SigningKey(Ed25519PrivateKey.generate(), "attacker")
    env_path.write_text(json.dumps(sign_envelope(json.dumps(st).encode(), other)))
    assert "no signature by the trusted key" in " ".join(verify_bundle(b.directory, key.public).problems)


def test_missing_file_and_escaping_path_are_named(bundle):
    root, b, key = bundle
    (root / "dacs" / "acme" / "request.json").unlink()
    rep = verify_bundle(b.directory, key.public)
    assert any("dac/request.json" in p and "missing" in p for p in rep.problems)
    lin = b.directory / LINEAGE_FILE
    doc = json.loads(lin.read_text())
    doc["leaves"][0]["path"] = "../../../etc/passwd"
    lin.write_text(json.dumps(doc))
    problems = " ".join(verify_bundle(b.directory, key.public).problems)
    assert "escapes the storage root" in problems and "signed subject digest" in problems


def test_signing_key_env_precedence_and_first_run_generation(tmp_path, monkeypatch):
    from cryptography.hazmat.primitives import serialization

    from iv_pipelines.proof.dsse import load_or_create_signing_key

    monkeypatch.delenv("IV_SIGNING_KEY", raising=False)
    monkeypatch.delenv("IV_SIGNING_KEY_FILE", raising=False)
    k1 = load_or_create_signing_key(tmp_path / "keys")
    path = tmp_path / "keys" / "lineage-ed25519.pem"
    assert path.stat().st_mode & 0o777 == 0o600
    assert (
        load_or_create_signing_key(tmp_path / "keys").public.public_bytes_raw()
        == k1.public.public_bytes_raw()
    )
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    monkeypatch.setenv("IV_SIGNING_KEY", pem.decode())
    assert load_or_create_signing_key(tmp_path / "keys").source == "env:IV_SIGNING_KEY"
    monkeypatch.setenv("IV_SIGNING_KEY", "not a key")
    with pytest.raises(SignatureError, match="IV_SIGNING_KEY: not an unencrypted PEM"):
        load_or_create_signing_key(tmp_path / "keys")


def test_two_processes_generating_the_key_at_once_agree(tmp_path):
    code = (
        "import sys; from pathlib import Path; "
        "from iv_pipelines.proof.dsse import load_or_create_signing_key as f; "
        "print(f(Path(sys.argv[1])).public.public_bytes_raw().hex())"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("IV_SIGNING")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "k")], stdout=subprocess.PIPE, env=env, cwd=REPO
        )
        for _ in range(4)
    ]
    outs = {p.communicate()[0].strip() for p in procs}
    assert len(outs) == 1 and all(p.returncode == 0 for p in procs)


def test_iv_verify_cli(bundle, tmp_path):
    from click.testing import CliRunner

    from iv_app.cli import main
    from iv_pipelines.proof.dsse import public_pem

    root, b, key = bundle
    pub = tmp_path / "trusted.pub.pem"
    pub.write_text(public_pem(key.public))
    ok = CliRunner().invoke(main, ["verify", str(b.directory), "--public-key", str(pub)])
    assert ok.exit_code == 0 and "OK" in ok.output and b.root_hex in ok.output
    _flip(root / "dacs" / "acme" / "validated_hypothesis.json")
    bad = CliRunner().invoke(main, ["verify", str(b.directory), "--public-key", str(pub)])
    assert bad.exit_code == 1 and "dac/validated_hypothesis.json" in bad.output and "FAILED" in bad.output


def test_lineage_proof_asset_signs_verifies_and_records_upstream_versions(storage, tmp_path, proof_env):
    import dagster as dg

    from defs.proof import PROVENANCE_CHECK, lineage_proof
    from resources.proof import ProofResource

    validated_stub, instance, resources = proof_env()
    dg.materialize([validated_stub], partition_key="acme", instance=instance)
    res = dg.materialize(
        [validated_stub, lineage_proof],
        selection=[lineage_proof],
        partition_key="acme",
        instance=instance,
        resources=resources,
    )
    assert res.success
    md = res.asset_materializations_for_node("lineage_proof")[0].metadata
    checks = res.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [(PROVENANCE_CHECK, True)]
    deps = {d["name"]: d for d in md["resolved_dependencies"].value}
    assert deps["validated_hypothesis[acme]"]["run_id"] is not None  # recorded with its version
    # never materialized here: recorded without a version (and logged), not invented
    assert all(d["run_id"] is None for n, d in deps.items() if not n.startswith("validated_hypothesis"))
    assert len(deps) == 7
    bundle = Path(md["bundle"].value)
    _flip(storage.dac_dir("acme") / "validated_hypothesis.json")
    # the blocking check runs again on re-materialization; a tampered file is re-hashed, so it
    # passes with a new root, while the old envelope no longer verifies against the file
    old = verify_bundle(bundle, ProofResource(keys_dir=str(tmp_path / "keys")).trusted_key())
    assert not old.ok
