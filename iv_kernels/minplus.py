"""Batched min-plus relaxation: D'[i, j] = min(D[i, j], min_k D[i, k] + W[k, j]).

Repeating it (log2(n) squarings of the distance matrix, or n-1 relaxations of D by W) gives
all-pairs shortest paths: the GPU counterpart of `scipy.sparse.csgraph.dijkstra` in
`iv_pipelines/mesh/ttf.py`. Tiled like a GEMM with (min, +) in place of (+, *); missing
edges are +inf. Reference twin: `minplus_torch`.

Runs on CUDA; on CPU only in the Triton interpreter (TRITON_INTERPRET=1, set before
importing triton), which the parity tests use.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _minplus_kernel(
    d_ptr,
    w_ptr,
    out_ptr,
    M,
    N,
    K,
    stride_dm,
    stride_dk,
    stride_wk,
    stride_wn,
    stride_om,
    stride_on,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < M
    col_ok = cols < N
    best = tl.load(
        d_ptr + rows[:, None] * stride_dm + cols[None, :] * stride_dk,
        mask=row_ok[:, None] & col_ok[None, :],
        other=float("inf"),
    )
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < K
        d = tl.load(
            d_ptr + rows[:, None] * stride_dm + ks[None, :] * stride_dk,
            mask=row_ok[:, None] & k_ok[None, :],
            other=float("inf"),
        )
        w = tl.load(
            w_ptr + ks[:, None] * stride_wk + cols[None, :] * stride_wn,
            mask=k_ok[:, None] & col_ok[None, :],
            other=float("inf"),
        )
        cand = tl.min(d[:, :, None] + w[None, :, :], axis=1)
        best = tl.minimum(best, cand)
    tl.store(
        out_ptr + rows[:, None] * stride_om + cols[None, :] * stride_on,
        best,
        mask=row_ok[:, None] & col_ok[None, :],
    )


def minplus_triton(d, w, block: int = 16, block_k: int = 16):
    """One relaxation step for square (n, n) float32 tensors d (distances) and w (weights)."""
    import torch

    d = d.float().contiguous()
    w = w.float().contiguous()
    n = d.shape[0]
    out = torch.empty_like(d)
    grid = (triton.cdiv(n, block), triton.cdiv(n, block))
    _minplus_kernel[grid](
        d,
        w,
        out,
        n,
        n,
        n,
        d.stride(0),
        d.stride(1),
        w.stride(0),
        w.stride(1),
        out.stride(0),
        out.stride(1),
        BLOCK_M=block,
        BLOCK_N=block,
        BLOCK_K=block_k,
    )
    return out


def minplus_torch(d, w):
    """Reference twin: min(d, min_k d[:, k] + w[k, :])."""
    import torch

    return torch.minimum(d, (d[:, :, None] + w[None, :, :]).amin(dim=1))


def all_pairs(w, step=minplus_torch):
    """All-pairs shortest path costs from a weight matrix (inf = no edge, 0 on the diagonal)
    by repeated squaring with `step` (min-plus product of D with itself)."""
    import math

    d = w.clone()
    for _ in range(max(1, math.ceil(math.log2(max(d.shape[0] - 1, 2))))):
        nd = step(d, d)
        if bool((nd == d).all()):
            break
        d = nd
    return d
