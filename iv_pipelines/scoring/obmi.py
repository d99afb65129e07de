"""Batched OBMI operators in torch (CPU or CUDA). Definitions: `scoring/reference.py`.

A batch is padded: token tensors (B, n, d) with boolean masks (B, n). Every function returns
one raw value per row, equal to the numpy reference for that row within float tolerance.
On CUDA, novelty against a large memory bank and the QERO alignment can use the Triton
kernels in `kernels/` (see `resources/scoring.py`); the math here is the reference for them.
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


def aroe(h_sent, r_sent, h: TokenBatch, r: TokenBatch):
    import torch

    cos = (h_sent * r_sent).sum(-1)
    sim = torch.einsum("bmd,bnd->bmn", r.tok, h.tok)
    sim = sim.masked_fill(~h.mask[:, None, :], float("-inf"))
    best = sim.max(dim=2).values.masked_fill(~r.mask, 0.0)
    recall = best.sum(1) / r.mask.sum(1).clamp(min=1)
    return 0.5 * cos + 0.5 * recall


def aesp(h: TokenBatch):
    import torch

    mask = h.mask.to(h.tok.dtype)
    n = mask.sum(1)  # (B,)
    mu = (h.tok * mask[..., None]).sum(1) / n.clamp(min=1)[:, None]
    xc = (h.tok - mu[:, None, :]) * mask[..., None]
    gram = torch.einsum("bnd,bmd->bnm", xc, xc)
    # padded rows/cols are zero: they add zero eigenvalues, which carry no entropy
    sv2 = torch.linalg.eigvalsh(gram.double()).clamp(min=0.0).to(h.tok.dtype)
    parts = torch.cat([(n * (mu * mu).sum(-1))[:, None], sv2], dim=1)
    p = parts / parts.sum(1, keepdim=True).clamp(min=_EPS)
    ent = -(torch.where(p > _EPS, p * torch.log(p.clamp(min=_EPS)), torch.zeros_like(p))).sum(1)
    out = ent / torch.log(n.clamp(min=2))
    return torch.where(n >= 2, out, torch.zeros_like(out))


def qero(h: TokenBatch, c: TokenBatch, tau: float = QERO_TAU, dustbin: float = QERO_DUSTBIN):
    import torch

    sim = torch.einsum("bnd,bkd->bnk", h.tok, c.tok)
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
