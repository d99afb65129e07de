"""DGM-style evolution of hypotheses (Darwin Gödel Machine: archive, weighted parents).

An archive keeps every valid candidate. Each iteration draws parents with weight
    w = sigmoid(pk_alpha * (score - 0.5)) / (1 + children)
(DGM's rule: good parents are favoured, parents with many children less so, which keeps
exploring), makes children by mutation (a generator rewrite guided by ACE bullets) or by
crossover of structured fields, and evaluates them in two stages: stage 1 drops duplicates
of anything already in the archive without scoring; stage 2 scores the rest with the
calibrated OBMI scorer. It stops when the best candidate reaches the threshold or the
iteration budget is spent, and records iterations-to-threshold.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from iv_pipelines.discovery.generator import HypothesisGenerator, crossover
from iv_pipelines.discovery.hypothesis import Hypothesis
from iv_pipelines.request import DacRequest


@dataclass
class Scored:
    """A candidate with raw operator scores (4,), their percentiles (4,), PRIN and the gated score."""

    hypothesis: Hypothesis
    raw: np.ndarray
    percentiles: np.ndarray
    prin: float
    score: float
    iteration: int
    parent: str | None = None
    children: int = 0


# evaluate(list of hypotheses) -> (raw (n,4), percentiles (n,4), prin (n,), score (n,))
Evaluator = Callable[[list[Hypothesis]], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


@dataclass
class EvolutionResult:
    archive: list[Scored]
    best: Scored
    iterations: int  # iterations run after the initial population
    iterations_to_threshold: int | None  # first iteration whose best reached the threshold
    threshold: float
    skipped_duplicates: int = 0
    history: list[float] = field(default_factory=list)  # best score after each iteration

    @property
    def passed(self) -> bool:
        return self.best.score >= self.threshold


def parent_weight(score: float, children: int, pk_alpha: float) -> float:
    """DGM parent weight: sigmoid(pk_alpha * (score - 0.5)) / (1 + children)."""
    return 1.0 / (1.0 + math.exp(-pk_alpha * (score - 0.5))) / (1.0 + children)


def _pick(archive: list[Scored], rng: random.Random, pk_alpha: float) -> Scored:
    weights = [parent_weight(c.score, c.children, pk_alpha) for c in archive]
    return rng.choices(archive, weights=weights, k=1)[0]


def evolve(
    generator: HypothesisGenerator,
    request: DacRequest,
    evaluate: Evaluator,
    initial: list[Hypothesis],
    threshold: float,
    budget: int = 8,
    children_per_iteration: int = 4,
    pk_alpha: float = 10.0,
    crossover_rate: float = 0.3,
    guidance: list[str] | None = None,
    seed: int = 0,
    log: Callable[[str], None] = lambda _m: None,
) -> EvolutionResult:
    if not initial:
        raise ValueError("evolution needs at least one initial hypothesis")
    rng = random.Random(f"dgm:{seed}:{request.digest()}")
    archive: list[Scored] = []
    seen: set[str] = set()

    def admit(hyps: list[Hypothesis], iteration: int, parents: list[str | None]) -> None:
        raw, pct, prin, score = evaluate(hyps)
        for i, h in enumerate(hyps):
            archive.append(Scored(h, raw[i], pct[i], float(prin[i]), float(score[i]), iteration, parents[i]))

    fresh = [h for h in initial if not (h.text in seen or seen.add(h.text))]
    admit(fresh, 0, [None] * len(fresh))
    best = max(archive, key=lambda c: c.score)
    history = [best.score]
    reached = 0 if best.score >= threshold else None
    skipped = 0
    it = 0
    log(f"DGM iteration 0: {len(archive)} candidates, best {best.score:.3f} (threshold {threshold})")
    while reached is None and it < budget:
        it += 1
        children: list[Hypothesis] = []
        parents: list[str | None] = []
        for _ in range(children_per_iteration):
            p = _pick(archive, rng, pk_alpha)
            if len(archive) > 1 and rng.random() < crossover_rate:
                q = _pick([c for c in archive if c is not p], rng, pk_alpha)
                child = crossover(p.hypothesis, q.hypothesis, rng)
                q.children += 1
            else:
                child = generator.mutate(p.hypothesis, request, rng, guidance)
            p.children += 1
            if child.text in seen:  # stage 1: no scoring for duplicates
                skipped += 1
                continue
            seen.add(child.text)
            children.append(child)
            parents.append(p.hypothesis.id)
        if children:  # stage 2: full calibrated scoring
            admit(children, it, parents)
        best = max(archive, key=lambda c: c.score)
        history.append(best.score)
        log(f"DGM iteration {it}: {len(children)} new, best {best.score:.3f}")
        if best.score >= threshold:
            reached = it
    return EvolutionResult(archive, best, it, reached, threshold, skipped, history)
