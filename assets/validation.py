"""Calibration and validation of hypotheses (seed steps 4-8): calibrated OBMI + ODS + DGM."""

import json

import dagster as dg

from assets.metering import metered
from assets.partitions import dac_partitions
from iv_pipelines.discovery.hypothesis import Hypothesis
from iv_pipelines.paths import atomic_write_text
from iv_pipelines.request import DacRequest
from iv_pipelines.scoring.calibration import Calibration, calibration_code_version
from resources.discovery import (
    AceMemoryResource,
    EmbedderResource,
    HypothesisGeneratorResource,
    ScoringResource,
)
from resources.storage import FactoryStorage

OWNERS = ["team:dac-factory"]
NULL_PASS_RATE_BAND = (0.02, 0.10)
NULL_PASS_RATE_CHECK = "null_pass_rate_in_band"
NOT_EVERY_CANDIDATE_CHECK = "not_every_candidate_passes"
SCORE_CHECK = "score_above_threshold"


@dg.asset(
    group_name="discovery",
    owners=OWNERS,
    kinds={"python", "pytorch"},
    code_version=calibration_code_version(),
    automation_condition=dg.AutomationCondition.missing() | dg.AutomationCondition.code_version_changed(),
    description=(
        "Split-conformal calibration of the OBMI operators and ODS against the declared null "
        "set (off-topic text, keyword salad of the request, paraphrases of memory, unconditioned "
        "generator output) built from simulated requests. Refresh when the embedder, generator "
        "or memory changes."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            NULL_PASS_RATE_CHECK,
            asset="score_calibration",
            blocking=True,
            description="held-out null pass rate within [2%, 10%]",
        ),
        dg.AssetCheckSpec(
            NOT_EVERY_CANDIDATE_CHECK,
            asset="score_calibration",
            blocking=True,
            description="the threshold rejects some generator candidates",
        ),
    ],
)
@metered
def score_calibration(
    context: dg.AssetExecutionContext,
    embedder: EmbedderResource,
    scoring: ScoringResource,
    storage: FactoryStorage,
):
    from iv_pipelines.scoring.calibration import build_calibration

    scorer = scoring.scorer(embedder.get())
    cal, report = build_calibration(
        scorer,
        scoring.positives(),
        seed=scoring.calibration_seed,
        requests_per_domain=scoring.requests_per_domain,
        nulls_per_kind=scoring.nulls_per_kind,
        threshold=scoring.threshold,
        log=context.log.info,
    )
    path = storage.root / "calibration" / "score_calibration.npz"
    cal.save(path)
    atomic_write_text(path.with_suffix(".report.json"), json.dumps(report.to_dict(), indent=2) + "\n")
    lo, hi = NULL_PASS_RATE_BAND
    rows = "\n".join(f"| {k} | {v:.3f} |" for k, v in report.null_pass_rate_by_kind.items())
    yield dg.Output(
        cal,
        metadata={
            "calibration_path": dg.MetadataValue.path(str(path)),
            "calibration_digest": cal.digest(),
            "threshold": cal.threshold,
            "null_pass_rate_test": report.null_pass_rate,
            "positive_pass_rate": report.positive_pass_rate,
            "positive_auroc": report.positive_auroc,
            "generator_pass_rate": report.generator_pass_rate,
            "ods_null_pass_rate_test": report.ods_null_pass_rate,
            "n_null": dg.MetadataValue.json(report.n_null),
            "operator_auroc": dg.MetadataValue.json(report.operator_auroc),
            "null_pass_rate_by_kind": dg.MetadataValue.md("| null kind | pass rate |\n|---|---|\n" + rows),
        },
    )
    yield dg.AssetCheckResult(
        check_name=NULL_PASS_RATE_CHECK,
        passed=bool(lo <= report.null_pass_rate <= hi),
        metadata={
            "null_pass_rate": report.null_pass_rate,
            "band": f"[{lo}, {hi}]",
            "n_test_nulls": report.n_null["test"],
        },
    )
    yield dg.AssetCheckResult(
        check_name=NOT_EVERY_CANDIDATE_CHECK,
        passed=bool(report.generator_pass_rate < 1.0 and report.positive_pass_rate < 1.0),
        metadata={
            "generator_pass_rate": report.generator_pass_rate,
            "positive_pass_rate": report.positive_pass_rate,
        },
    )


