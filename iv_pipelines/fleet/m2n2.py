"""M2N2: model fusion by natural niches (Sakana AI, "Competition and Attraction Improve Model
Fusion", reference code SakanaAI/natural_niches), over the fleet's LoRA adapters.

A member of the archive is a set of **weight deltas** against the domain base model, one per
parameter block: for each LoRA target module the merged low-rank update ΔW = B·A·(α/r), and
for the classification head (which peft trains in full, `modules_to_save`) the head's change.
The base itself is the member whose deltas are all zero. Working on ΔW, not on A and B: two
adapters' A and B live in unrelated bases, so mixing them separately would add cross terms
(B₁A₂) that neither adapter learned.

- **Crossover** (`crossover`): per block, a random split point s and mixing ratio w; entries
  before s take w·a + (1−w)·b, the rest (1−w)·a + w·b (the reference's split-point slerp,
  linear here: deltas of one block are small and nearly collinear). w = 1 with the split at
  the end returns the first parent. The child's low-rank blocks are truncated back to the
  adapters' rank by SVD (`truncate`), so a merged member is again a rank-r adapter.
- **Fitness by resource competition** (`fitness`): each window of the shared evaluation set
  is a resource of total value 1 shared among the members that solve it, in proportion to
  their score: fitness_i = Σ_j s_ij / (Σ_k s_kj)^α. A window few members solve is worth more,
  so a member that alone solves some windows keeps a high fitness.
- **Archive update** (`update_archive`): the child joins if it is not the least fit of
  archive + child; it then replaces the least fit member.
- **Attraction** (`pick_parents`): the first parent by fitness; the second with probability ∝
  Σ_j max(0, f_kj − f_pj) over the per-window fitness f = s/z: strong where the first is weak.

Everything here is plain numpy; `iv_pipelines/fleet/merge.py` runs it on real adapters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Blocks = dict[str, np.ndarray]


def crossover(
    a: Blocks,
    b: Blocks,
    rng: np.random.Generator | None = None,
    w: dict[str, float] | float | None = None,
    split: dict[str, int] | None = None,
) -> Blocks:
    """Child of `a` and `b`: per block, a split point in [0, size] and a ratio w in [0, 1]
    (drawn from `rng` unless given)."""
    if set(a) != set(b):
        raise ValueError(f"parents differ in blocks: {sorted(set(a) ^ set(b))}")
    rng = rng or np.random.default_rng()
    child: Blocks = {}
    for name in a:
        xa, xb = np.asarray(a[name], np.float32), np.asarray(b[name], np.float32)
        if xa.shape != xb.shape:
            raise ValueError(f"block {name}: shapes {xa.shape} and {xb.shape} differ")
        n = xa.size
        s = int(split[name]) if split is not None else int(rng.integers(0, n + 1))
        r = float(w[name] if isinstance(w, dict) else w) if w is not None else float(rng.uniform())
        if not 0 <= s <= n or not 0.0 <= r <= 1.0:
            raise ValueError(f"block {name}: split {s} outside 0..{n} or ratio {r} outside 0..1")
        mix = np.where(np.arange(n) < s, r, 1.0 - r).astype(np.float32).reshape(xa.shape)
        child[name] = mix * xa + (1.0 - mix) * xb
    return child


def truncate(delta: np.ndarray, rank: int) -> np.ndarray:
    """The best rank-`rank` approximation of a 2-D delta (Eckart-Young, by SVD)."""
    u, s, vt = np.linalg.svd(np.asarray(delta, np.float64), full_matrices=False)
    k = min(rank, len(s))
    return ((u[:, :k] * s[:k]) @ vt[:k]).astype(np.float32)


def factor(delta: np.ndarray, rank: int, scaling: float) -> tuple[np.ndarray, np.ndarray]:
    """LoRA factors (A: r x in, B: out x r) with B·A·scaling = the rank-r truncation of delta."""
    u, s, vt = np.linalg.svd(np.asarray(delta, np.float64), full_matrices=False)
    k = min(rank, len(s))
    root = np.sqrt(s[:k] / scaling)
    a = np.zeros((rank, delta.shape[1]))
    b = np.zeros((delta.shape[0], rank))
    a[:k], b[:, :k] = root[:, None] * vt[:k], u[:, :k] * root[None, :]
    return a.astype(np.float32), b.astype(np.float32)


def child_of(a: Blocks, b: Blocks, rank: int, low_rank: set[str], rng: np.random.Generator) -> Blocks:
    """Crossover, then the low-rank blocks truncated back to `rank`."""
    c = crossover(a, b, rng)
    return {k: truncate(v, rank) if k in low_rank else v for k, v in c.items()}


def _per_window(scores: np.ndarray, alpha: float) -> np.ndarray:
    s = np.asarray(scores, np.float64)
    z = s.sum(0) ** alpha
    return s / np.where(z > 0, z, 1.0)[None, :]


def fitness(scores: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Resource-competition fitness of each member (rows) over the windows (columns)."""
    return _per_window(scores, alpha).sum(1)


