"""Triton kernels vs their torch references on a GPU, in the same run (speed ratios).

Needs CUDA (run through bench/gpu_check.sh on a GPU machine). On a CPU-only machine it says
so and exits 0: the interpreter is for correctness, not speed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _time(fn, repeats=20):
    import torch

    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


def main() -> int:
    import torch

    if not torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1":
        print("kernels: no CUDA device (or TRITON_INTERPRET=1): speed ratios need a GPU; skipped")
        return 0
    from iv_kernels.novelty import novelty_triton
    from iv_kernels.qero_mi import qero_triton
    from iv_pipelines.scoring import obmi
    from iv_pipelines.scoring.reference import QERO_DUSTBIN, QERO_TAU

    dev = "cuda"
    print(f"device: {torch.cuda.get_device_name(0)}")
    for b, n in [(1024, 65536), (1024, 262144)]:
        h = torch.nn.functional.normalize(torch.randn(b, 384, device=dev), dim=1)
        m = torch.nn.functional.normalize(torch.randn(n, 384, device=dev), dim=1)
        err = (novelty_triton(h, m) - obmi.aieo(h, m)).abs().max().item()
        t_tri = _time(lambda h=h, m=m: novelty_triton(h, m))
        t_ref = _time(lambda h=h, m=m: obmi.aieo(h, m))
        print(
            f"novelty B={b} N={n}: triton {t_tri * 1e3:.2f} ms, torch {t_ref * 1e3:.2f} ms, "
            f"ratio torch/triton {t_ref / t_tri:.2f}x, max |diff| {err:.2e}"
        )
    for b in (1024, 8192):
        hs = torch.nn.functional.normalize(torch.randn(b, 48, 384, device=dev), dim=2)
        cs = torch.nn.functional.normalize(torch.randn(b, 96, 384, device=dev), dim=2)
        hb = obmi.TokenBatch(hs, torch.ones(b, 48, dtype=torch.bool, device=dev))
        cb = obmi.TokenBatch(cs, torch.ones(b, 96, dtype=torch.bool, device=dev))
        err = (qero_triton(hb, cb, QERO_TAU, QERO_DUSTBIN) - obmi.qero(hb, cb)).abs().max().item()
        t_tri = _time(lambda hb=hb, cb=cb: qero_triton(hb, cb, QERO_TAU, QERO_DUSTBIN))
        t_ref = _time(lambda hb=hb, cb=cb: obmi.qero(hb, cb))
        print(
            f"qero B={b} n=48 k=96: triton {t_tri * 1e3:.2f} ms, torch {t_ref * 1e3:.2f} ms, "
            f"ratio torch/triton {t_ref / t_tri:.2f}x, max |diff| {err:.2e}"
        )
    from iv_kernels.minplus import minplus_torch, minplus_triton

    for n in (256, 512):  # the torch reference materialises n^3 floats: 512 is its limit here
        w = torch.rand(n, n, device=dev) * 10
        w[torch.rand(n, n, device=dev) > 0.05] = float("inf")
        w.fill_diagonal_(0.0)
        err = (minplus_triton(w, w) - minplus_torch(w, w)).abs().nan_to_num(0.0).max().item()
        t_tri = _time(lambda w=w: minplus_triton(w, w))
        t_ref = _time(lambda w=w: minplus_torch(w, w))
        print(
            f"min-plus step n={n}: triton {t_tri * 1e3:.2f} ms, torch {t_ref * 1e3:.2f} ms, "
            f"ratio torch/triton {t_ref / t_tri:.2f}x, max |diff| {err:.2e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
