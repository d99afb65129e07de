"""Operations, weekly: a candidate base model, promoted only when significantly better, and
the sensor that retrains every DAC's adapter after a promotion."""

import dagster as dg

from defs.common import K8S_GPU_STEP, OWNERS, schedule, tidy
from defs.lifecycle import dac_lifecycle_job
from defs.operations.health import MAX_PER_TICK
from iv_pipelines.sensing.model import StaleModelError
from resources.sensing import SensingResource
from resources.storage import FactoryStorage


class BaseUpdateConfig(dg.Config):
    candidate_seed: int | None = None  # default: the resource seed + the ISO week number


@dg.asset(
    group_name="operations",
    owners=OWNERS,
    kinds={"pytorch"},
    pool="gpu",
    op_tags=K8S_GPU_STEP,
    deps=["wifi_sensing_base_model"],
    description=(
        "lora_model_updates: pretrains a candidate wifi-sensing base model (new seed) and "
        "decides it and the current one on the same held-out simulated homes; promotes it only "
        "if it is significantly better (paired McNemar test and bootstrap interval) and its fall "
        "alarms (misses and false alarms) are not significantly worse; the replaced model is kept under models/history/. "
        "Lists the DACs whose adapters must be retrained."
    ),
)
def base_model_update(
    context: dg.AssetExecutionContext,
    config: BaseUpdateConfig,
    sensing: SensingResource,
    storage: FactoryStorage,
) -> dg.MaterializeResult:
    import datetime as dt

    from iv_pipelines.sensing.promotion import NoCurrentModel, promote_base_model

    if not (storage.layout.base_model_dir() / "model.safetensors").exists():
        raise dg.Failure(
            description=f"no current base model at {storage.layout.base_model_dir()}: "
            "materialize wifi_sensing_base_model first"
        )
    seed = (
        config.candidate_seed
        if config.candidate_seed is not None
        else sensing.seed + dt.date.today().isocalendar()[1]
    )
    # the current model's held-out homes (eval_seed), so both decide the same windows
    candidate = sensing.pretrain(seed=seed, eval_seed=sensing.seed, log=context.log.info)
    try:
        res = promote_base_model(storage.layout, candidate, seed, log=context.log.info)
    except (NoCurrentModel, StaleModelError) as e:
        raise dg.Failure(description=str(e)) from e
    acc = res.accuracy
    fall = res.fall
    return dg.MaterializeResult(
        metadata=tidy(
            {
                "promoted": res.promoted,
                "why": res.why,
                "candidate_seed": seed,
                "heldout_windows": acc.n,
                "candidate_accuracy": round(acc.accuracy_a, 4),
                "current_accuracy": round(acc.accuracy_b, 4),
                "accuracy_difference_ci95": f"{acc.diff:+.4f} ({acc.diff_low:+.4f}..{acc.diff_high:+.4f})",
                "mcnemar_p": round(acc.mcnemar_p, 4),
                "verdict": acc.verdict,
                "candidate_fall_alarm_accuracy": round(fall.accuracy_a, 4),
                "current_fall_alarm_accuracy": round(fall.accuracy_b, 4),
                "fall_alarm_verdict": fall.verdict,
                "history_dir": dg.MetadataValue.path(str(res.history_dir))
                if res.history_dir
                else "not promoted",
                "dacs_to_retrain": dg.MetadataValue.json(res.dacs_to_retrain),
                "evaluated_on": f"simulation: {sensing.eval_rooms} held-out simulated homes (seed {sensing.seed}), "
                "both models at the default decision",
            }
        )
    )


base_model_update_job = dg.define_asset_job(
    name="base_model_update_job",
    selection=dg.AssetSelection.assets("base_model_update"),
    description="Trains a candidate base model; promotes it only if it is significantly better on the same held-out homes.",
)

base_model_update_schedule = schedule(
    "base_model_update_schedule",
    base_model_update_job,
    "0 4 * * 0",
    "Sundays 04:00: candidate base model, promoted only if significantly better (seed: lora_model_updates).",
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
