"""Operations: what production says about each DAC (lifecycle steps 30-32) and the sensors
that start an evolution run on a real event: inputs drifting from the DAC's reference, or its
accuracy on confirmed feedback falling under the client's constraint."""

import json

import dagster as dg

from defs.common import OWNERS, TZ, dac_partitions, tidy
from defs.lifecycle import dac_lifecycle_job
from iv_pipelines.paths import atomic_write_text
from resources.deploy import DeployerResource
from resources.discovery import AceMemoryResource
from resources.storage import FactoryStorage

MIN_FEEDBACK = 20  # confirmed labels before feedback accuracy can start an evolution run
MAX_PER_TICK = 50
COOLDOWN_S = 24 * 3600  # one evolution run per DAC and trigger a day: drift persists until it is fixed


@dg.asset(
    partitions_def=dac_partitions,
    group_name="operations",
    owners=OWNERS,
    kinds={"python"},
    description=(
        "Lifecycle steps 30-32 for one DAC: production decisions from its capsule's inference log, "
        "drift against the windows its decisions were calibrated on (MMD permutation test, PSI, "
        "class-rate shift), accuracy on confirmed feedback with its interval, the RDR experiments "
        "queued for it, the ACE playbook update, and the decision on a running canary (promote, "
        "roll back or wait)."
    ),
)
def dac_feedback(
    context: dg.AssetExecutionContext,
    storage: FactoryStorage,
    ace: AceMemoryResource,
    deployer: DeployerResource,
) -> dg.MaterializeResult:
    from iv_pipelines.memory.ace import Delta
    from iv_pipelines.ops.feedback import feedback_report
    from iv_pipelines.request import DacRequest

    dac_id = context.partition_key
    layout = storage.layout
    raw = layout.dac_request(dac_id)
    if raw is None:
        raise dg.Failure(description=f"{dac_id}: no saved request; run its lifecycle first")
    req = DacRequest.model_validate(raw)
    if not layout.inference_log_dir(dac_id).is_dir():
        raise dg.Failure(
            description=f"{dac_id}: no inference log at {layout.inference_log_dir(dac_id)} "
            "(not deployed, deployed before capsules kept one, or no window classified yet): "
            "deploy it and send it CSI"
        )
    report = feedback_report(layout, dac_id, ["empty", "walk", "sit", "fall"], req.constraints.min_accuracy)
    if report["playbook"]:
        counts = ace.get().curate(
            [Delta("add", req.domain, text) for text in report["playbook"]], source_dac=dac_id
        )
        report["playbook_curated"] = counts
        context.log.info(f"{dac_id}: ACE playbook {counts}")
    # a canary of this DAC (an evolution run's version beside the deployed one): decide it now
    from iv_pipelines.deploy.canary import CanaryController, DeploymentHistory

    canary = CanaryController(layout, deployer.local(storage.root))
    if canary.state(dac_id) is not None:
        d = canary.evaluate(dac_id)
        report["canary"] = {"decision": d.decision, "reason": d.reason, "evidence": d.evidence}
        context.log.info(f"{dac_id} canary: {d.decision}: {d.reason}")
    report["aliases"] = DeploymentHistory(layout, dac_id).aliases()
    out = layout.dac_dir(dac_id) / "feedback_report.json"
    atomic_write_text(out, json.dumps(report, indent=2, default=str) + "\n")
    drift, fb, prod = report["drift"] or {}, report["feedback"], report["production"]
    context.log.info(
        f"{dac_id}: {prod['windows']} logged windows from {len(prod['devices'])} device(s); "
        f"drift p={drift.get('p_value')}; feedback {fb['correct']}/{fb['n']}"
    )
    return dg.MaterializeResult(
        metadata=tidy(
            {
                "drifted": bool(drift.get("drifted")),
                "drift_p_value": drift.get("p_value"),
                "drift_mmd2": drift.get("mmd2"),
                "drift_note": report.get("drift_note", ""),
                "feedback_n": fb["n"],
                "feedback_accuracy": fb["accuracy"],
                "feedback_ci95": dg.MetadataValue.json(fb["ci95"]),
                "feedback_below_constraint": fb["below_constraint"],
                "min_accuracy": fb["min_accuracy"],
                "fall_alerts": f"{fb['fall_alerts_confirmed']} of {fb['fall_alerts_answered']} confirmed",
                "production_windows": prod["windows"],
                "production_devices": dg.MetadataValue.json(prod["devices"]),
                "class_rate_shift": dg.MetadataValue.json(report["class_rate_shift"]),
                "rdr_experiments": len(report["rdr_experiments"]),
                "canary": (report.get("canary") or {}).get("decision", "none"),
                "canary_reason": (report.get("canary") or {}).get("reason", ""),
                "aliases": dg.MetadataValue.json(report["aliases"]),
                "playbook": dg.MetadataValue.md("\n".join(f"- {b}" for b in report["playbook"]) or "(none)"),
                "report_path": dg.MetadataValue.path(str(out)),
            }
        )
    )


