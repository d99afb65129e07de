"""Groth16 lineage/score proof: keys in step with the circuit, prove -> verify, and every
mutation of the proof or of a public input fails (in our verifier and in snarkjs)."""

import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from iv_pipelines.proof import zk

REPO = Path(__file__).resolve().parent.parent


def test_poseidon_matches_circomlib_vector():
    # circomlibjs: poseidon([1, 2])
    assert zk.poseidon(1, 2) == 0x115CC0F5E7D690413DF64C6B9662E9CF2A3617F2743245519E19607A4417189A
    with pytest.raises(zk.ZkError, match="outside the BN254 scalar field"):
        zk.poseidon(zk.FIELD, 1)


def test_committed_keys_match_the_circuit():
    digest = hashlib.sha256((REPO / "zk" / "lineage_score.circom").read_bytes()).hexdigest()
    assert (REPO / "zk" / "build" / "circuit.sha256").read_text().strip() == digest, "run zk/setup.sh"


DIGESTS = [hashlib.sha256(f"file-{i}".encode()).digest() for i in range(19)]


@pytest.fixture(scope="module")
def proved():
    return zk.prove(DIGESTS, 7, score=0.994, threshold=0.95, salt=12345)


def test_prove_then_verify_and_public_inputs(proved):
    tree = zk.PoseidonTree(DIGESTS)
    root, threshold, commitment = (int(x) for x in proved.public)
    assert root == tree.root and threshold == 950_000
    assert commitment == zk.poseidon(994_000, 12345, zk.leaf_value(DIGESTS[7]))
    assert zk.verify(zk.verification_key(), proved.proof, proved.public)


def _snarkjs_verify(proof, public) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "proof.json").write_text(json.dumps(proof))
        (t / "public.json").write_text(json.dumps(public))
        vk = REPO / "zk" / "build" / "verification_key.json"
        r = subprocess.run(
            [str(zk.SNARKJS), "groth16", "verify", str(vk), "public.json", "proof.json"],
            cwd=t,
            capture_output=True,
            text=True,
        )
        return r.returncode == 0 and "OK" in r.stdout


def _mutations(proof, public):
    def bump(x):
        return str(int(x) + 1)

    for i, name in enumerate(["root", "threshold", "commitment"]):
        pub = list(public)
        pub[i] = bump(pub[i])
        yield f"public {name}", proof, pub
    for key in ("pi_a", "pi_c"):
        p = json.loads(json.dumps(proof))
        p[key][1] = bump(p[key][1])
        yield f"{key}.y", p, public
    p = json.loads(json.dumps(proof))
    p["pi_b"][0][0] = bump(p["pi_b"][0][0])
    yield "pi_b.x0", p, public
    p = json.loads(json.dumps(proof))
    p["pi_a"], p["pi_c"] = p["pi_c"], p["pi_a"]
    yield "A and C swapped", p, public


def test_every_mutation_fails_in_our_verifier(proved):
    vk = zk.verification_key()
    for what, proof, public in _mutations(proved.proof, proved.public):
        assert not zk.verify(vk, proof, public), what


def test_snarkjs_agrees_on_the_genuine_proof_and_a_mutated_input(proved):
    assert _snarkjs_verify(proved.proof, proved.public)
    what, proof, public = next(_mutations(proved.proof, proved.public))
    assert not _snarkjs_verify(proof, public), what


def test_a_score_below_threshold_cannot_be_proved():
    with pytest.raises(zk.ZkError, match="below the threshold"):
        zk.prove(DIGESTS, 0, score=0.90, threshold=0.95, salt=1)
    # bypass our check: the circuit itself rejects the witness
    tree = zk.PoseidonTree(DIGESTS)
    leaf = zk.leaf_value(DIGESTS[0])
    hi, lo = zk.split_digest(DIGESTS[0])
    elements, bits = tree.path(0)
    inputs = {
        "root": str(tree.root),
        "threshold": "950000",
        "commitment": str(zk.poseidon(900_000, 1, leaf)),
        "digest_hi": str(hi),
        "digest_lo": str(lo),
        "path_elements": [str(e) for e in elements],
        "path_index": [str(b) for b in bits],
        "score": "900000",
        "salt": "1",
    }
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "input.json").write_text(json.dumps(inputs))
        b = REPO / "zk" / "build"
        r = subprocess.run(
            [
                str(zk.SNARKJS),
                "groth16",
                "fullprove",
                "input.json",
                str(b / "lineage_score.wasm"),
                str(b / "lineage_score.zkey"),
                "proof.json",
                "public.json",
            ],
            cwd=t,
            capture_output=True,
            text=True,
        )
        assert r.returncode != 0 or not (t / "proof.json").exists()


def test_tree_capacity_and_digest_size_are_checked():
    with pytest.raises(zk.ZkError, match="do not fit"):
        zk.PoseidonTree([b"\0" * 32] * 65)
    with pytest.raises(zk.ZkError, match="32 bytes"):
        zk.split_digest(b"short")


