"""Groth16 (BN254) proof that a DAC's lineage holds a leaf whose committed score clears the
threshold, with only (Poseidon root, threshold, commitment) public. Circuit:
`zk/lineage_score.circom`; keys: `zk/build/` (regenerate with `zk/setup.sh`).

- Poseidon tree: fixed depth 6 (64 leaves, zero-padded); leaf = Poseidon(hi, lo) of a file's
  sha256 split into two 128-bit halves; node = Poseidon(left, right). Poseidon is circomlib's
  (BN254, t = 2..4), computed here with `light-poseidon` (Apache-2.0) and checked against the
  circuit by every proof.
- Scores are fixed-point integers: round(score x 10^6), 32-bit range-checked in the circuit.
- commitment = Poseidon(score, salt, leaf); the salt is an HMAC of (dac_id, leaf) under the
  factory's lineage signing key, so the same DAC content gives the same commitment and nobody
  without the key can brute-force the score from it.
- Proving runs snarkjs (GPL-3.0) as a separate process from tools/node_modules; it is never
  imported. Every proof is verified right after proving (a prover can emit a proof of a false
  statement, which then fails). Verification in Python is our own code on `py_ecc` (MIT):
  e(-A, B) e(alpha, beta) e(vk_x, gamma) e(C, delta) == 1, four Miller loops and one final
  exponentiation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ZK_BUILD = REPO / "zk" / "build"
SNARKJS = REPO / "tools" / "node_modules" / ".bin" / "snarkjs"
DEPTH = 6
SCORE_SCALE = 10**6
SCORE_BITS = 32
FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617  # BN254 r


class ZkError(RuntimeError):
    """Proving or verification could not run; the message says why."""


def poseidon(*xs: int) -> int:
    from light_poseidon_python import poseidon_hash_bytes

    for x in xs:
        if not 0 <= x < FIELD:
            raise ZkError(f"Poseidon input {x} is outside the BN254 scalar field")
    return int(poseidon_hash_bytes([x.to_bytes(32, "big") for x in xs]), 16)


def split_digest(digest: bytes) -> tuple[int, int]:
    if len(digest) != 32:
        raise ZkError(f"digest must be 32 bytes, got {len(digest)}")
    return int.from_bytes(digest[:16], "big"), int.from_bytes(digest[16:], "big")


def leaf_value(digest: bytes) -> int:
    return poseidon(*split_digest(digest))


class PoseidonTree:
    def __init__(self, digests: list[bytes], depth: int = DEPTH):
        if len(digests) > 2**depth:
            raise ZkError(f"{len(digests)} leaves do not fit a depth-{depth} tree ({2**depth} max)")
        self.depth = depth
        level = [leaf_value(d) for d in digests] + [0] * (2**depth - len(digests))
        self.levels = [level]
        for _ in range(depth):
            level = [poseidon(level[i], level[i + 1]) for i in range(0, len(level), 2)]
            self.levels.append(level)

    @property
    def root(self) -> int:
        return self.levels[-1][0]

    def path(self, index: int) -> tuple[list[int], list[int]]:
        elements, bits = [], []
        for d in range(self.depth):
            elements.append(self.levels[d][index ^ 1])
            bits.append(index & 1)
            index >>= 1
        return elements, bits


def score_int(score: float) -> int:
    v = round(score * SCORE_SCALE)
    if not 0 <= v < 2**SCORE_BITS:
        raise ZkError(f"score {score} outside [0, {(2**SCORE_BITS - 1) / SCORE_SCALE}] after scaling")
    return v


def salt_for(key_bytes: bytes, dac_id: str, leaf: int) -> int:
    mac = hmac.new(key_bytes, f"iv-zk-salt-v1|{dac_id}|{leaf}".encode(), hashlib.sha256).digest()
    return int.from_bytes(mac, "big") % FIELD


@dataclass
class ZkProof:
    proof: dict
    public: list[str]  # [root, threshold, commitment] as decimal strings
    prove_s: float
    verify_s: float

    def to_json(self) -> dict:
        return {
            "proof": self.proof,
            "public": self.public,
            "public_names": ["root", "threshold", "commitment"],
        }


def _keys() -> tuple[Path, Path, dict]:
    wasm, zkey, vk = (
        ZK_BUILD / "lineage_score.wasm",
        ZK_BUILD / "lineage_score.zkey",
        ZK_BUILD / "verification_key.json",
    )
    for p in (wasm, zkey, vk):
        if not p.exists():
            raise ZkError(f"{p} missing: run zk/setup.sh (slow, once) or restore zk/build from git")
    return wasm, zkey, json.loads(vk.read_text())


def verification_key() -> dict:
    return _keys()[2]


def prove(
    digests: list[bytes], index: int, score: float, threshold: float, salt: int, timeout_s: float = 120
) -> ZkProof:
    wasm, zkey, vk = _keys()
    if not SNARKJS.exists():
        raise ZkError(f"{SNARKJS} missing: run `make install` (npm tools)")
    tree = PoseidonTree(digests)
    leaf = leaf_value(digests[index])
    s, t = score_int(score), score_int(threshold)
    hi, lo = split_digest(digests[index])
    elements, bits = tree.path(index)
    inputs = {
        "root": str(tree.root),
        "threshold": str(t),
        "commitment": str(poseidon(s, salt, leaf)),
        "digest_hi": str(hi),
        "digest_lo": str(lo),
        "path_elements": [str(e) for e in elements],
        "path_index": [str(b) for b in bits],
        "score": str(s),
        "salt": str(salt),
    }
    if s < t:
        raise ZkError(f"score {score} is below the threshold {threshold}: there is nothing true to prove")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "input.json").write_text(json.dumps(inputs))
        r = subprocess.run(
            [
                str(SNARKJS),
                "groth16",
                "fullprove",
                "input.json",
                str(wasm),
                str(zkey),
                "proof.json",
                "public.json",
            ],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if r.returncode != 0:
            raise ZkError(f"snarkjs fullprove failed (exit {r.returncode}): {(r.stderr or r.stdout)[-800:]}")
        proof = json.loads((tmp / "proof.json").read_text())
        public = json.loads((tmp / "public.json").read_text())
    prove_s = time.perf_counter() - t0
    if public != [inputs["root"], inputs["threshold"], inputs["commitment"]]:
        raise ZkError(f"snarkjs returned unexpected public signals {public}")
    t1 = time.perf_counter()
    ok = verify(vk, proof, public)
    verify_s = time.perf_counter() - t1
    if not ok:
        raise ZkError("the proof just produced does not verify: refusing to use it")
    return ZkProof(proof, public, prove_s, verify_s)


def _g1(p):
    from py_ecc.optimized_bn128 import FQ

    return (FQ(int(p[0])), FQ(int(p[1])), FQ(int(p[2])))


def _g2(p):
    from py_ecc.optimized_bn128 import FQ2

    return tuple(FQ2([int(c[0]), int(c[1])]) for c in p)


def verify(vk: dict, proof: dict, public: list[str]) -> bool:
    """Groth16 verification on BN254 (our code, py_ecc arithmetic). False on any malformed input."""
    from py_ecc.optimized_bn128 import FQ12, add, curve_order, is_inf, is_on_curve, multiply, neg
    from py_ecc.optimized_bn128 import b as B1
    from py_ecc.optimized_bn128 import b2 as B2
    from py_ecc.optimized_bn128.optimized_pairing import (
        cast_point_to_fq12,
        final_exponentiate,
        miller_loop,
        twist,
    )

    try:
        if proof.get("protocol") not in (None, "groth16") or proof.get("curve") not in (None, "bn128"):
            return False
        if len(public) != int(vk["nPublic"]) or len(vk["IC"]) != len(public) + 1:
            return False
        inputs = [int(x) for x in public]
        if any(not 0 <= x < curve_order for x in inputs):
            return False
        a, b, c = _g1(proof["pi_a"]), _g2(proof["pi_b"]), _g1(proof["pi_c"])
        if not (is_on_curve(a, B1) and is_on_curve(c, B1) and is_on_curve(b, B2)):
            return False
        if not is_inf(multiply(b, curve_order)):  # G2 has cofactors: check the subgroup
            return False
        vk_x = _g1(vk["IC"][0])
        for x, ic in zip(inputs, vk["IC"][1:], strict=True):
            vk_x = add(vk_x, multiply(_g1(ic), x))
        pairs = [
            (b, neg(a)),
            (_g2(vk["vk_beta_2"]), _g1(vk["vk_alpha_1"])),
            (_g2(vk["vk_gamma_2"]), vk_x),
            (_g2(vk["vk_delta_2"]), c),
        ]
        acc = FQ12.one()
        for q, p in pairs:
            acc = acc * miller_loop(twist(q), cast_point_to_fq12(p), final_exponentiate=False)
        return final_exponentiate(acc) == FQ12.one()
    except (KeyError, TypeError, ValueError, IndexError):
        return False


class SnarkjsVerifier:
    """A persistent snarkjs verifier process (tools/zk/verifier.mjs): after a one-off start
    (~0.5 s), each verification costs ~20 ms, which is what `blockchain_sync` and the bench use
    to re-verify many proofs. `verify()` above is the independent pure-Python check."""

    def __init__(self, vk_path: Path | None = None, timeout_s: float = 30):
        script = REPO / "tools" / "zk" / "verifier.mjs"
        if not (REPO / "tools" / "node_modules" / "snarkjs").exists():
            raise ZkError("tools/node_modules/snarkjs missing: run `make install` (npm tools)")
        self.timeout_s = timeout_s
        self.proc = subprocess.Popen(
            ["node", str(script), str(vk_path or ZK_BUILD / "verification_key.json")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO / "tools",
        )
        hello = self.proc.stdout.readline()
        if '"ready"' not in hello:
            self.close()
            raise ZkError(f"snarkjs verifier did not start (said {hello!r})")
        self._n = 0

    def verify(self, proof: dict, public: list) -> tuple[bool, float]:
        """(verified, milliseconds inside snarkjs)."""
        self._n += 1
        self.proc.stdin.write(json.dumps({"id": self._n, "proof": proof, "public": public}) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline() or "{}")
        if answer.get("id") != self._n:
            raise ZkError(f"snarkjs verifier answered {answer!r} to request {self._n}")
        return bool(answer["ok"]), float(answer["ms"])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
