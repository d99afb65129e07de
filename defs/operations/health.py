"""Operations: the fleet health check every 4 hours, self-healing, and the sensors that
start evolution (a score under its threshold) and healing (a cost anomaly)."""

import json

import dagster as dg

from defs.common import (
    OWNERS,
    schedule,
    tidy,
)
from defs.lifecycle import dac_lifecycle_job
from iv_pipelines.paths import atomic_write_text
from resources.deploy import DeployerResource, EnergyAtlasResource
from resources.sensing import SensingResource
from resources.storage import FactoryStorage

DEFAULT_THRESHOLD = 0.9  # when the request sets no min_accuracy


@dg.asset(
    pool="atlas",
    group_name="operations",
    owners=OWNERS,
    kinds={"python"},
    description=(
        "dac_health_check: probes every deployed DAC (process, readiness, HTTP errors, memory), "
        "recomputes its score on fresh held-out twin episodes of its room, writes capsule "
        "telemetry for energy_history, and flags degraded DACs (an issue, or a score under the "
        "client's min_accuracy)."
    ),
)
def dac_health(
    context: dg.AssetExecutionContext,
    storage: FactoryStorage,
    deployer: DeployerResource,
    sensing: SensingResource,
) -> dg.MaterializeResult:
    import time

    from iv_pipelines.deploy.smoke import smoke_payloads
    from iv_pipelines.ops.health import check_dac
    from iv_pipelines.request import DacRequest
    from iv_pipelines.sensing.pipeline import client_resident, client_room

    local = deployer.local(storage.root)
    rows = []
    seed = int(time.time()) // 3600  # a new set of episodes every hour
    for state in sorted((local.state_dir).glob("*/state.json")):
        dac_id = state.parent.name
        raw = storage.layout.dac_request(dac_id)
        if raw is None:
            context.log.warning(f"{dac_id}: deployed but no saved request; skipped")
            continue
        req = DacRequest.model_validate(raw)
        threshold = req.constraints.min_accuracy or DEFAULT_THRESHOLD
        payloads = smoke_payloads(client_room(req), client_resident(req), 3, seed)
        row = check_dac(local, dac_id, payloads, threshold, storage.layout.telemetry_file())
        rows.append(row)
        (context.log.warning if row.degraded else context.log.info)(
            f"{dac_id}: issue {row.issue}, score {row.score}, threshold {threshold}"
        )
    out = storage.layout.operations_file("health.json")
    atomic_write_text(out, json.dumps([r.to_json() for r in rows], indent=2) + "\n")
    table = (
        "| DAC | issue | score | threshold | degraded | p99 ms |\n|---|---|---|---|---|---|\n"
        + "\n".join(
            f"| {r.dac_id} | {r.issue or '-'} | {'-' if r.score is None else f'{r.score:.3f}'} | {r.threshold} | "
            f"{'YES' if r.degraded else 'no'} | {'-' if r.latency_ms_p99 is None else f'{r.latency_ms_p99:.1f}'} |"
            for r in rows
        )
    )
    return dg.MaterializeResult(
        metadata=tidy(
            {
                "dacs": len(rows),
                "degraded": dg.MetadataValue.json([r.dac_id for r in rows if r.degraded]),
                "scores": dg.MetadataValue.json({r.dac_id: r.score for r in rows}),
                "thresholds": dg.MetadataValue.json({r.dac_id: r.threshold for r in rows}),
                "issues": dg.MetadataValue.json({r.dac_id: r.issue for r in rows}),
                "health": dg.MetadataValue.md(table if rows else "(no deployed DAC)"),
                "health_path": dg.MetadataValue.path(str(out)),
            }
        )
    )


class HealConfig(dg.Config):
    dac_id: str
    reason: str = "manual"


