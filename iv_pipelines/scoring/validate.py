"""Validation of a DAC's hypotheses: calibrated scoring + DGM evolution + ODS + ACE deltas.

`validate_hypotheses` is the recipe the `validated_hypothesis` asset calls; it is plain
Python so it can be run and tested without Dagster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from iv_pipelines.discovery.context import context_text
from iv_pipelines.discovery.dgm import EvolutionResult, Scored, evolve
from iv_pipelines.discovery.hypothesis import Hypothesis
from iv_pipelines.memory.ace import Attempt, reflect
from iv_pipelines.request import DacRequest
from iv_pipelines.scoring.calibration import TRAJECTORY_LEN, Calibration
from iv_pipelines.scoring.obmi import OPERATORS
from iv_pipelines.scoring.ods import METRICS, trajectory_metrics


@dataclass
class EvolutionConfig:
    budget: int = 8
    children_per_iteration: int = 4
    pk_alpha: float = 10.0
    crossover_rate: float = 0.3
    seed: int = 0


@dataclass
class ValidationOutcome:
    request_digest: str
    hypothesis: Hypothesis
    raw: dict[str, float]
    percentiles: dict[str, float]
    prin: float  # weighted geometric mean of the percentiles
    validation_score: float  # PRIN calibrated against the null PRINs: the gated score
    threshold: float
    passed: bool
    ods: float  # asal_consciousness
    ods_metrics: dict[str, float]  # raw ASAL metrics
    ods_percentiles: dict[str, float]
    iterations: int
    iterations_to_threshold: int | None
    candidates_scored: int
    trace: list[Attempt] = field(default_factory=list)
    calibration_digest: str = ""

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k not in ("hypothesis", "trace")}
        d["hypothesis"] = self.hypothesis.to_dict()
        d["trace"] = [a.__dict__ | {"guidance": list(a.guidance)} for a in self.trace]
        return d


def evenly_spaced(archive: list[Scored], k: int = TRAJECTORY_LEN) -> list[Scored]:
    if len(archive) <= k:
        return archive
    idx = np.unique(np.linspace(0, len(archive) - 1, k).round().astype(int))
    return [archive[i] for i in idx]


def weakest_operator(a: Attempt) -> str:
    pct = a.scores["percentiles"]
    return min(OPERATORS, key=lambda op: pct[op])


def validate_hypotheses(
    request: DacRequest,
    initial: list[Hypothesis],
    generator,
    scorer,
    calibration: Calibration,
    memory_texts: list[str],
    guidance: list[str],
    config: EvolutionConfig,
    extra_facts: list[str] | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> tuple[ValidationOutcome, EvolutionResult]:
    context = context_text(request, extra_facts)

    def evaluate(hyps: list[Hypothesis]):
        raw = scorer.raw_scores([h.text for h in hyps], request.text, context, memory_texts)
        return raw, calibration.percentiles(raw), calibration.prin(raw), calibration.validation_score(raw)

    result = evolve(
        generator,
        request,
        evaluate,
        initial,
        calibration.threshold,
        budget=config.budget,
        children_per_iteration=config.children_per_iteration,
        pk_alpha=config.pk_alpha,
        crossover_rate=config.crossover_rate,
        guidance=guidance,
        seed=config.seed,
        log=log,
    )
    trace = [
        Attempt(
            iteration=c.iteration,
            hypothesis_id=c.hypothesis.id,
            text=c.hypothesis.text,
            scores={
                "raw": dict(zip(OPERATORS, map(float, c.raw), strict=True)),
                "percentiles": dict(zip(OPERATORS, map(float, c.percentiles), strict=True)),
                "PRIN": c.prin,
            },
            validation_score=c.score,
            passed=c.score >= calibration.threshold,
            guidance=c.hypothesis.guidance,
            approach=c.hypothesis.approach,
            task=c.hypothesis.task,
        )
        for c in result.archive
    ]
    traj = evenly_spaced(result.archive)
    z = scorer.embedder.sentences([c.hypothesis.text for c in traj])
    target = scorer.embedder.sentences([request.text])[0]
    ods_raw = trajectory_metrics(z, target)
    ods_pct, ods = calibration.ods.score(ods_raw[None, :])
    best = result.best
    outcome = ValidationOutcome(
        request_digest=request.digest(),
        hypothesis=best.hypothesis,
        raw=dict(zip(OPERATORS, map(float, best.raw), strict=True)),
        percentiles=dict(zip(OPERATORS, map(float, best.percentiles), strict=True)),
        prin=best.prin,
        validation_score=best.score,
        threshold=calibration.threshold,
        passed=result.passed,
        ods=float(ods[0]),
        ods_metrics=dict(zip(METRICS, map(float, ods_raw), strict=True)),
        ods_percentiles=dict(zip(METRICS, map(float, ods_pct[0]), strict=True)),
        iterations=result.iterations,
        iterations_to_threshold=result.iterations_to_threshold,
        candidates_scored=len(result.archive),
        trace=trace,
        calibration_digest=calibration.digest(),
    )
    return outcome, result


def playbook_deltas(domain: str, outcome: ValidationOutcome):
    return reflect(domain, outcome.trace, weakest=weakest_operator)
