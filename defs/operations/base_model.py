"""Operations, weekly: a candidate base model, promoted only when significantly better, and
the sensor that retrains every DAC's adapter after a promotion."""

import dagster as dg

from defs.common import OWNERS, image, metered, schedule, tidy
from defs.lifecycle import dac_lifecycle_job
from defs.operations.health import MAX_PER_TICK
from iv_pipelines.fleet import FLEET_DEFAULTS
from iv_pipelines.sensing.model import StaleModelError
from resources.sensing import SensingResource
from resources.storage import FactoryStorage
from resources.training import GpuStepResource, to_metadata_values


class BaseUpdateConfig(dg.Config):
    candidate_seed: int | None = None  # default: the resource seed + the ISO week number
    # M2N2 over the fleet's adapters when no new-seed candidate was promoted (issue #20)
    fleet_merge: bool = FLEET_DEFAULTS["m2n2"]
    fleet_merge_iterations: int = 40


@dg.asset(
    group_name="operations",
    owners=OWNERS,
    kinds={"pytorch"},
    pool="gpu",
    deps=["wifi_sensing_base_model"],
    description=(
        "lora_model_updates: pretrains a candidate wifi-sensing base model (new seed) and "
        "decides it and the current one on the same held-out simulated homes; promotes it only "
        "if it is significantly better (paired McNemar test and bootstrap interval) and its fall "
        "alarms (misses and false alarms) are not significantly worse; the replaced model is kept under models/history/. "
        "Lists the DACs whose adapters must be retrained. In prod the training runs in its own GPU pod (Pipes)."
    ),
)
@metered
def base_model_update(
    context: dg.AssetExecutionContext,
    config: BaseUpdateConfig,
    sensing: SensingResource,
    storage: FactoryStorage,
    gpu_steps: GpuStepResource,
) -> dg.MaterializeResult:
    import datetime as dt

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
    if gpu_steps.mode == "k8s_pipes":
        # prod: candidate training and the paired decision run in their own pod on a GPU node;
        # the pod (iv_app/pipes_steps.py) reports the same metadata through Pipes
        context.log.info(
            f"candidate base model (seed {seed}) in a Kubernetes pod ({gpu_steps.image}) through Pipes"
        )
        return gpu_steps.run(
            context,
            "update_base_model",
            {
                "sensing": sensing.model_dump(),
                "storage_root": str(storage.root),
                "seed": seed,
                "fleet_merge": config.fleet_merge,
                "fleet_merge_iterations": config.fleet_merge_iterations,
            },
        ).get_materialize_result()
    try:
        out = update_base_model(
            sensing,
            storage.layout,
            seed,
            context.log.info,
            fleet_merge=config.fleet_merge,
            fleet_merge_iterations=config.fleet_merge_iterations,
        )
    except ValueError as e:
        raise dg.Failure(description=str(e)) from e
    return dg.MaterializeResult(metadata=tidy(to_metadata_values(out["metadata"])))


def update_base_model(
    sensing: SensingResource,
    layout,
    seed: int,
    log=print,
    fleet_merge: bool = False,
    fleet_merge_iterations: int = 40,
) -> dict:
    """Pretrain a candidate base model with `seed` on the current model's held-out homes'
    protocol, decide it against the current one and promote it if significantly better.
    Returns {"metadata": {key: (type, value)}}: the asset's metadata in-process, and what the
    Pipes pod reports (one function for both). Raises ValueError (no current model, or a
    stale one) with the fix in its message."""
    from iv_pipelines.sensing.promotion import NoCurrentModel, promote_base_model

    # the current model's held-out homes (eval_seed), so both decide the same windows
    candidate = sensing.pretrain(seed=seed, eval_seed=sensing.seed, log=log)
    try:
        res = promote_base_model(layout, candidate, seed, log=log)
    except (NoCurrentModel, StaleModelError) as e:
        raise ValueError(str(e)) from e
    acc, fall = res.accuracy, res.fall
    out = {
        "metadata": {
            "promoted": ("bool", bool(res.promoted)),
            "why": ("text", res.why),
            "candidate_seed": ("int", int(seed)),
            "heldout_windows": ("int", int(acc.n)),
            "candidate_accuracy": ("float", float(acc.accuracy_a)),
            "current_accuracy": ("float", float(acc.accuracy_b)),
            "accuracy_difference_ci95": (
                "text",
                f"{acc.diff:+.4f} ({acc.diff_low:+.4f}..{acc.diff_high:+.4f})",
            ),
            "mcnemar_p": ("float", float(acc.mcnemar_p)),
            "verdict": ("text", acc.verdict),
            "candidate_fall_alarm_accuracy": ("float", float(fall.accuracy_a)),
            "current_fall_alarm_accuracy": ("float", float(fall.accuracy_b)),
            "fall_alarm_verdict": ("text", fall.verdict),
            "history_dir": ("path", str(res.history_dir)) if res.history_dir else ("text", "not promoted"),
            "dacs_to_retrain": ("json", list(res.dacs_to_retrain)),
            "evaluated_on": (
                "text",
                f"simulation: {sensing.eval_rooms} held-out simulated homes (seed {sensing.seed}), "
                "both models at the default decision",
            ),
        }
    }
    md = out["metadata"]
    if not fleet_merge:
        md["fleet_merge"] = ("text", FLEET_DEFAULTS["m2n2_why"] + " (config fleet_merge: true runs it)")
    elif res.promoted:
        md["fleet_merge"] = (
            "text",
            "not run: a new base was promoted; the adapters are retrained on it first",
        )
    else:
        from iv_pipelines.fleet.weekly import merge_fleet

        fm = merge_fleet(layout, seed, rank=sensing.lora_rank, iterations=fleet_merge_iterations, log=log)
        md.update(fm)
        if fm.get("fleet_merge_promoted", ("bool", False))[1]:
            md["promoted"] = ("bool", True)
            md["why"] = (
                "text",
                "M2N2 fleet merge promoted: " + fm["fleet_merge"][1] + "; seed candidate: " + res.why,
            )
    return out


