"""UI group `discovery` (lifecycle steps 1-10): the client request, hypotheses, the Shadow
Twin context, the score calibration and the validated hypothesis; the request drop-folder
sensor and the calibration job."""

import json

import dagster as dg

from defs.common import OWNERS, dac_partitions, image, metered, tidy
from defs.lifecycle import dac_lifecycle_job
from iv_pipelines.discovery.hypothesis import Hypothesis
from iv_pipelines.errors import InputError
from iv_pipelines.intake import process_drop_folder
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


@dg.asset(
    partitions_def=dac_partitions,
    group_name="discovery",
    owners=OWNERS,
    kinds={"python", "json"},
    description="The client's request for this DAC, loaded from the request store and validated.",
)
@metered
def dac_request(context: dg.AssetExecutionContext, storage: FactoryStorage) -> dg.Output[DacRequest]:
    dac_id = context.partition_key
    try:
        request = storage.requests().get(dac_id)
    except KeyError as err:
        raise dg.Failure(description=str(err.args[0])) from None
    except InputError as err:  # a stored file edited by hand into something invalid
        raise dg.Failure(description=str(err)) from None
    out = storage.dac_dir(dac_id) / "request.json"
    # the canonical form (what the request digest covers): fields added to requests later, left
    # at their defaults, do not change the file (nor the DAC's lineage) of a request without them
    atomic_write_text(out, json.dumps(request.canonical_dict(), indent=2, sort_keys=True) + "\n")
    context.log.info(f"validated request {dac_id} for client {request.client_id} -> {out}")
    return dg.Output(
        request,
        metadata=tidy(
            {
                "request_path": dg.MetadataValue.path(str(out)),
                "client_id": request.client_id,
                "domain": request.domain,
                "target": request.target,
                "request_digest": request.digest(),
                "text": dg.MetadataValue.md(f"> {request.text}"),
            }
        ),
    )


class HypothesesConfig(dg.Config):
    n_initial: int = 8
    seed: int = 0


@dg.asset(
    partitions_def=dac_partitions,
    group_name="discovery",
    owners=OWNERS,
    kinds={"python"},
    description=(
        "Initial structured hypotheses for the request (task, approach, data, target metric, "
        "risk), composed by the generator backend with the domain's ACE playbook as guidance."
    ),
)
@metered
def hypotheses(
    context: dg.AssetExecutionContext,
    config: HypothesesConfig,
    dac_request: DacRequest,
    generator: HypothesisGeneratorResource,
    ace: AceMemoryResource,
    storage: FactoryStorage,
) -> dg.Output[list[Hypothesis]]:
    from iv_pipelines.discovery.generator import asked_tasks, resolve_domain

    domain = resolve_domain(dac_request)
    guidance = ace.get().guidance(domain.name, exclude_dac=dac_request.dac_id)
    gen = generator.get()
    hyps = gen.propose(dac_request, config.n_initial, config.seed, guidance)
    asked = list(asked_tasks(domain.name, dac_request.text))
    out = storage.dac_dir(dac_request.dac_id) / "hypotheses.json"
    atomic_write_text(out, json.dumps([h.to_dict() for h in hyps], indent=2) + "\n")
    context.log.info(
        f"{gen.name} generator proposed {len(hyps)} hypotheses for {domain.name}; "
        f"the tasks the request asks for: {'; '.join(asked)}"
    )
    table = "| id | task | approach |\n|---|---|---|\n" + "\n".join(
        f"| {h.id} | {h.task} | {h.approach} |" for h in hyps
    )
    return dg.Output(
        hyps,
        metadata=tidy(
            {
                "hypotheses_path": dg.MetadataValue.path(str(out)),
                "count": len(hyps),
                "domain": domain.name,
                "generator": gen.name,
                "request_tasks": dg.MetadataValue.json(asked),
                "playbook_guidance": len(guidance),
                "candidates": dg.MetadataValue.md(table),
            }
        ),
    )


def load_calibrations(
    request: DacRequest, storage: FactoryStorage, log, section: str = "calibration"
) -> list:
    """The request's stored calibration captures as (Calibration, origin) pairs; with
    `section="evaluation"`, its evaluation captures (always real) the same way."""
    from iv_pipelines.sensing.calibration import Calibration
    from iv_pipelines.sensing.formats import CsiFormatError, read_capture

    store = storage.requests()
    out = []
    for i, spec in enumerate(getattr(request, section)):
        try:
            cap, rep, timed = read_capture(store.calibration_file(spec), spec.format, spec.rate_hz)
        except (CsiFormatError, KeyError) as e:
            raise dg.Failure(description=f"{section}[{i}] ({spec.activity}): {e}") from e
        origin = getattr(spec, "origin", "real")
        prefix = "" if section == "calibration" else "eval-"
        name = f"{prefix}{spec.activity}-{i}" + (f" ({spec.device})" if spec.device else "")
        log(
            f"{section}[{i}]: {spec.activity}, {len(cap.csi)} packets over {cap.t_s[-1] - cap.t_s[0]:.1f} s, {origin}; {rep.summary()}"
        )
        out.append((Calibration(spec.activity, cap, timed, name), origin))
    return out