dac_feedback_job = dg.define_asset_job(
    name="dac_feedback_job",
    selection=dg.AssetSelection.assets("dac_feedback"),
    partitions_def=dac_partitions,
    description="Drift, feedback accuracy, RDR and the ACE update for one deployed DAC.",
)


@dg.schedule(
    job=dac_feedback_job,
    cron_schedule="30 */6 * * *",
    execution_timezone=TZ,
    required_resource_keys={"storage"},
    description="Every 6 hours: dac_feedback for every DAC whose capsule keeps an inference log.",
)
def dac_feedback_schedule(context: dg.ScheduleEvaluationContext):
    layout = context.resources.storage.layout
    root = layout.root / "inference"
    dacs = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    known = set(layout.requested_dacs())
    tick = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
    return [dg.RunRequest(run_key=f"feedback:{d}:{tick}", partition_key=d) for d in dacs if d in known] or (
        dg.SkipReason("no DAC keeps an inference log yet")
    )


def _new_feedback_events(context: dg.SensorEvaluationContext) -> tuple[list, str | None]:
    """dac_feedback materializations after the cursor (oldest first, at most 500 per tick)."""
    res = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("dac_feedback"),
            after_storage_id=int(context.cursor) if context.cursor else None,
        ),
        limit=500,
        ascending=True,
    )
    recs = res.records
    return recs, (str(recs[-1].storage_id) if recs else None)


def _cooling(instance: dg.DagsterInstance, dac: str, trigger: str, now_s: float) -> bool:
    """Whether `dac` had an evolution run for `trigger` in the last COOLDOWN_S."""
    import datetime as dt

    runs = instance.get_run_records(
        dg.RunsFilter(
            tags={"dagster/partition": dac, "iv/trigger": trigger},
            created_after=dt.datetime.fromtimestamp(now_s - COOLDOWN_S, tz=dt.UTC),
        ),
        limit=1,
    )
    return bool(runs)


def _latest_per_dac(recs) -> dict[str, dict]:
    out = {}
    for r in recs:
        ev = r.event_log_entry
        out[ev.dagster_event.partition] = {
            k: v.value for k, v in ev.asset_materialization.metadata.items()
        } | {"_ts": int(ev.timestamp * 1000)}
    return out


def _evolution_requests(context, trigger: str, fires, reason, quiet: str, cooled: str):
    """The shared tick of the two sensors: new dac_feedback reports after the cursor, the
    newest per DAC; a run request (tags: trigger and reason) for each DAC `fires` selects that
    had no evolution run for `trigger` in the last day."""
    import time

    recs, cursor = _new_feedback_events(context)
    if cursor is None:
        return dg.SkipReason("no new dac_feedback materialization")
    context.update_cursor(cursor)
    latest = _latest_per_dac(recs)
    selected = sorted(d for d, md in latest.items() if fires(md))
    hits = [d for d in selected if not _cooling(context.instance, d, trigger, time.time())]
    if not hits:
        note = f"; {len(selected)} {cooled} but had an evolution run in the last 24 h" if selected else ""
        return dg.SkipReason(f"{len(latest)} DAC(s) reported: {quiet}{note}")
    return [
        dg.RunRequest(
            run_key=f"{trigger}:{d}:{latest[d]['_ts']}",
            partition_key=d,
            tags={"iv/trigger": trigger, "iv/reason": reason(latest[d])},
        )
        for d in hits[:MAX_PER_TICK]
    ]


@dg.sensor(
    job=dac_lifecycle_job,
    minimum_interval_seconds=60,
    description="A DAC whose production inputs drifted from its reference (MMD permutation p < 0.01) "
    "gets an evolution run.",
)
def dac_drift_sensor(context: dg.SensorEvaluationContext):
    return _evolution_requests(
        context,
        "drift",
        lambda md: bool(md.get("drifted")),
        lambda md: f"inputs drifted (MMD p={md.get('drift_p_value')})",
        quiet="no drift",
        cooled="drifted",
    )


@dg.sensor(
    job=dac_lifecycle_job,
    minimum_interval_seconds=60,
    description=f"A DAC whose accuracy on >= {MIN_FEEDBACK} confirmed labels is under the client's "
    "min_accuracy (Wilson 95 % upper bound below it) gets an evolution run.",
)
def feedback_accuracy_sensor(context: dg.SensorEvaluationContext):
    return _evolution_requests(
        context,
        "feedback_accuracy",
        lambda md: bool(md.get("feedback_below_constraint")) and (md.get("feedback_n") or 0) >= MIN_FEEDBACK,
        lambda md: (
            f"accuracy {md.get('feedback_accuracy')} on {md.get('feedback_n')} confirmed labels, "
            f"95% CI {md.get('feedback_ci95')}, under {md.get('min_accuracy')}"
        ),
        quiet="feedback accuracy within constraints",
        cooled="under it",
    )