class T2LHypernetworkConfig(dg.Config):
    twin_clients: int = 64  # twin-generated clients added to the factory's own adapters
    epochs: int = 400
    seed: int = 0


@dg.asset(
    group_name="operations",
    owners=OWNERS,
    kinds={"pytorch", "safetensors"},
    pool="gpu",
    deps=["wifi_sensing_base_model"],
    description=(
        "Text-to-LoRA hypernetwork (issue #20): learns to write a client's LoRA adapter from its "
        "request text (offline MiniLM), room geometry and device-calibration context, on the "
        "factory's adapters plus twin-generated clients. Once it exists, lora_adapter starts "
        "from its adapter and reports zero-shot next to trained accuracy. Not scheduled: off "
        "by default until bench/fleet.py shows it wins (docs/fleet.md)."
    ),
)
@metered
def t2l_hypernetwork(
    context: dg.AssetExecutionContext, config: T2LHypernetworkConfig, storage: FactoryStorage
):
    from iv_pipelines.fleet.t2l import embed_texts, train_hypernet
    from iv_pipelines.fleet.weekly import library
    from iv_pipelines.sensing.model import load_model
    from iv_pipelines.sensing.pipeline import training_curve_png

    layout = storage.layout
    if not (layout.base_model_dir() / "model.safetensors").exists():
        raise dg.Failure(description="no base model: materialize wifi_sensing_base_model first")
    if config.twin_clients < 0 or config.epochs < 1:
        raise dg.Failure(description="twin_clients must be >= 0 and epochs >= 1")
    base, cfg = load_model(layout.base_model_dir())
    texts, numbers, blocks = library(layout, base, cfg, config.twin_clients, config.seed, context.log.info)
    if len(blocks) < 2:
        raise dg.Failure(
            description=f"{len(blocks)} adapter(s) in the library; a hypernetwork needs at least 2"
        )
    import numpy as np

    t2l = train_hypernet(
        embed_texts(texts),
        np.array(numbers, np.float32),
        blocks,
        cfg,
        epochs=config.epochs,
        seed=config.seed,
        log=context.log.info,
    )
    import hashlib

    t2l.base_sha256 = hashlib.sha256((layout.base_model_dir() / "model.safetensors").read_bytes()).hexdigest()
    out = t2l.save(layout.t2l_dir())
    curve = training_curve_png(t2l.losses, out / "training_curve.png", "Text-to-LoRA reconstruction loss")
    factory = len(blocks) - config.twin_clients
    return dg.MaterializeResult(
        metadata=tidy(
            {
                "library_adapters": len(blocks),
                "factory_adapters": factory,
                "twin_generated_adapters": config.twin_clients,
                "final_loss": float(t2l.losses[-1]),
                "hypernetwork_dir": dg.MetadataValue.path(str(out)),
                "training_curve": image(curve),
                "status": "lora_adapter now starts from this hypernetwork's adapters; "
                + FLEET_DEFAULTS["t2l_why"]
                + " (delete models/t2l to turn it off)",
            }
        )
    )


t2l_hypernetwork_job = dg.define_asset_job(
    name="t2l_hypernetwork_job",
    selection=dg.AssetSelection.assets("t2l_hypernetwork"),
    description="Trains the Text-to-LoRA hypernetwork on the factory's adapters plus twin clients (not scheduled).",
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