def test_bundle_with_zk_proof_verifies_and_zk_mutations_fail(tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from iv_pipelines.proof.dsse import SigningKey
    from iv_pipelines.proof.lineage import ZK_FILE, build_bundle, verify_bundle, zk_prover_for

    root = tmp_path / "store"
    dac = root / "dacs" / "acme"
    dac.mkdir(parents=True)
    (dac / "validated_hypothesis.json").write_text('{"validation_score": 0.9936, "threshold": 0.95}\n')
    (dac / "request.json").write_text("{}\n")
    key = SigningKey(Ed25519PrivateKey.generate(), "test")
    b = build_bundle(root, "acme", key, "run-1", [], zk_prover=zk_prover_for(key, "acme", root))
    internal = b.statement["predicate"]["buildDefinition"]["internalParameters"]
    assert internal["zk_threshold"] == "950000" and int(internal["poseidon_root"]) > 0
    assert verify_bundle(b.directory, key.public).ok
    path = b.directory / ZK_FILE
    original = path.read_bytes()
    doc = json.loads(original)
    for what, mutate in [
        ("one byte", lambda raw: raw[:40] + bytes([raw[40] ^ 1]) + raw[41:]),
        (
            "threshold",
            lambda raw: json.dumps(doc | {"public": [doc["public"][0], "1", doc["public"][2]]}).encode(),
        ),
    ]:
        path.write_bytes(mutate(original))
        assert not verify_bundle(b.directory, key.public).ok, what
    path.unlink()
    assert any("missing" in p for p in verify_bundle(b.directory, key.public).problems)
    path.write_bytes(original)
    assert verify_bundle(b.directory, key.public).ok
    # a file of the lineage changes: its recorded digest (a leaf of both trees) no longer matches
    (dac / "request.json").write_text('{"x": 1}\n')
    problems = " ".join(verify_bundle(b.directory, key.public).problems)
    assert "differs from its recorded sha256" in problems


def test_onchain_verifier_accepts_the_proof_and_rejects_mutations(proved, tmp_path):
    from iv_pipelines.ledger.chain import EmbeddedLedger

    led = EmbeddedLedger(tmp_path)
    vk = zk.verification_key()
    ok, gas = led.verify_proof(proved.proof, proved.public, measure_gas=True)
    assert ok and 200_000 < gas < 400_000  # 4-pair ecPairing alone is 181k (EIP-1108)
    for what, proof, public in list(_mutations(proved.proof, proved.public))[:4]:
        try:
            bad, _ = led.verify_proof(proof, public)
        except Exception:  # noqa: BLE001 - a precompile rejecting a point reverts: also a failure
            bad = False
        assert not bad, what
    # deployed once with the registry and remembered: its key is the committed one
    from iv_pipelines.ledger.compile import load_artifact

    with led._session(write=False) as (w3, registry):
        verifier = led._contract(w3, registry).functions.verifier().call()
        onchain = w3.eth.contract(address=verifier, abi=load_artifact("Groth16Verifier")["abi"])
        assert [onchain.functions.alpha(i).call() for i in range(2)] == [int(x) for x in vk["vk_alpha_1"][:2]]


def test_persistent_snarkjs_verifier_agrees(proved):
    with zk.SnarkjsVerifier() as v:
        assert v.verify(proved.proof, proved.public)[0]
        for what, proof, public in _mutations(proved.proof, proved.public):
            assert not v.verify(proof, public)[0], what


def test_register_with_proof_registers_only_when_the_proof_verifies(proved, tmp_path):
    from iv_pipelines.ledger.chain import EmbeddedLedger, LedgerError, dac_digest, utid_for

    led = EmbeddedLedger(tmp_path)
    merkle = "ab" * 32
    digest = dac_digest("acme", merkle, int(proved.public[0]))  # v2: bound to the proof's root
    _, proof, public = next(_mutations(proved.proof, proved.public))  # a wrong public root
    with pytest.raises(LedgerError, match="reverted"):
        led.register("acme", digest, zk_proof={"proof": proof, "public": public}, merkle_root=merkle)
    assert led.lookup(utid_for("acme", digest)) is None  # nothing registered
    reg = led.register(
        "acme", digest, zk_proof={"proof": proved.proof, "public": proved.public}, merkle_root=merkle
    )
    assert reg.created and reg.gas_used > 250_000  # the pairing check ran on-chain
    (ev,) = led.receipt_events(reg.tx_hash, "ProofAnchored")
    assert str(ev["poseidon_root"]) == proved.public[0] and ev["utid"] == reg.utid


def test_l2_a_valid_proof_cannot_anchor_another_digest(proved, tmp_path):
    """Issue #14 L2: the demo's proof once anchored an unrelated digest. The registry recomputes
    the digest from the proof's public Poseidon root: replaying a valid proof for another DAC's
    digest (or any digest not built from that root) reverts, on the contract itself."""
    from iv_pipelines.ledger.chain import EmbeddedLedger, LedgerError, dac_digest, proof_args, utid_for
    from iv_pipelines.ledger.compile import load_artifact

    led = EmbeddedLedger(tmp_path)
    merkle = "cd" * 32
    genuine = dac_digest("acme", merkle, int(proved.public[0]))
    victim = dac_digest("victim", "ef" * 32, int(proved.public[0]) ^ 1)  # another DAC's root
    for dac, digest in (("victim", victim), ("acme", hashlib.sha256(b"unrelated").digest())):
        with pytest.raises(LedgerError, match="reverted"):
            led.register(
                dac, digest, zk_proof={"proof": proved.proof, "public": proved.public}, merkle_root=merkle
            )
        assert led.lookup(utid_for(dac, digest)) is None
    # straight at the contract, skipping the client: the same revert, with its reason
    with led._session(write=True) as (w3, address):
        c = w3.eth.contract(address=address, abi=load_artifact("UtidRegistry")["abi"])
        fn = c.functions.register_with_proof(
            utid_for("victim", victim),
            victim,
            "victim",
            bytes.fromhex(merkle),
            *proof_args(proved.proof, proved.public),
        )
        with pytest.raises(Exception, match="the proof does not commit to this digest"):
            fn.call({"gas": 700_000})
    assert led.register(
        "acme", genuine, zk_proof={"proof": proved.proof, "public": proved.public}, merkle_root=merkle
    ).created