def _fit_table(fit) -> str:
    rows = [
        f"| {k} | {v:.4g} | {fit.sources.get(k, '')} |"
        for k, v in fit.device.to_dict().items()
        if k != "name"
    ]
    if fit.walk_speed_ms:
        rows.append(f"| resident walk speed (m/s) | {fit.walk_speed_ms:.2f} | fitted (walk capture) |")
    stats = [f"| {k} | {v:.4g} | {fit.achieved.get(k, float('nan')):.4g} |" for k, v in fit.targets.items()]
    return (
        "| parameter | value | source |\n|---|---|---|\n"
        + "\n".join(rows)
        + "\n\n| statistic | real capture | fitted twin |\n|---|---|---|\n"
        + "\n".join(stats)
    )


class TwinConfig(dg.Config):
    episodes_per_activity: int = 2
    seed: int = 0


@dg.asset(
    partitions_def=dac_partitions,
    pool="cpu",
    group_name="discovery",
    owners=OWNERS,
    kinds={"numpy", "csv"},
    description=(
        "Shadow Twin of the client's environment: the room from the request, the client's device "
        "fitted to the request's calibration captures (rate, drops, gain, noise floor, motion "
        "noise, body strength, walking speed), simulated ESP32 CSI episodes (empty, walk, sit, "
        "fall) in the esp-csi line format, context facts that ground the hypotheses, and "
        "amplitude/Doppler plots per activity."
    ),
)
@metered
def shadow_twin_context(
    context: dg.AssetExecutionContext, config: TwinConfig, dac_request: DacRequest, storage: FactoryStorage
):
    from iv_pipelines.discovery.generator import resolve_domain
    from iv_pipelines.sensing.context import CONTEXT_FILE, context_json
    from iv_pipelines.sensing.formats import write_esp_csi_lines
    from iv_pipelines.sensing.pipeline import spectrogram_png, twin_context

    domain = resolve_domain(dac_request).name
    calibrations = load_calibrations(dac_request, storage, context.log.info)
    evaluations = [c for c, _ in load_calibrations(dac_request, storage, context.log.info, "evaluation")]
    try:
        twin = twin_context(
            dac_request, domain, config.episodes_per_activity, config.seed, calibrations, evaluations
        )
    except ValueError as e:  # a capture that yields no window: named, nothing written
        raise dg.Failure(description=str(e)) from e
    out = storage.dac_dir(dac_request.dac_id) / "twin"
    metadata = tidy(
        {
            "simulator": twin.simulator,
            "domain": domain,
            "dataset_digest": twin.dataset_digest,
            "resident": twin.resident,
            "facts": dg.MetadataValue.md(
                "\n".join(f"- {f}" for f in twin.facts) or "(no twin for this domain)"
            ),
        }
    )
    if twin.room is not None:
        lines = []
        for e in twin.episodes:
            lines += [f"# activity={e.activity} seed={e.seed}"] + write_esp_csi_lines(e.csi, e.t_s)[1:]
        from iv_pipelines.sensing.formats import ESP_CSI_HEADER

        atomic_write_text(out / "episodes.csv", ESP_CSI_HEADER + "\n" + "\n".join(lines) + "\n")
        from dataclasses import asdict

        atomic_write_text(out / "room.json", json.dumps(asdict(twin.room), indent=2) + "\n")
        png = spectrogram_png(twin.episodes, out / "activities.png")
        cal = twin.calibration
        atomic_write_text(
            out / "calibration.json", json.dumps(cal.to_dict(), indent=2, sort_keys=True) + "\n"
        )
        # the device context the adapter trains and is evaluated with: the package's
        # runtime.json carries it, so the capsule conditions what it serves on it too
        atomic_write_text(out / CONTEXT_FILE, context_json(cal.context))
        if cal.fit:
            metadata |= {
                "device_fit": dg.MetadataValue.md(_fit_table(cal.fit)),
                "calibration_captures": dg.MetadataValue.json(
                    [c.summary() for c in cal.captures if c.split != "test"]
                ),
                "calibration_warnings": dg.MetadataValue.json(cal.warnings),
            }
            for w in cal.warnings:
                context.log.warning(f"calibration: {w}")
        else:
            metadata["device_fit"] = "no calibration captures in the request: device prior"
        tests = [c.summary() for c in cal.captures if c.split == "test"]
        if tests:  # evidence only: never fitted, trained or chosen on (sensing/client.py)
            metadata["evaluation_captures"] = dg.MetadataValue.json(tests)
        metadata |= {
            "episodes_path": dg.MetadataValue.path(str(out / "episodes.csv")),
            "room": dg.MetadataValue.json(
                {
                    "width_m": twin.room.width_m,
                    "depth_m": twin.room.depth_m,
                    "height_m": twin.room.height_m,
                    "ap": twin.room.ap,
                    "esp": twin.room.esp,
                    "walls": twin.room.wall_material,
                }
            ),
            "episodes": len(twin.episodes),
            "activity_plot": image(png),
        }
        context.log.info(f"twin: {len(twin.episodes)} episodes in room {twin.room.digest()} -> {out}")
    else:
        context.log.info(
            f"no Shadow Twin for domain {domain}: context facts come from the knowledge base only"
        )
    twin.episodes = []  # the snapshot on disk holds them; keep the stored value small
    return dg.Output(twin, metadata=metadata)


