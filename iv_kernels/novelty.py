"""Fused GEMM + row-max: novelty of B hypotheses against an N-item memory bank.

novelty[b] = 1 - max_n <h_b, m_n>. The kernel tiles the memory bank and keeps a running
maximum per row, so the B x N similarity matrix is never materialised (memory banks of
millions of vectors fit). Reference twin: `iv_pipelines.scoring.obmi.aieo` (torch) and
`iv_pipelines.scoring.reference.aieo` (numpy).

Runs on CUDA; on CPU only in the Triton interpreter (TRITON_INTERPRET=1, set before
importing triton), which the parity tests use.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _novelty_kernel(
    h_ptr,
    m_ptr,
    out_ptr,
    B,
    N,
    D,
    stride_hb,
    stride_hd,
    stride_mn,
    stride_md,
    BLOCK_B: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < B
    best = tl.full((BLOCK_B,), float("-inf"), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        col_ok = cols < N
        acc = tl.zeros((BLOCK_B, BLOCK_N), dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            ds = d0 + tl.arange(0, BLOCK_D)
            d_ok = ds < D
            h = tl.load(
                h_ptr + rows[:, None] * stride_hb + ds[None, :] * stride_hd,
                mask=row_ok[:, None] & d_ok[None, :],
                other=0.0,
            )
            m = tl.load(
                m_ptr + cols[:, None] * stride_mn + ds[None, :] * stride_md,
                mask=col_ok[:, None] & d_ok[None, :],
                other=0.0,
            )
            acc += tl.dot(h, tl.trans(m), input_precision="ieee")
        acc = tl.where(col_ok[None, :], acc, float("-inf"))
        best = tl.maximum(best, tl.max(acc, axis=1))
    tl.store(out_ptr + rows, 1.0 - best, mask=row_ok)


def novelty_triton(h_sent, memory, block_b: int = 16, block_n: int = 64, block_d: int = 64):
    """(B, D) unit hypothesis vectors, (N, D) memory -> (B,) novelty; N = 0 gives ones."""
    import torch

    h = h_sent.float().contiguous()
    m = memory.float().contiguous()
    b, d = h.shape
    if m.shape[0] == 0:
        return torch.ones(b, dtype=torch.float32, device=h.device)
    out = torch.empty(b, dtype=torch.float32, device=h.device)
    grid = (triton.cdiv(b, block_b),)
    _novelty_kernel[grid](
        h,
        m,
        out,
        b,
        m.shape[0],
        d,
        h.stride(0),
        h.stride(1),
        m.stride(0),
        m.stride(1),
        BLOCK_B=block_b,
        BLOCK_N=block_n,
        BLOCK_D=block_d,
    )
    return out