@dg.op(description="Diagnose one deployed DAC and, if something is wrong, heal it (ops.healing).")
def heal_dac(
    context: dg.OpExecutionContext,
    config: HealConfig,
    storage: FactoryStorage,
    deployer: DeployerResource,
    atlas: EnergyAtlasResource,
) -> dict:
    from iv_pipelines.ops.healing import Healer, diagnose

    local = deployer.local(storage.root)
    diag = diagnose(local, config.dac_id)
    context.log.info(f"{config.dac_id} ({config.reason}): diagnosis {diag.issue or 'healthy'}")
    if diag.issue is None:
        return {"dac_id": config.dac_id, "reason": config.reason, "issue": None, "action": None}
    action = Healer(local, lambda: atlas.open(storage.root)).heal(diag)
    (context.log.info if action.ok else context.log.error)(
        f"{config.dac_id}: {action.issue} -> {action.strategy} ({'healed' if action.ok else 'NOT healed'})"
    )
    if not action.ok:
        raise dg.Failure(
            description=f"{config.dac_id}: {action.strategy} did not heal {action.issue}",
            metadata=tidy({"details": dg.MetadataValue.json(action.details)}),
        )
    return {
        "dac_id": config.dac_id,
        "reason": config.reason,
        "issue": action.issue,
        "action": action.to_json(),
    }


@dg.job(
    description="Self-healing for one DAC (launched by the operations sensors, or by hand with its dac_id)."
)
def dac_healing_job():
    heal_dac()


dac_health_job = dg.define_asset_job(
    name="dac_health_job",
    selection=dg.AssetSelection.assets("dac_health"),
    description="Probes every deployed DAC, rescores it on fresh twin episodes, writes capsule telemetry.",
)

dac_health_schedule = schedule(
    "dac_health_schedule",
    dac_health_job,
    "0 */4 * * *",
    "Every 4 hours: probe and rescore every deployed DAC; flag degraded ones (seed: dac_health_check).",
)

MAX_PER_TICK = 50


@dg.asset_sensor(
    asset_key=dg.AssetKey("dac_health"),
    job=dac_lifecycle_job,
    name="score_below_threshold_sensor",
    description="A DAC scoring under its threshold in the health check gets an evolution run.",
)
def score_below_threshold_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    md = asset_event.asset_materialization.metadata
    scores = md["scores"].value if "scores" in md else {}
    thresholds = md["thresholds"].value if "thresholds" in md else {}
    low = sorted(d for d, s in scores.items() if s is not None and s < thresholds.get(d, 1.0))
    if not low:
        return dg.SkipReason(f"all {len(scores)} scored DACs at or above their thresholds")
    return [
        dg.RunRequest(
            run_key=f"evolve:{d}:{int(asset_event.timestamp * 1000)}",
            partition_key=d,
            tags={"iv/trigger": "score_below_threshold", "iv/score": f"{scores[d]:.4f}"},
        )
        for d in low[:MAX_PER_TICK]
    ]


COST_JUMP = 3.0  # x the DAC's median CPU rate

MIN_RATE = 0.05  # cores: below this a jump costs nothing worth healing

MIN_SAMPLES = 3

HISTORY_SAMPLES = 1_000  # the median is over the service's previous samples, at most this many


@dg.sensor(
    job=dac_healing_job,
    minimum_interval_seconds=300,
    required_resource_keys={"storage"},
    description="A capsule whose CPU rate (cost) jumps to 3x its median starts a healing run.",
)
def cost_anomaly_sensor(context: dg.SensorEvaluationContext):
    from iv_pipelines.telemetry import cost_anomalies

    start = int(context.cursor or 0)
    found, end = cost_anomalies(
        context.resources.storage.layout.telemetry_file(),
        start,
        jump=COST_JUMP,
        min_rate=MIN_RATE,
        min_samples=MIN_SAMPLES,
        history=HISTORY_SAMPLES,
    )
    if end == start:
        return dg.SkipReason(f"no new telemetry after byte {start}")
    context.update_cursor(str(end))
    requests = [
        dg.RunRequest(
            run_key=f"cost:{a.service}:{a.ts_ms}",
            run_config={"ops": {"heal_dac": {"config": {"dac_id": a.service, "reason": a.reason}}}},
            tags={"iv/trigger": "cost_anomaly"},
        )
        for a in found
    ]
    return requests[:MAX_PER_TICK] or dg.SkipReason(f"bytes {start}..{end}: no cost anomaly")
