"""Proof and ledger costs for one DAC, against the cost of hashing its bundle in the same run.

A synthetic DAC with the demo's file count and sizes (19 files, ~2.5 MB: adapter, base model,
calibration, twin snapshot, JSON records) is built in a temporary storage root; then:
- hashing: sha256 of every file (the baseline every other number is divided by);
- lineage: hash + RFC 9162 Merkle tree + Ed25519-signed SLSA statement, no zk;
- zk prove: `snarkjs groth16 fullprove` subprocess incl. node start (goal < 4 s);
- verify: our Python Groth16 verifier (py_ecc), a one-shot `snarkjs groth16 verify`, and the
  warm snarkjs verifier process ledger_in_sync_job uses (goal < 100 ms off-chain); on-chain
  verify gas on the embedded EVM (a real transaction's gasUsed);
- registration: embedded-chain UTID registration latency, median of 10 after one warm-up
  (goal < 150 ms), and the idempotent re-registration of a known digest.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SIZES = [61_000, 1_500, 400_000, 2_000, 900_000, 3_000, 800_000, 40_000, 30_000, 5_000] + [1_200] * 9


def synthetic_dac(root: Path) -> None:
    dac = root / "dacs" / "bench"
    rng = hashlib.sha256(b"bench")
    for i, size in enumerate(SIZES):
        sub = dac / ("adapter" if i < 4 else "twin" if i < 8 else ".")
        sub.mkdir(parents=True, exist_ok=True)
        data = bytearray()
        while len(data) < size:
            rng = hashlib.sha256(rng.digest())
            data += rng.digest()
        (sub / f"file_{i:02d}.bin").write_bytes(bytes(data[:size]))
    (dac / "validated_hypothesis.json").write_text(
        json.dumps({"validation_score": 0.9936, "threshold": 0.95})
    )


def main() -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from iv_pipelines.ledger.chain import EmbeddedLedger
    from iv_pipelines.proof import zk
    from iv_pipelines.proof.dsse import SigningKey
    from iv_pipelines.proof.lineage import build_bundle, collect_leaves, zk_prover_for

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        synthetic_dac(root)
        key = SigningKey(Ed25519PrivateKey.generate(), "bench")
        hashing = []
        for _ in range(5):
            t0 = time.perf_counter()
            leaves = collect_leaves(root, "bench")
            hashing.append(time.perf_counter() - t0)
        base = statistics.median(hashing)
        total_mb = sum(leaf.size for leaf in leaves) / 1e6
        print(
            f"bundle: {len(leaves)} files, {total_mb:.2f} MB; hashing (sha256): {base * 1000:.1f} ms [baseline]"
        )

        lin = [build_bundle(root, "bench", key, "bench", []).seconds["total_s"] for _ in range(3)]
        t = statistics.median(lin)
        print(
            f"lineage without zk (hash + Merkle + sign + write): {t * 1000:.1f} ms | {t / base:.1f}x hashing"
        )

        prover = zk_prover_for(key, "bench", root)
        b = build_bundle(root, "bench", key, "bench", [], zk_prover=prover)
        doc = json.loads((b.directory / "zk_proof.json").read_text())
        prove_s = doc["timings_s"]["prove"]
        print(
            f"zk prove (snarkjs fullprove, subprocess): {prove_s:.2f} s | {prove_s / base:.0f}x hashing | "
            f"goal < 4 s ({'OK' if prove_s < 4 else 'ABOVE'})"
        )
        vk = zk.verification_key()
        py = []
        for _ in range(3):
            t0 = time.perf_counter()
            assert zk.verify(vk, doc["proof"], doc["public"])
            py.append(time.perf_counter() - t0)
        v = statistics.median(py)
        print(
            f"verify, Python (py_ecc, ours): {v * 1000:.0f} ms | {v / base:.0f}x hashing | goal < 100 ms "
            f"({'OK' if v < 0.1 else 'ABOVE: pure-Python pairings'})"
        )
        (Path(tmp) / "proof.json").write_text(json.dumps(doc["proof"]))
        (Path(tmp) / "public.json").write_text(json.dumps(doc["public"]))
        t0 = time.perf_counter()
        r = subprocess.run(
            [
                str(zk.SNARKJS),
                "groth16",
                "verify",
                str(zk.ZK_BUILD / "verification_key.json"),
                "public.json",
                "proof.json",
            ],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        sv = time.perf_counter() - t0
        print(
            f"verify, snarkjs subprocess (incl. node start): {sv * 1000:.0f} ms ({'OK' if r.returncode == 0 else 'FAILED'})"
        )

        t0 = time.perf_counter()
        with zk.SnarkjsVerifier() as warm:
            start = time.perf_counter() - t0
            warm.verify(doc["proof"], doc["public"])  # first call initialises the curve
            rt = []
            for _ in range(10):
                t0 = time.perf_counter()
                assert warm.verify(doc["proof"], doc["public"])[0]
                rt.append(time.perf_counter() - t0)
        w = statistics.median(rt)
        print(
            f"verify, warm snarkjs verifier process (round trip, median of 10): {w * 1000:.0f} ms | "
            f"{w / base:.0f}x hashing | goal < 100 ms ({'OK' if w < 0.1 else 'ABOVE'}); process start "
            f"{start * 1000:.0f} ms"
        )

        led = EmbeddedLedger(Path(tmp) / "ledger")
        ok, gas = led.verify_proof(doc["proof"], doc["public"], measure_gas=True)
        print(f"verify on-chain (Vyper verifier, EVM precompiles): {'OK' if ok else 'FAILED'}, {gas:,} gas")

        led.register("warmup", hashlib.sha256(b"warmup").digest())
        lat = []
        for i in range(10):
            reg = led.register(f"dac-{i}", hashlib.sha256(f"digest-{i}".encode()).digest())
            lat.append(reg.seconds)
        t0 = time.perf_counter()
        again = led.register("dac-0", hashlib.sha256(b"digest-0").digest())
        idem = time.perf_counter() - t0
        r_med = statistics.median(lat)
        print(
            f"registration, embedded chain: median {r_med * 1000:.0f} ms over 10 "
            f"({reg.gas_used:,} gas) | {r_med / base:.1f}x hashing | goal < 150 ms "
            f"({'OK' if r_med < 0.15 else 'ABOVE'}); idempotent repeat {idem * 1000:.0f} ms, "
            f"new record: {again.created}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