class EvolutionSettings(dg.Config):
    budget: int = 8
    children_per_iteration: int = 4
    pk_alpha: float = 10.0
    crossover_rate: float = 0.3
    seed: int = 0


@dg.asset(
    partitions_def=dac_partitions,
    group_name="discovery",
    owners=OWNERS,
    kinds={"python", "pytorch", "sqlite"},
    description=(
        "The hypothesis that passes the calibrated gate: OBMI operators (AROE, AESP, QERO, AIEO) "
        "as null-calibrated percentiles, PRIN, ODS (asal_consciousness); DGM evolution until the "
        "threshold or the budget; every attempt recorded in ACE memory."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            SCORE_CHECK,
            asset="validated_hypothesis",
            blocking=True,
            description="calibrated validation score >= threshold",
        )
    ],
)
@metered
def validated_hypothesis(
    context: dg.AssetExecutionContext,
    config: EvolutionSettings,
    dac_request: DacRequest,
    shadow_twin_context,
    hypotheses: list[Hypothesis],
    score_calibration: Calibration,
    embedder: EmbedderResource,
    scoring: ScoringResource,
    generator: HypothesisGeneratorResource,
    ace: AceMemoryResource,
    storage: FactoryStorage,
):
    from iv_pipelines.discovery.generator import resolve_domain
    from iv_pipelines.scoring.validate import EvolutionConfig, playbook_deltas, validate_hypotheses

    domain = resolve_domain(dac_request).name
    scorer = scoring.scorer(embedder.get())
    stale = score_calibration.mismatch(scorer.embedder.model_id, scorer.precision)
    if stale:
        raise dg.Failure(description=stale)
    memory = ace.get()
    outcome, _ = validate_hypotheses(
        dac_request,
        hypotheses,
        generator.get(),
        scorer,
        score_calibration,
        memory_texts=memory.validated_texts(domain, exclude_dac=dac_request.dac_id),
        guidance=memory.guidance(domain, exclude_dac=dac_request.dac_id),
        config=EvolutionConfig(**config.model_dump()),
        extra_facts=shadow_twin_context.facts,
        log=context.log.info,
    )
    memory.record_attempts(dac_request.dac_id, domain, outcome.trace)
    counts = memory.curate(playbook_deltas(domain, outcome), source_dac=dac_request.dac_id)
    out = storage.dac_dir(dac_request.dac_id) / "validated_hypothesis.json"
    atomic_write_text(out, json.dumps(outcome.to_dict(), indent=2, default=str) + "\n")
    ops = "| operator | raw | percentile |\n|---|---|---|\n" + "\n".join(
        f"| {op} | {outcome.raw[op]:.4f} | {outcome.percentiles[op]:.3f} |" for op in outcome.raw
    )
    trace = "| iter | id | score | passed | task |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {a.iteration} | {a.hypothesis_id} | {a.validation_score:.3f} | {a.passed} | {a.task} |"
        for a in outcome.trace
    )
    yield dg.Output(
        outcome,
        metadata={
            "validated_hypothesis_path": dg.MetadataValue.path(str(out)),
            "hypothesis": dg.MetadataValue.md(f"> {outcome.hypothesis.text}"),
            "validation_score": outcome.validation_score,
            "PRIN": outcome.prin,
            "asal_consciousness": outcome.ods,
            "threshold": outcome.threshold,
            "iterations": outcome.iterations,
            "iterations_to_threshold": outcome.iterations_to_threshold
            if outcome.iterations_to_threshold is not None
            else -1,
            "candidates_scored": outcome.candidates_scored,
            "operators": dg.MetadataValue.md(ops),
            "ods_metrics": dg.MetadataValue.json(
                outcome.ods_metrics | {"percentiles": outcome.ods_percentiles}
            ),
            "evolution_trace": dg.MetadataValue.md(trace),
            "ace_deltas": dg.MetadataValue.json(counts),
            "calibration_digest": outcome.calibration_digest,
        },
    )
    yield dg.AssetCheckResult(
        check_name=SCORE_CHECK,
        passed=bool(outcome.passed),
        metadata={
            "validation_score": outcome.validation_score,
            "threshold": outcome.threshold,
            "weakest_operator": min(outcome.percentiles, key=outcome.percentiles.get),
            "why": "beats the null set"
            if outcome.passed
            else (
                f"best of {outcome.candidates_scored} candidates after {outcome.iterations} DGM "
                f"iterations scored {outcome.validation_score:.3f} < {outcome.threshold}"
            ),
        },
    )
