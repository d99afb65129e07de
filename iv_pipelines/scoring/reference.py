"""Numpy reference twins of the OBMI operators: one pair at a time, unpadded, readable.

Inputs are unit-normalised MiniLM vectors: sentence vectors s (d,), token matrices (n, d).
These functions define the operators; `iv_pipelines.scoring.obmi` computes the same values
batched in torch, and tests hold the two to float tolerance.
"""

from __future__ import annotations

import numpy as np

QERO_TAU = 0.05  # softmax temperature of the soft token alignment (cosine units)
QERO_DUSTBIN = 0.5  # cosine a context token must beat to count as grounding a hypothesis token
_EPS = 1e-12


def aroe(h_sent: np.ndarray, r_sent: np.ndarray, h_tok: np.ndarray, r_tok: np.ndarray) -> float:
    """Request alignment + resonance, in [-1, 1].

    AROE = 0.5 * cos(s_h, s_r) + 0.5 * R, where the resonance R is BERTScore-style recall of
    the request by the hypothesis: R = mean_i max_j <r_i, h_j> over request tokens r_i and
    hypothesis tokens h_j.
    """
    cos = float(h_sent @ r_sent)
    recall = float((r_tok @ h_tok.T).max(axis=1).mean())
    return 0.5 * cos + 0.5 * recall


def aesp(h_tok: np.ndarray) -> float:
    """Spectral entropy of the hypothesis token matrix, in [0, 1] (a degeneracy detector).

    With mean token mu and centred matrix X_c = H - mu (n tokens), the energy of H splits
    exactly as ||H||_F^2 = n ||mu||^2 + sum_k lambda_k, where lambda_k are the eigenvalues of
    the Gram matrix G = X_c X_c^T. AESP is the order-2 (Renyi, "collision") entropy of that
    split, p = (n||mu||^2, lambda_1, ...)/||H||_F^2, divided by log(n), its largest value:
        H2 = -log sum p^2,  sum_k lambda_k^2 = ||G||_F^2,
    so no eigendecomposition is needed (exp(H2) is the participation ratio, an effective
    number of directions). Repetitive text ("alloy alloy alloy ...") puts nearly all energy
    in the mean and scores near 0; varied text spreads it and scores near 1.
    """
    n = h_tok.shape[0]
    if n < 2:
        return 0.0
    mu = h_tok.mean(axis=0)
    xc = h_tok - mu
    gram = xc @ xc.T
    mean_energy = n * float(mu @ mu)
    total = mean_energy + float(np.trace(gram))
    if total <= _EPS:
        return 0.0
    collision = (mean_energy**2 + float((gram * gram).sum())) / total**2
    return float(np.clip(-np.log(collision) / np.log(n), 0.0, 1.0))


def qero(h_tok: np.ndarray, c_tok: np.ndarray, tau: float = QERO_TAU, dustbin: float = QERO_DUSTBIN) -> float:
    """Grounding specificity: normalised mutual information of the soft token alignment.

    Similarities S_ij = <h_i, c_j> get one extra "dustbin" column of constant cosine
    `dustbin` (as in SuperGlue's matching): a hypothesis token that matches no context token
    better than that lands in the dustbin, which carries no information. The joint
    P = softmax over all (i, j) of S / tau, with marginals p (hypothesis) and q (context +
    dustbin). QERO = I(P) / log(min(n, k + 1)), the mutual information divided by its largest
    possible value, in [0, 1]: near 1 when each hypothesis token aligns with its own context
    token, near 0 when tokens fall in the dustbin or align diffusely.
    """
    n, k = h_tok.shape[0], c_tok.shape[0]
    s = np.concatenate([h_tok @ c_tok.T, np.full((n, 1), dustbin)], axis=1) / tau
    s = s - s.max()
    joint = np.exp(s)
    joint /= joint.sum()
    p = joint.sum(axis=1)
    q = joint.sum(axis=0)
    mi = float((joint * (np.log(joint + _EPS) - np.log(p[:, None] + _EPS) - np.log(q[None, :] + _EPS))).sum())
    cap = np.log(min(n, k + 1))
    return float(np.clip(mi / cap, 0.0, 1.0)) if cap > _EPS else 0.0


def aieo(h_sent: np.ndarray, memory: np.ndarray) -> float:
    """Novelty against ACE memory: 1 - max_k cos(s_h, m_k), in [0, 2]; 1.0 for empty memory.

    The scorer passes the sentence vectors of *proposal texts* (`scorer.proposal_text`: the
    knowledge base's task phrases removed) for the hypothesis and every memory row alike.
    """
    if memory.shape[0] == 0:
        return 1.0
    return float(1.0 - (memory @ h_sent).max())


def prin(percentiles: np.ndarray, weights: np.ndarray, floor: float = 1e-3) -> float:
    """Weighted geometric mean of calibrated percentiles: exp(sum w_k log max(p_k, floor)) / sum w."""
    w = weights / weights.sum()
    return float(np.exp((w * np.log(np.maximum(percentiles, floor))).sum()))
