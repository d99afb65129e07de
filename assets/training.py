"""Training phase (seed steps 17-19): the wifi-sensing base model and per-DAC LoRA adapters."""

import json

import dagster as dg

from assets.metering import metered
from assets.partitions import dac_partitions
from iv_pipelines.paths import atomic_write_text
from iv_pipelines.request import DacRequest
from iv_pipelines.sensing.model import StaleModelError, base_model_version
from iv_pipelines.sensing.pipeline_defaults import PRETRAIN_RECIPE
from iv_pipelines.sensing.twin import RESIDENTS
from resources.sensing import SensingResource
from resources.storage import FactoryStorage

OWNERS = ["team:dac-factory"]
ADAPTER_CHECK = "adapter_beats_base"
BASE_MODEL_DIR = "models/wifi-sensing-base"  # under the storage root


def _md_metrics(rows: dict[str, dict]) -> str:
    keys = sorted({k for r in rows.values() for k in r})
    head = "| metric | " + " | ".join(rows) + " |\n|---|" + "---|" * len(rows) + "\n"
    return head + "\n".join(
        f"| {k} | " + " | ".join(f"{r.get(k, float('nan')):.3f}" for r in rows.values()) + " |" for k in keys
    )


@dg.asset(
    group_name="training",
    owners=OWNERS,
    kinds={"pytorch", "safetensors"},
    pool="gpu",
    code_version=f"{base_model_version()}+{PRETRAIN_RECIPE}",
    description=(
        "The wifi-sensing domain base model: a small transformer over CSI windows pretrained on "
        "Shadow Twin data from many random rooms; evaluated on held-out simulated rooms and, for "
        "presence, on real ESP32 captures it never saw (AUROC)."
    ),
)
@metered
def wifi_sensing_base_model(
    context: dg.AssetExecutionContext, sensing: SensingResource, storage: FactoryStorage
):
    from iv_pipelines.sensing.evaluate import confusion_png
    from iv_pipelines.sensing.model import save_model
    from iv_pipelines.sensing.pipeline import pretrain_base, real_presence, training_curve_png

    res = pretrain_base(
        n_rooms=sensing.pretrain_rooms,
        per_activity=sensing.pretrain_episodes_per_activity,
        epochs=sensing.pretrain_epochs,
        workers=sensing.sim_workers,
        seed=sensing.seed,
        n_eval_rooms=sensing.eval_rooms,
        log=context.log.info,
    )
    real = {}
    per_file = {}
    if sensing.real_dir():
        real, per_file = real_presence(res.model, sensing.real_dir())
        context.log.info(
            f"real captures: presence AUROC {real['presence_auroc']:.3f} over {real['n_files']} files"
        )
    else:
        context.log.warning("real ESP32 captures not found: presence AUROC not measured")
    out = storage.root / BASE_MODEL_DIR
    weights = save_model(res.model, res.cfg, out, extra={"metrics": res.metrics, "real": real})
    cm_png = confusion_png(res.confusion, out / "confusion.png", "held-out simulated rooms")
    curve = training_curve_png(res.losses, out / "training_curve.png", "base model pretraining")
    atomic_write_text(
        out / "evaluation.json",
        json.dumps({"heldout": res.metrics, "real": real, "real_per_file": per_file}, indent=2) + "\n",
    )
    return dg.MaterializeResult(
        metadata={
            "model_dir": dg.MetadataValue.path(str(out)),
            "weights": dg.MetadataValue.path(str(weights)),
            "train_windows": res.n_train,
            "train_seconds": round(res.train_seconds, 1),
            "heldout_rooms_accuracy": res.metrics["heldout_rooms_accuracy"],
            "heldout_rooms_fall_recall_at_2pct_fa": res.metrics["heldout_rooms_fall_recall_at_2pct_fa"],
            "heldout_rooms_amp_only_accuracy": res.metrics["heldout_rooms_amp_only_accuracy"],
            **(
                {"real_presence_auroc": real["presence_auroc"]}
                if real
                else {"real_presence": "not measured: real ESP32 captures not found"}
            ),
            "metrics": dg.MetadataValue.md(_md_metrics({"held-out rooms": res.metrics})),
            "confusion_matrix": dg.MetadataValue.path(str(cm_png)),
            "training_curve": dg.MetadataValue.path(str(curve)),
            "evaluated_on": f"{sensing.eval_rooms} simulated rooms never used in training ({res.metrics['heldout_rooms_n']} windows); "
            "real espectre captures (eval only)",
        }
    )