NULL_PASS_RATE_BAND = (0.02, 0.10)

NULL_PASS_RATE_CHECK = "null_pass_rate_in_band"

NOT_EVERY_CANDIDATE_CHECK = "not_every_candidate_passes"

SCORE_CHECK = "score_above_threshold"


@dg.asset(
    group_name="discovery",
    owners=OWNERS,
    kinds={"python", "pytorch"},
    io_manager_key="calibration_io_manager",  # runs read <storage>/calibration, not a pickle
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
    path = storage.layout.score_calibration_file()
    cal.save(path)
    atomic_write_text(path.with_suffix(".report.json"), json.dumps(report.to_dict(), indent=2) + "\n")
    lo, hi = NULL_PASS_RATE_BAND
    rows = "\n".join(f"| {k} | {v:.3f} |" for k, v in report.null_pass_rate_by_kind.items())
    yield dg.Output(
        cal,
        metadata=tidy(
            {
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
                "null_pass_rate_by_kind": dg.MetadataValue.md(
                    "| null kind | pass rate |\n|---|---|\n" + rows
                ),
            }
        ),
    )
    yield dg.AssetCheckResult(
        check_name=NULL_PASS_RATE_CHECK,
        passed=bool(lo <= report.null_pass_rate <= hi),
        metadata=tidy(
            {
                "null_pass_rate": report.null_pass_rate,
                "band": f"[{lo}, {hi}]",
                "n_test_nulls": report.n_null["test"],
            }
        ),
    )
    yield dg.AssetCheckResult(
        check_name=NOT_EVERY_CANDIDATE_CHECK,
        passed=bool(report.generator_pass_rate < 1.0 and report.positive_pass_rate < 1.0),
        metadata=tidy(
            {
                "generator_pass_rate": report.generator_pass_rate,
                "positive_pass_rate": report.positive_pass_rate,
            }
        ),
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
    from iv_pipelines.scoring.novelty import nearest_delivery

    memory = ace.get()
    bank = nearest_delivery(
        scorer.embedder, dac_request.text, memory.deliveries(domain, exclude_dac=dac_request.dac_id)
    )
    context.log.info(bank.describe())
    outcome, _ = validate_hypotheses(
        dac_request,
        hypotheses,
        generator.get(),
        scorer,
        score_calibration,
        memory_texts=bank.texts,
        guidance=memory.guidance(domain, exclude_dac=dac_request.dac_id),
        config=EvolutionConfig(**config.model_dump()),
        extra_facts=shadow_twin_context.facts,
        log=context.log.info,
    )
    memory.record_attempts(dac_request.dac_id, domain, outcome.trace, request_text=dac_request.text)
    counts = memory.curate(playbook_deltas(domain, outcome), source_dac=dac_request.dac_id)
    out = storage.dac_dir(dac_request.dac_id) / "validated_hypothesis.json"
    novelty = {"dacs": bank.dacs, "request_cosine": bank.similarity, "hypotheses": len(bank.texts)}
    # the template generator proposes only the tasks the request asks for; an LLM backend writes
    # its own task phrase, and the validation score does not check it: say so when it misses
    from iv_pipelines.discovery.generator import request_tasks

    asked = request_tasks(resolve_domain(dac_request), dac_request.text, scorer.embedder)
    task_check = {"task": outcome.hypothesis.task, "request_tasks": asked}
    task_check["matches"] = outcome.hypothesis.task in asked
    if not task_check["matches"]:
        context.log.warning(
            f"the validated hypothesis's task ({outcome.hypothesis.task}) is not one the request asks for "
            f"({'; '.join(asked)}): the {generator.backend} generator proposed it and the validation score "
            "does not check the task; the DAC trains the domain's model whatever the hypothesis says "
            "(docs/lifecycle.md, Discovery)"
        )
    record = {**outcome.to_dict(), "novelty_memory": novelty, "task_check": task_check}
    atomic_write_text(out, json.dumps(record, indent=2, default=str) + "\n")
    ops = "| operator | raw | percentile |\n|---|---|---|\n" + "\n".join(
        f"| {op} | {outcome.raw[op]:.4f} | {outcome.percentiles[op]:.3f} |" for op in outcome.raw
    )
    ods = "| ASAL metric | raw | percentile vs the null set |\n|---|---|---|\n" + "\n".join(
        f"| {m} | {v:.4f} | {outcome.ods_percentiles[m]:.3f} |" for m, v in outcome.ods_metrics.items()
    )
    trace = "| iter | id | score | passed | task |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {a.iteration} | {a.hypothesis_id} | {a.validation_score:.3f} | {a.passed} | {a.task} |"
        for a in outcome.trace
    )
    yield dg.Output(
        outcome,
        metadata=tidy(
            {
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
                "ods_metrics": dg.MetadataValue.md(ods),
                "evolution_trace": dg.MetadataValue.md(trace),
                "ace_deltas": dg.MetadataValue.json(counts),
                "calibration_digest": outcome.calibration_digest,
                "novelty_memory": bank.describe(),
                "task_matches_request": task_check["matches"],
                "request_tasks": dg.MetadataValue.json(asked),
            }
        ),
    )
    hint = "" if outcome.passed else bank.repeat_hint()
    yield dg.AssetCheckResult(
        check_name=SCORE_CHECK,
        passed=bool(outcome.passed),
        description=f"DAC {dac_request.dac_id}: validation score {outcome.validation_score:.3f} "
        f"{'>=' if outcome.passed else '<'} threshold {outcome.threshold:.3f}"
        + (f"; {hint}" if hint else ""),
        metadata=tidy(
            {
                "dac_id": dac_request.dac_id,
                "validation_score": outcome.validation_score,
                "threshold": outcome.threshold,
                "weakest_operator": min(outcome.percentiles, key=outcome.percentiles.get),
                "why": "beats the null set"
                if outcome.passed
                else (
                    f"best of {outcome.candidates_scored} candidates after {outcome.iterations} DGM "
                    f"iterations scored {outcome.validation_score:.3f} < {outcome.threshold}"
                ),
            }
        ),
    )


score_calibration_job = dg.define_asset_job(
    name="score_calibration_job",
    selection=dg.AssetSelection.assets("score_calibration"),
    description="Rebuilds the null set and the split-conformal calibration of the scores.",
)

MAX_FILES_PER_TICK = 50  # bounded work: Dagster cuts sensor ticks at 60 s


@dg.sensor(
    name="dac_request_drop_sensor",
    job=dac_lifecycle_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the request drop folder: valid request files become `dac` partitions with a "
        "lifecycle run; invalid ones move to rejected/ with the error written beside them."
    ),
)
def dac_request_drop_sensor(context: dg.SensorEvaluationContext, storage: FactoryStorage):
    cursor = json.loads(context.cursor) if context.cursor else {"accepted": 0, "rejected": 0}
    outcome = process_drop_folder(storage.drop_dir(), storage.requests(), MAX_FILES_PER_TICK)
    for r in outcome.rejected:
        context.log.warning(f"rejected {r.source.name}: {r.message} (see {r.error_file})")
    for a in outcome.accepted:
        for w in a.warnings:
            context.log.warning(f"accepted {a.source.name} with a warning: {w}")
    new_ids = [a.request.dac_id for a in outcome.accepted]
    known = set(context.instance.get_dynamic_partitions(dac_partitions.name))
    to_add = sorted({i for i in new_ids if i not in known})
    cursor["accepted"] += len(outcome.accepted)
    cursor["rejected"] += len(outcome.rejected)
    runs = [
        dg.RunRequest(
            partition_key=a.request.dac_id,
            run_key=f"{a.request.dac_id}:{a.request.digest()[:16]}",
            tags={"iv/source_file": a.source.name}
            | ({"iv/intake_warnings": str(len(a.warnings))} if a.warnings else {}),
        )
        for a in outcome.accepted
    ]
    if not runs and not outcome.rejected:
        return dg.SkipReason(f"no request files in {storage.drop_dir()}")
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=[dac_partitions.build_add_request(to_add)] if to_add else [],
        cursor=json.dumps(cursor),
    )
