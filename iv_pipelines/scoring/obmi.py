"""Batched OBMI operators in torch (CPU or CUDA). Definitions: `scoring/reference.py`.

A batch is padded: token tensors (B, n, d) with boolean masks (B, n). Every function returns
one raw value per row, equal to the numpy reference for that row within float tolerance.
On CUDA, novelty against a large memory bank and the QERO alignment can use the Triton
kernels in `iv_kernels/` (see `resources/scoring.py`); the math here is the reference for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iv_pipelines.scoring.reference import QERO_DUSTBIN, QERO_TAU

OPERATORS = ("AROE", "AESP", "QERO", "AIEO")
_EPS = 1e-12


@dataclass
class TokenBatch:
    """Padded token matrices: `tok` (B, n, d) float32, `mask` (B, n) bool."""

    tok: object  # torch.Tensor
    mask: object

    @classmethod
    def from_list(cls, mats: list[np.ndarray], device: str = "cpu") -> TokenBatch:
        import torch

        b, d = len(mats), mats[0].shape[1]
        n = max(m.shape[0] for m in mats)
        tok = np.zeros((b, n, d), dtype=np.float32)
        mask = np.zeros((b, n), dtype=bool)
        for i, m in enumerate(mats):
            tok[i, : m.shape[0]] = m
            mask[i, : m.shape[0]] = True
        return cls(torch.from_numpy(tok).to(device), torch.from_numpy(mask).to(device))

    def expand(self, b: int) -> TokenBatch:
        """The single row of this batch broadcast to `b` rows (no copy)."""
        return TokenBatch(self.tok.expand(b, -1, -1), self.mask.expand(b, -1))

    def rows(self, start: int, stop: int, order=None) -> TokenBatch:
        """Rows start:stop (of `order` if given), trimmed to their longest sequence."""
        idx = slice(start, stop) if order is None else order[start:stop]
        if self.tok.shape[0] > 1 and self.tok.stride(0) == 0:  # broadcast row: keep it shared
            count = len(range(*slice(start, stop).indices(self.tok.shape[0])))
            return TokenBatch(self.tok[:1], self.mask[:1]).expand(count)
        mask = self.mask[idx]
        n = max(int(mask.sum(1).max()), 1) if mask.shape[0] else 1
        return TokenBatch(self.tok[idx][:, :n], mask[:, :n])


# Matmul input dtype: None = the inputs' own (float32, exact parity with the numpy twins);
# torch.bfloat16 = ~3x faster on CPUs with AVX512-BF16/AMX, cosines accurate to ~1e-2.
# Set through `all_operators(..., matmul_dtype=...)`; calibration and scoring must agree.
_MATMUL_DTYPE = None


def _mm(a, b):
    """a @ b (batched), optionally with low-precision inputs; float32 result."""
    import torch

    if _MATMUL_DTYPE is None:
        return torch.matmul(a, b)
    return torch.matmul(a.to(_MATMUL_DTYPE), b.to(_MATMUL_DTYPE)).float()


def _cross(a, b):
    """(B, n, d) x (B, m, d) -> (B, n, m) similarities.

    When `b` is one matrix broadcast over the batch (stride 0, as the scorer builds it for
    a shared request or context) this is one large GEMM instead of B small ones.
    """
    if b.shape[0] > 1 and b.stride(0) == 0:
        return _mm(a, b[0].T)
    return _mm(a, b.transpose(1, 2))


def aroe(h_sent, r_sent, h: TokenBatch, r: TokenBatch):
    cos = (h_sent * r_sent).sum(-1)
    sim = _cross(h.tok, r.tok)  # (B, n_h, m_r)
    sim = sim.masked_fill(~h.mask[:, :, None], float("-inf"))
    best = sim.max(dim=1).values.masked_fill(~r.mask, 0.0)
    recall = best.sum(1) / r.mask.sum(1).clamp(min=1)
    return 0.5 * cos + 0.5 * recall


def aesp(h: TokenBatch):
    """Order-2 spectral entropy (see reference.aesp), from the uncentred Gram matrix.

    Padded rows are zero. With G = H H^T, a = H mu and s = |mu|^2, the centred Gram is
    G_c = G - a 1^T - 1 a^T + s 1 1^T on the valid rows, and ||H||_F^2 = trace(G): all the
    elementwise work is on (n, n) blocks instead of (n, d) ones.
    """
    import torch

    valid = h.mask.to(h.tok.dtype)
    n = valid.sum(1)
    gram = _mm(h.tok, h.tok.transpose(1, 2))  # (B, n, n)
    mu = h.tok.sum(1) / n.clamp(min=1)[:, None]
    a = torch.bmm(h.tok, mu[:, :, None])[..., 0]  # (B, n)
    s = (mu * mu).sum(-1)
    gc = gram - a[:, :, None] - a[:, None, :] + s[:, None, None]
    pair = valid[:, :, None] * valid[:, None, :]
    total = torch.diagonal(gram, dim1=1, dim2=2).sum(1)
    mean_energy = n * s
    collision = (mean_energy**2 + (gc * gc * pair).sum((1, 2))) / total.clamp(min=_EPS) ** 2
    out = (-torch.log(collision.clamp(min=_EPS)) / torch.log(n.clamp(min=2))).clamp(0.0, 1.0)
    return torch.where((n >= 2) & (total > _EPS), out, torch.zeros_like(out))


def qero(h: TokenBatch, c: TokenBatch, tau: float = QERO_TAU, dustbin: float = QERO_DUSTBIN):
    import torch

    sim = _cross(h.tok, c.tok)
    sim = torch.cat([sim, torch.full_like(sim[:, :, :1], dustbin)], dim=2) / tau
    cmask = torch.cat([c.mask, torch.ones_like(c.mask[:, :1])], dim=1)
    valid = h.mask[:, :, None] & cmask[:, None, :]
    s = sim.masked_fill(~valid, float("-inf"))
    joint = torch.softmax(s.flatten(1), dim=1).view_as(s)
    p = joint.sum(2)
    q = joint.sum(1)
    logj = torch.log(joint + _EPS)
    mi = (joint * (logj - torch.log(p + _EPS)[:, :, None] - torch.log(q + _EPS)[:, None, :])).sum((1, 2))
    n = h.mask.sum(1)
    k1 = c.mask.sum(1) + 1
    cap = torch.log(torch.minimum(n, k1).to(mi.dtype))
    return torch.where(cap > _EPS, (mi / cap.clamp(min=_EPS)).clamp(0.0, 1.0), torch.zeros_like(mi))


def aieo(h_sent, memory):
    """1 - max cosine to the memory bank; materialises (B, N) here (the Triton kernel does not)."""
    import torch

    if memory.shape[0] == 0:
        return torch.ones(h_sent.shape[0], dtype=h_sent.dtype, device=h_sent.device)
    return 1.0 - (h_sent @ memory.T).max(dim=1).values


def prin(percentiles, weights, floor: float = 1e-3):
    """Weighted geometric mean over the last axis (percentiles (B, K), weights (K,))."""
    import torch

    w = weights / weights.sum()
    return torch.exp((w * torch.log(percentiles.clamp(min=floor))).sum(-1))


CHUNK = 128  # rows per step: keeps the (rows, n, d) temporaries in cache on small CPUs


def all_operators(
    h_sent,
    r_sent,
    h: TokenBatch,
    r: TokenBatch,
    c: TokenBatch,
    memory,
    qero_fn=None,
    aieo_fn=None,
    chunk: int = CHUNK,
    matmul_dtype=None,
    novelty_sent=None,
):
    """(B, 4) raw scores in OPERATORS order, computed `chunk` rows at a time.

    Rows are sorted by hypothesis length so each chunk pads only to its own longest row.
    `matmul_dtype=torch.bfloat16` runs the similarity matmuls in bf16 (see `_MATMUL_DTYPE`).
    `novelty_sent` (B, d): the vectors AIEO compares with `memory` (the scorer passes the
    hypotheses' proposal texts, task phrases removed); default `h_sent`.
    """
    import torch

    global _MATMUL_DTYPE
    saved, _MATMUL_DTYPE = _MATMUL_DTYPE, matmul_dtype
    qero_fn = qero_fn or qero
    aieo_fn = aieo_fn or aieo
    novelty_sent = h_sent if novelty_sent is None else novelty_sent
    order = torch.argsort(h.mask.sum(1), stable=True)
    out = []
    try:
        with torch.no_grad():
            for i in range(0, h_sent.shape[0], chunk):
                j = i + chunk
                rows = order[i:j]
                hh = h.rows(i, j, order)
                cols = [
                    aroe(h_sent[rows], r_sent[rows], hh, r.rows(i, j, order)),
                    aesp(hh),
                    qero_fn(hh, c.rows(i, j, order)),
                    aieo_fn(novelty_sent[rows], memory),
                ]
                out.append(torch.stack(cols, dim=1))
    finally:
        _MATMUL_DTYPE = saved
    stacked = torch.cat(out)
    result = torch.empty_like(stacked)
    result[order] = stacked
    return result