def _canonical_adapter_config(path) -> None:
    """peft writes `target_modules` from a set (order varies between processes): sort it."""
    cfg = json.loads(path.read_text())
    if isinstance(cfg.get("target_modules"), list):
        cfg["target_modules"] = sorted(cfg["target_modules"])
    atomic_write_text(path, json.dumps(cfg, indent=2, sort_keys=True) + "\n")


@dg.asset(
    partitions_def=dac_partitions,
    group_name="training",
    owners=OWNERS,
    kinds={"pytorch", "peft", "safetensors"},
    pool="gpu",
    deps=["wifi_sensing_base_model", "validated_hypothesis"],  # the hypothesis gate comes first
    description=(
        "T2L step: a peft LoRA adapter for the domain base model, trained on Shadow Twin episodes "
        "of the client's room and evaluated on held-out episodes of that room against the base."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            ADAPTER_CHECK,
            asset="lora_adapter",
            blocking=True,
            description="the adapter beats the base model on held-out client-room episodes",
        )
    ],
)
@metered
def lora_adapter(
    context: dg.AssetExecutionContext,
    dac_request: DacRequest,
    shadow_twin_context,
    sensing: SensingResource,
    storage: FactoryStorage,
):
    from iv_pipelines.sensing.evaluate import confusion_png
    from iv_pipelines.sensing.pipeline import adapt_lora, adapter_beats_base, training_curve_png

    if shadow_twin_context.room is None:
        raise dg.Failure(
            description=f"domain {shadow_twin_context.domain!r} has no trainable base model yet; "
            "only wifi-sensing adapters are trained here"
        )
    base_dir = storage.root / BASE_MODEL_DIR
    if not (base_dir / "model.safetensors").exists():
        raise dg.Failure(
            description=f"no base model at {base_dir}; materialize wifi_sensing_base_model first"
        )
    try:
        res = adapt_lora(
            base_dir,
            shadow_twin_context.room,
            resident=RESIDENTS[shadow_twin_context.resident],
            per_activity=sensing.lora_episodes_per_activity,
            eval_per_activity=sensing.lora_eval_episodes_per_activity,
            epochs=sensing.lora_epochs,
            seed=sensing.seed,
            rank=sensing.lora_rank,
            lr=sensing.lora_lr,
            log=context.log.info,
        )
    except StaleModelError as e:
        raise dg.Failure(description=str(e)) from e
    out = storage.dac_dir(dac_request.dac_id) / "adapter"
    res.model.save_pretrained(str(out))
    _canonical_adapter_config(out / "adapter_config.json")
    cm_png = confusion_png(res.confusion, out / "confusion.png", "client room, held-out episodes")
    curve = training_curve_png(res.losses, out / "training_curve.png", "LoRA adaptation")
    ok, why = adapter_beats_base(res.base_metrics, res.adapter_metrics)
    report = {
        "base": res.base_metrics,
        "adapter": res.adapter_metrics,
        "beats_base": ok,
        "why": why,
        "trainable_params": res.trainable_params,
        "total_params": res.total_params,
        "train_seconds": res.train_seconds,
        "room": res.room.digest(),
        "resident": res.resident,
    }
    # the file holds content only (timings go to the metadata): re-running the same DAC gives
    # byte-identical files, hence the same lineage digest and the same UTID
    content = {k: v for k, v in report.items() if k != "train_seconds"}
    atomic_write_text(out / "evaluation.json", json.dumps(content, indent=2, sort_keys=True) + "\n")
    yield dg.Output(
        report,
        metadata={
            "adapter_dir": dg.MetadataValue.path(str(out)),
            "client_room_accuracy": res.adapter_metrics["client_room_accuracy"],
            "client_room_accuracy_base": res.base_metrics["client_room_accuracy"],
            "client_room_fall_recall_at_2pct_fa": res.adapter_metrics["client_room_fall_recall_at_2pct_fa"],
            "client_room_fall_false_alarm_rate": res.adapter_metrics["client_room_fall_false_alarm_rate"],
            "client_room_amp_only_accuracy": res.adapter_metrics["client_room_amp_only_accuracy"],
            "trainable_params": res.trainable_params,
            "trainable_ratio": round(res.trainable_params / res.total_params, 4),
            "train_seconds": round(res.train_seconds, 2),
            "metrics": dg.MetadataValue.md(
                _md_metrics({"base": res.base_metrics, "adapter": res.adapter_metrics})
            ),
            "confusion_matrix": dg.MetadataValue.path(str(cm_png)),
            "training_curve": dg.MetadataValue.path(str(curve)),
            "evaluated_on": f"{res.adapter_metrics['client_room_n']} held-out twin episodes of the client room "
            f"({res.resident} resident profile)",
        },
    )
    yield dg.AssetCheckResult(check_name=ADAPTER_CHECK, passed=bool(ok), metadata={"why": why})


