"""What the costliest request a capsule accepts costs, next to an ordinary one (issue #14, R4).

Builds a small real DAC package (packaging.sample, the test fixture's recipe), serves it the
way the local deployer does (its own src/, `python -P -m iv_pipelines.runtime`), and measures
the capsule process's CPU time (/proc/<pid>/stat) and peak RSS (VmHWM) for:
- the baseline: an ordinary request, 2 s of ESP32 CSI at 100 Hz (200 lines, one window);
- the largest accepted request: as many frames as the package's limits allow, windowed at the
  smallest hop that keeps it within the window limit;
- one frame more than the limit (refused with 413: what refusing costs).
Goal: the largest accepted request costs <= 20x an ordinary one (CPU), and the capsule's peak
RSS stays within the package's memory limit (its Kubernetes manifest).

    .venv/bin/python bench/capsule_limits.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def main() -> int:
    import numpy as np

    from iv_app.sample import make_small_dac
    from iv_pipelines.packaging.dac import build_dac_package
    from iv_pipelines.proof.dsse import load_or_create_signing_key
    from iv_pipelines.sensing.formats import write_esp_csi_lines

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "iv"
        root.mkdir()
        key = load_or_create_signing_key(Path(tmp) / "keys")
        make_small_dac(root, key)
        energy = {"E_state": 1.0, "dE_dt": 1.0, "S_state": 0.5, "method": "bench"}
        pkg, _, _ = build_dac_package(root, "fall-detection-acme", key, key.public, energy, "bench", [])
        limits = json.loads((pkg.directory / "runtime.json").read_text())["limits"]
        memory_limit = next(
            line.split(":")[1].strip()
            for line in (pkg.directory / "k8s" / "deployment.yaml").read_text().splitlines()
            if line.strip().startswith("memory:") and "Mi" in line
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        from iv_pipelines.deploy.supervise import capsule_command

        cmd, env = capsule_command(str(pkg.directory), port, threads=1)
        proc = subprocess.Popen(
            cmd, env=env, cwd=pkg.directory, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if urllib.request.urlopen(url + "/readyz", timeout=1).status == 200:
                        break
                except Exception:  # noqa: BLE001 - not up yet
                    time.sleep(0.1)
            rng = np.random.default_rng(0)

            def lines(n: int) -> list[str]:
                csi = (rng.normal(20, 5, (n, 64)) + 1j * rng.normal(20, 5, (n, 64))).astype(np.complex64)
                return write_esp_csi_lines(csi, np.arange(n) / 100.0)

            def cost(body: dict, repeats: int) -> tuple[float, int]:
                """CPU seconds per request, averaged over `repeats` back-to-back requests (the
                kernel counts CPU time in 10 ms ticks: one short request alone reads 0 or 10)."""
                c0 = _cpu_s(proc.pid)
                for _ in range(repeats):
                    status, _ = _post(url + "/v1/predict", body)
                return (_cpu_s(proc.pid) - c0) / repeats, status

            ordinary = {"lines": lines(200)}
            cost(ordinary, 3)  # warm-up
            base, st0 = cost(ordinary, 40)
            frames = limits["max_frames"] - 1  # + the header line: max_frames rows
            span = frames / 100.0
            hop = max(0.1, round((span - 2.0) / max(limits["max_windows"] - 2, 1) + 0.005, 2))
            worst_body = {"lines": lines(frames), "hop_s": hop}
            worst, st1 = cost(worst_body, 5)
            rss_worst = _hwm_mib(proc.pid)
            refused, st2 = cost({"lines": lines(frames + 1)}, 5)  # one row over
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    print(f"package limits (from its measured costs): {limits}; memory limit {memory_limit}")
    print(
        f"ordinary request (200 lines, 2 s, 1 window): HTTP {st0}, capsule CPU {base * 1000:.1f} ms (mean of 40)"
    )
    print(
        f"largest accepted ({frames} CSI lines + header, hop_s {hop}): HTTP {st1}, capsule CPU {worst * 1000:.1f} ms "
        f"-> {worst / base:.1f}x the ordinary request (goal <= 20x)"
    )
    print(
        f"one frame over the limit: HTTP {st2}, capsule CPU {refused * 1000:.1f} ms ({refused / base:.1f}x)"
    )
    mem = float(memory_limit.removesuffix("Mi"))
    print(
        f"capsule peak RSS {rss_worst:.0f} MiB after the largest request; package memory limit {mem:.0f} MiB "
        f"({'within' if rss_worst <= mem else 'OVER'} the limit)"
    )
    return 0 if st1 == 200 and st2 == 413 else 1


if __name__ == "__main__":
    sys.exit(main())
