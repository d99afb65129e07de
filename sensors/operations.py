"""Operations sensors: threshold breaches start evolution and healing runs.

- `score_below_threshold_sensor` (on `dac_health` materializations): every DAC whose fresh
  score is under its threshold gets an evolution run of its lifecycle (its `dac` partition);
- `dac_deployed_sensor` (on `dac_deployment`): a new deployment gets its TTF routes and its
  Capsule Pin record (a
  `service_mesh_job` run; the ASI registration happens in `dac_deployment` itself);
- `cost_anomaly_sensor` (every 5 min): a capsule whose CPU rate in the telemetry jumps to 3x
  its median (and over 0.05 cores) starts `dac_healing_job`; the cursor is the telemetry line;
- `energy_variance_sensor` (every 5 min): the Energy Atlas anomaly query (states more than
  3 standard deviations from their DAC's mean, daily history and per-run series) since the
  cursor; each new anomaly starts `dac_healing_job` for that DAC. At most 50 run requests a
  tick; the cursor is the newest anomaly timestamp seen (epoch ms).
"""

import dagster as dg

from assets.jobs import dac_lifecycle_job, service_mesh_job
from assets.operations import dac_healing_job

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


@dg.sensor(
    job=dac_healing_job,
    minimum_interval_seconds=300,
    required_resource_keys={"storage", "atlas"},
    description="Energy anomalies in the Atlas (3 sigma) start a healing run for their DAC.",
)
def energy_variance_sensor(context: dg.SensorEvaluationContext):
    from iv_pipelines.atlas.engine import window_params

    since = int(context.cursor or 0)
    found = []
    with context.resources.atlas.open(context.resources.storage.root) as atlas:
        for source in ("energy_history", "lifecycle"):
            found += [
                (r["ts"], r["dac"], source)
                for r in atlas.query("anomalies", k=3.0, min_states=5, source=source, **window_params())
                if r["ts"] > since
            ]
    if not found:
        return dg.SkipReason(f"no energy anomaly after {since}")
    found.sort()
    batch = found[:MAX_PER_TICK]
    context.update_cursor(str(batch[-1][0]))
    return [
        dg.RunRequest(
            run_key=f"energy:{dac}:{source}:{ts}",
            run_config={
                "ops": {
                    "heal_dac": {"config": {"dac_id": dac, "reason": f"energy_variance ({source}, ts {ts})"}}
                }
            },
            tags={"iv/trigger": "energy_variance"},
        )
        for ts, dac, source in batch
    ]


@dg.asset_sensor(
    asset_key=dg.AssetKey("dac_deployment"),
    job=service_mesh_job,
    name="dac_deployed_sensor",
    description="A new deployment (registered in the ASI registry by dac_deployment) gets its TTF routes and Capsule Pin record.",
)
def dac_deployed_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    mat = asset_event.asset_materialization
    return dg.RunRequest(
        run_key=f"mesh:{mat.partition}:{int(asset_event.timestamp * 1000)}",
        tags={"iv/trigger": "dac_deployed", "iv/dac": mat.partition or ""},
    )


@dg.asset_sensor(
    asset_key=dg.AssetKey("base_model_update"),
    job=dac_lifecycle_job,
    name="base_model_promoted_sensor",
    description="After a new base model is promoted, every DAC's lifecycle reruns (adapter retrained and gated).",
)
def base_model_promoted_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    md = asset_event.asset_materialization.metadata
    if not (md.get("promoted") and md["promoted"].value):
        return dg.SkipReason("the last base-model update kept the current model")
    dacs = md["dacs_to_retrain"].value if "dacs_to_retrain" in md else []
    return [
        dg.RunRequest(
            run_key=f"rebase:{d}:{int(asset_event.timestamp * 1000)}",
            partition_key=d,
            tags={"iv/trigger": "base_model_promoted"},
        )
        for d in dacs[:MAX_PER_TICK]
    ]


COST_JUMP = 3.0  # x the DAC's median CPU rate
MIN_SAMPLES = 3
HISTORY_LINES = 20_000


@dg.sensor(
    job=dac_healing_job,
    minimum_interval_seconds=300,
    required_resource_keys={"storage"},
    description="A capsule whose CPU rate (cost) jumps to 3x its median starts a healing run.",
)
def cost_anomaly_sensor(context: dg.SensorEvaluationContext):
    import json
    import statistics

    path = context.resources.storage.root / "telemetry" / "capsules.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    start = int(context.cursor or 0)
    if start >= len(lines):
        return dg.SkipReason(f"no new telemetry after line {start}")
    history: dict[str, list[float]] = {}
    requests = []
    end = min(len(lines), start + 10_000)  # bounded work per tick
    first = max(0, start - HISTORY_LINES)  # medians from a bounded window of earlier samples
    for n, line in enumerate(lines[first:end], start=first):
        try:
            r = json.loads(line)
            rate = float(r["cpu_seconds"]) / float(r["wall_seconds"])
        except (ValueError, KeyError, ZeroDivisionError):
            continue
        past = history.setdefault(r["service"], [])
        if n >= start and len(past) >= MIN_SAMPLES:
            med = statistics.median(past)
            if rate > COST_JUMP * max(med, 1e-6) and rate > 0.05:
                reason = f"cost anomaly: {rate:.2f} cores vs median {med:.2f}"
                requests.append(
                    dg.RunRequest(
                        run_key=f"cost:{r['service']}:{r['ts_ms']}",
                        run_config={
                            "ops": {"heal_dac": {"config": {"dac_id": r["service"], "reason": reason}}}
                        },
                        tags={"iv/trigger": "cost_anomaly"},
                    )
                )
        past.append(rate)
    context.update_cursor(str(end))
    return requests[:MAX_PER_TICK] or dg.SkipReason(f"lines {start}..{end}: no cost anomaly")


sensors = [
    score_below_threshold_sensor,
    energy_variance_sensor,
    dac_deployed_sensor,
    base_model_promoted_sensor,
    cost_anomaly_sensor,
]