class BaseUpdateConfig(dg.Config):
    candidate_seed: int | None = None  # default: the resource seed + the ISO week number


@dg.asset(
    group_name="operations",
    owners=OWNERS,
    kinds={"pytorch"},
    pool="gpu",
    deps=["wifi_sensing_base_model"],
    description=(
        "lora_model_updates: pretrains a candidate wifi-sensing base model (new seed), evaluates "
        "it on the same held-out simulated rooms as the current one, and promotes it only if its "
        "accuracy is higher and its fall recall at 2% false alarms is not lower; the replaced "
        "model is kept under models/history/. Lists the DACs whose adapters must be retrained."
    ),
)
def base_model_update(
    context: dg.AssetExecutionContext,
    config: BaseUpdateConfig,
    sensing: SensingResource,
    storage: FactoryStorage,
) -> dg.MaterializeResult:
    import datetime as dt
    import os
    import shutil

    from iv_pipelines.sensing.model import save_model
    from iv_pipelines.sensing.pipeline import pretrain_base

    current = storage.root / BASE_MODEL_DIR
    if not (current / "evaluation.json").exists():
        raise dg.Failure(
            description=f"no current base model at {current}: materialize wifi_sensing_base_model first"
        )
    cur = json.loads((current / "evaluation.json").read_text())["heldout"]
    seed = (
        config.candidate_seed
        if config.candidate_seed is not None
        else sensing.seed + dt.date.today().isocalendar()[1]
    )
    res = pretrain_base(
        n_rooms=sensing.pretrain_rooms,
        per_activity=sensing.pretrain_episodes_per_activity,
        epochs=sensing.pretrain_epochs,
        workers=sensing.sim_workers,
        seed=seed,
        n_eval_rooms=sensing.eval_rooms,
        eval_seed=sensing.seed,  # the current model's held-out rooms
        log=context.log.info,
    )
    new = res.metrics
    acc_k, fall_k = "heldout_rooms_accuracy", "heldout_rooms_fall_recall_at_2pct_fa"
    better = new[acc_k] > cur[acc_k] and new[fall_k] >= cur[fall_k]
    why = (
        f"candidate (seed {seed}) accuracy {new[acc_k]:.4f} vs current {cur[acc_k]:.4f}; "
        f"fall recall@2%FA {new[fall_k]:.4f} vs {cur[fall_k]:.4f}"
    )
    dacs = sorted(
        p.parent.parent.name for p in (storage.root / "dacs").glob("*/adapter/adapter_model.safetensors")
    )
    if better:
        staged = current.with_name(current.name + ".candidate")
        shutil.rmtree(staged, ignore_errors=True)
        save_model(res.model, res.cfg, staged, extra={"metrics": new, "seed": seed})
        atomic_write_text(
            staged / "evaluation.json",
            json.dumps({"heldout": new, "real": {}, "seed": seed}, indent=2) + "\n",
        )
        history = (
            storage.root
            / "models"
            / "history"
            / f"wifi-sensing-base-{int(dt.datetime.now(dt.UTC).timestamp())}"
        )
        history.parent.mkdir(parents=True, exist_ok=True)
        os.replace(current, history)
        os.replace(staged, current)
        context.log.info(f"promoted: {why}; previous model kept at {history}")
    else:
        context.log.info(f"kept the current model: {why}")
    return dg.MaterializeResult(
        metadata={
            "promoted": better,
            "why": why,
            "candidate_seed": seed,
            "candidate_accuracy": new[acc_k],
            "current_accuracy": cur[acc_k],
            "candidate_fall_recall_at_2pct_fa": new[fall_k],
            "current_fall_recall_at_2pct_fa": cur[fall_k],
            "dacs_to_retrain": dg.MetadataValue.json(dacs if better else []),
        }
    )