def update_archive(scores: np.ndarray, child_scores: np.ndarray, alpha: float = 1.0) -> int | None:
    """The archive row the child replaces (the least fit of archive + child), or None when
    the child itself is the least fit."""
    ext = np.concatenate([np.asarray(scores, np.float64), np.asarray(child_scores, np.float64)[None]], 0)
    worst = int(np.argmin(fitness(ext, alpha)))
    return None if worst == len(scores) else worst


def attraction(scores: np.ndarray, first: int, alpha: float = 1.0) -> np.ndarray:
    """How much each member adds where `first` is weak: Σ_j max(0, f_kj − f_first,j)."""
    f = _per_window(scores, alpha)
    return np.maximum(0.0, f - f[first][None, :]).sum(1)


def pick_parents(scores: np.ndarray, rng: np.random.Generator, alpha: float = 1.0) -> tuple[int, int]:
    """First parent ∝ fitness; second ∝ attraction to it (uniform over the others when no
    member is stronger anywhere)."""
    fit = fitness(scores, alpha)
    n = len(fit)
    p = fit / fit.sum() if fit.sum() > 0 else np.full(n, 1 / n)
    first = int(rng.choice(n, p=p))
    att = attraction(scores, first, alpha)
    att[first] = 0.0
    if att.sum() <= 0:
        att = np.ones(n)
        att[first] = 0.0
    second = int(rng.choice(n, p=att / att.sum()))
    return first, second


@dataclass
class SearchResult:
    archive: list[Blocks]
    names: list[str]
    scores: np.ndarray  # members x windows
    fitness: np.ndarray
    children_tried: int
    children_kept: int


def search(
    members: list[Blocks],
    names: list[str],
    score_fn,
    rank: int,
    low_rank: set[str],
    iterations: int,
    seed: int = 0,
    alpha: float = 1.0,
) -> SearchResult:
    """Natural-niches search: `iterations` children, each scored on the fitness windows by
    `score_fn(blocks) -> per-window scores`, kept by `update_archive`. Children are named
    `merge-<iteration>(<parent>,<parent>)`."""
    rng = np.random.default_rng(seed)
    archive, names = list(members), list(names)
    scores = np.stack([score_fn(m) for m in archive])
    kept = 0
    for it in range(iterations):
        i, j = pick_parents(scores, rng, alpha)
        child = child_of(archive[i], archive[j], rank, low_rank, rng)
        cs = score_fn(child)
        slot = update_archive(scores, cs, alpha)
        if slot is not None:
            archive[slot], scores[slot] = child, cs
            names[slot] = f"merge-{it}({names[i]},{names[j]})"
            kept += 1
    return SearchResult(archive, names, scores, fitness(scores, alpha), iterations, kept)
