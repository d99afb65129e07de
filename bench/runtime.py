"""Capsule inference: the deployed local capsule (HTTP) vs the same model called in-process,
measured in the same run on the same payloads.

Payloads: held-out Shadow Twin episodes of the sample client's room in the ESP32 esp-csi line
format, 2.2 s of CSI each (one 2 s window). Both paths do the same work per request: parse
the lines, build the window, run the model; the capsule adds JSON + HTTP + uvicorn.
Package: `--package DIR`, else the demo's current package under .dagster_home, else a small
package built here (tiny pretraining budget: latency is about the same, accuracy is not).
Reports p50/p99 latency and sequential throughput for both, and capsule throughput with 4
concurrent clients. The capsule runs 1 torch thread (as packaged); so does the in-process path.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def find_package(arg: Path | None, tmp: Path) -> Path:
    if arg:
        return arg
    from iv_pipelines.storage import StorageLayout

    demo = StorageLayout(REPO / ".dagster_home" / "iv")
    for dac in demo.packaged_dacs():
        return Path(demo.current_package(dac)["directory"])
    from iv_app.sample import make_small_dac
    from iv_pipelines.packaging.dac import build_dac_package
    from iv_pipelines.proof.dsse import load_or_create_signing_key

    print("no demo package found: building a small one (run `make demo` for the real one)")
    root = tmp / "iv"
    root.mkdir()
    key = load_or_create_signing_key(tmp / "keys")
    make_small_dac(root, key)
    energy = {"E_state": 0.0, "dE_dt": 0.0, "S_state": 0.0, "method": "bench stand-in"}
    return build_dac_package(root, "fall-detection-acme", key, key.public, energy, "bench", [])[0].directory


def pct(xs, q):
    return float(np.percentile(np.asarray(xs) * 1000, q))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", type=Path)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from iv_pipelines.deploy.smoke import post_json, smoke_payloads
    from iv_pipelines.deploy.targets import LocalDeployer
    from iv_pipelines.request import load_request_file
    from iv_pipelines.runtime.predictor import Predictor, capture_from_lines, windows
    from iv_pipelines.sensing.pipeline import client_resident, client_room

    with tempfile.TemporaryDirectory() as tmp:
        pkg = find_package(args.package, Path(tmp))
        print(f"package: {pkg}")
        req = load_request_file(REPO / "examples" / "requests" / "fall-detection-acme.yaml")
        per = max(1, args.requests // 4)
        payloads = [
            body["lines"] for _, body in smoke_payloads(client_room(req), client_resident(req), per, seed=7)
        ]
        predictor = Predictor(pkg)

        def in_process(lines):
            cap, _ = capture_from_lines(lines)
            x, _, _ = windows(cap, 1.0, False)
            return predictor.proba(x)

        in_process(payloads[0])
        lat_in = []
        t0 = time.perf_counter()
        for p in payloads:
            s = time.perf_counter()
            in_process(p)
            lat_in.append(time.perf_counter() - s)
        thr_in = len(payloads) / (time.perf_counter() - t0)

        dep = LocalDeployer(Path(tmp) / "deployments")
        rec = dep.deploy(pkg, "bench", "bench")
        try:
            url = f"{rec.url}/v1/predict"
            post_json(url, {"lines": payloads[0]})
            lat_http = []
            t0 = time.perf_counter()
            for p in payloads:
                s = time.perf_counter()
                code, _ = post_json(url, {"lines": p})
                assert code == 200, code
                lat_http.append(time.perf_counter() - s)
            thr_http = len(payloads) / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(4) as ex:
                codes = list(ex.map(lambda p: post_json(url, {"lines": p})[0], payloads))
            thr_conc = len(payloads) / (time.perf_counter() - t0)
            assert set(codes) == {200}
        finally:
            dep.stop("bench")
    n = len(payloads)
    print(f"{n} requests of 2.2 s CSI (220 esp-csi lines) each, 1 torch thread")
    print(
        f"in-process : p50 {pct(lat_in, 50):.2f} ms  p99 {pct(lat_in, 99):.2f} ms  throughput {thr_in:.0f} req/s"
    )
    print(
        f"capsule    : p50 {pct(lat_http, 50):.2f} ms  p99 {pct(lat_http, 99):.2f} ms  throughput {thr_http:.0f} req/s"
    )
    print(f"capsule x4 : throughput {thr_conc:.0f} req/s (4 concurrent clients)")
    print(
        f"ratio capsule/in-process: p99 latency {pct(lat_http, 99) / pct(lat_in, 99):.2f}x, "
        f"throughput {thr_http / thr_in:.2f}x | goal: p99 within the request's max_latency_ms "
        f"({req.constraints.max_latency_ms:.0f} ms): {'met' if pct(lat_http, 99) < req.constraints.max_latency_ms else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
