"""QERO in one kernel: soft token alignment with a dustbin, then its mutual information.

Per batch row b (one program each): S_ij = <h_i, c_j> / tau for hypothesis tokens i < n_b
and context tokens j < k_b, plus a dustbin column of constant dustbin/tau; P = softmax over
all entries; p, q its marginals. Using sum_ij P log(P / (p q)) = sum P log P - sum p log p
- sum q log q, the kernel returns MI / log(min(n_b, k_b + 1)) clipped to [0, 1].
Reference twins: `iv_pipelines.scoring.obmi.qero` (torch), `reference.qero` (numpy).
Token counts are bounded by the block sizes (MiniLM inputs are truncated to 128 tokens).
"""

from __future__ import annotations

import triton
import triton.language as tl

_EPS = 1e-12


@triton.jit
def _qero_kernel(
    h_ptr,
    c_ptr,
    hn_ptr,
    ck_ptr,
    out_ptr,
    D,
    inv_tau,
    dustbin,
    s_hb,
    s_hn,
    s_hd,
    s_cb,
    s_ck,
    s_cd,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    b = tl.program_id(0)
    n = tl.load(hn_ptr + b)
    k = tl.load(ck_ptr + b)
    ri = tl.arange(0, BLOCK_N)
    cj = tl.arange(0, BLOCK_K)
    i_ok = ri < n
    j_ok = cj < k
    acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        d_ok = ds < D
        h = tl.load(
            h_ptr + b * s_hb + ri[:, None] * s_hn + ds[None, :] * s_hd,
            mask=i_ok[:, None] & d_ok[None, :],
            other=0.0,
        )
        c = tl.load(
            c_ptr + b * s_cb + cj[:, None] * s_ck + ds[None, :] * s_cd,
            mask=j_ok[:, None] & d_ok[None, :],
            other=0.0,
        )
        acc += tl.dot(h, tl.trans(c), input_precision="ieee")
    valid = i_ok[:, None] & j_ok[None, :]
    s = tl.where(valid, acc * inv_tau, float("-inf"))
    s_bin = dustbin * inv_tau  # the dustbin logit, one per hypothesis row
    mx = tl.maximum(tl.max(tl.max(s, axis=1), axis=0), s_bin)
    e = tl.where(valid, tl.exp(s - mx), 0.0)
    e_bin = tl.where(i_ok, tl.exp(s_bin - mx), 0.0)
    z = tl.sum(tl.sum(e, axis=1), axis=0) + tl.sum(e_bin, axis=0)
    p_ij = e / z
    p_bin = e_bin / z
    p_i = tl.sum(p_ij, axis=1) + p_bin
    q_j = tl.sum(p_ij, axis=0)
    q_bin = tl.sum(p_bin, axis=0)
    eps = 1e-12
    plogp = tl.sum(tl.sum(p_ij * tl.log(p_ij + eps), axis=1), axis=0) + tl.sum(
        p_bin * tl.log(p_bin + eps), axis=0
    )
    hp = -tl.sum(p_i * tl.log(p_i + eps), axis=0)
    hq = -tl.sum(q_j * tl.log(q_j + eps), axis=0) - q_bin * tl.log(q_bin + eps)
    mi = plogp + hp + hq
    cap = tl.log(tl.minimum(n, k + 1).to(tl.float32))
    res = tl.where(cap > eps, tl.minimum(tl.maximum(mi / tl.maximum(cap, eps), 0.0), 1.0), 0.0)
    tl.store(out_ptr + b, res)


def qero_triton(h, c, tau: float, dustbin: float):
    """h, c: `obmi.TokenBatch` (padded tokens + masks) -> (B,) QERO at softmax temperature `tau`
    with a dustbin column at cosine `dustbin` (the scorer passes the reference's constants:
    the kernel does not import the domain that imports it)."""
    import torch

    ht, ct = h.tok.float().contiguous(), c.tok.float().contiguous()
    hn = h.mask.sum(1).to(torch.int32).contiguous()
    ck = c.mask.sum(1).to(torch.int32).contiguous()
    b, n_max, d = ht.shape
    k_max = ct.shape[1]
    block_n = max(16, triton.next_power_of_2(n_max))
    block_k = max(16, triton.next_power_of_2(k_max))
    if block_n > 256 or block_k > 256:
        raise ValueError(f"qero_triton handles up to 256 tokens per side, got {n_max} x {k_max}")
    out = torch.empty(b, dtype=torch.float32, device=ht.device)
    # masks are assumed left-aligned (tokens first, padding after), as TokenBatch builds them
    _qero_kernel[(b,)](
        ht,
        ct,
        hn,
        ck,
        out,
        d,
        1.0 / tau,
        dustbin,
        ht.stride(0),
        ht.stride(1),
        ht.stride(2),
        ct.stride(0),
        ct.stride(1),
        ct.stride(2),
        BLOCK_N=block_n,
        BLOCK_K=block_k,
        BLOCK_D=32,
    )
    return out
