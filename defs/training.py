"""UI group `training` (lifecycle steps 17-19): the wifi-sensing base model and the per-DAC
LoRA adapter, and the base model's job."""

import json
from pathlib import Path

import dagster as dg

from defs.common import (
    OWNERS,
    dac_partitions,
    image,
    metered,
    tidy,
)
from iv_pipelines.paths import atomic_write_text
from iv_pipelines.request import DacRequest
from iv_pipelines.sensing.model import StaleModelError, base_model_version
from iv_pipelines.sensing.pipeline_defaults import PRETRAIN_RECIPE
from resources.sensing import SensingResource
from resources.storage import FactoryStorage
from resources.training import GpuStepResource, to_metadata_values

ADAPTER_CHECK = "adapter_beats_base"


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
        "The wifi-sensing domain base model: a small transformer over CSI windows conditioned on a "
        "device context, pretrained on Shadow Twin homes (each with its own simulated ESP32 drawn "
        "from the device prior fitted to real chips). Evaluated on held-out simulated homes and, "
        "at its default decision, on real ESP32 captures it never saw (per chip, I/Q and "
        "amplitude-only legacy format, with and without device context)."
    ),
)
@metered
def wifi_sensing_base_model(
    context: dg.AssetExecutionContext,
    sensing: SensingResource,
    storage: FactoryStorage,
    gpu_steps: GpuStepResource,
):
    if gpu_steps.mode == "k8s_pipes":
        # prod: the training runs in its own pod on a GPU node (PipesK8sClient); the pod's
        # entrypoint (iv_app/pipes_steps.py) reports the same metadata and the weights' digest
        context.log.info(f"pretraining in a Kubernetes pod ({gpu_steps.image}) through Pipes")
        return gpu_steps.run(
            context,
            "pretrain_base_model",
            {"sensing": sensing.model_dump(), "storage_root": str(storage.root)},
        ).get_materialize_result()
    summary = pretrain_base_model(sensing, storage.layout, context.log.info, context.log.warning)
    return dg.MaterializeResult(
        metadata=tidy(to_metadata_values(summary["metadata"])),
        data_version=dg.DataVersion(summary["weights_sha256"]),
    )


def pretrain_base_model(sensing: SensingResource, layout, log=print, warn=print) -> dict:
    """Pretrain the base model, evaluate it (held-out simulated homes; the real espectre
    captures when present), save it under the storage's base model directory. Returns
    {"metadata": {key: (type, value)} with plain values, "weights_sha256": ...}: the asset's
    metadata in-process, and what the Pipes pod reports (`iv_app/pipes_steps.py`) — one
    function for both, so the two paths cannot drift apart."""
    import hashlib

    from iv_pipelines.sensing.evaluate import confusion_png
    from iv_pipelines.sensing.model import save_model
    from iv_pipelines.sensing.pipeline import training_curve_png
    from iv_pipelines.sensing.realeval import (
        context_scores,
        espectre_captures,
        espectre_test_parts,
        goal_summary,
        table_md,
        uncalibrated_scores,
    )

    res = sensing.pretrain(log=log)
    rows = []
    if sensing.real_dir():
        caps = espectre_captures(sensing.real_dir())  # baselines less the recorder's warm-up
        whole = espectre_captures(sensing.real_dir(), baseline_warmup=0)
        extra = espectre_test_parts(sensing.real_dir())
        rows = uncalibrated_scores(res.model, caps, whole=whole, extra=extra) + context_scores(
            res.model, caps, whole=whole
        )
        worst = min(min(r.empty_called_empty, r.moving_called_nonempty) for r in rows)
        log(f"real espectre captures, {len(caps)} chips: worst per-chip share {worst:.2f}")
    else:
        warn("real ESP32 captures not found: real-device decisions not measured")
    out = layout.base_model_dir()
    real = [r.to_dict() for r in rows]
    weights = save_model(res.model, res.cfg, out, extra={"metrics": res.metrics})
    cm_png = confusion_png(res.confusion, out / "confusion.png", "held-out simulated homes (decisions)")
    curve = training_curve_png(res.losses, out / "training_curve.png", "base model pretraining")
    atomic_write_text(
        out / "evaluation.json", json.dumps({"heldout": res.metrics, "real": real}, indent=2) + "\n"
    )
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    m = res.metrics
    return {
        "weights_sha256": digest,
        "metadata": {
            "model_dir": ("path", str(out)),
            "weights": ("path", str(weights)),
            "weights_sha256": ("text", digest),
            "train_windows": ("int", int(res.n_train)),
            "simulation_seconds": ("float", round(res.sim_seconds, 1)),
            "train_seconds": ("float", round(res.train_seconds, 1)),
            "heldout_rooms_accuracy": ("float", float(m["heldout_rooms_accuracy"])),
            "heldout_rooms_fall_recall_at_2pct_fa": (
                "float",
                float(m["heldout_rooms_fall_recall_at_2pct_fa"]),
            ),
            "heldout_rooms_uncalibrated_accuracy": ("float", float(m["heldout_rooms_uncalibrated_accuracy"])),
            "heldout_rooms_amp_only_accuracy": ("float", float(m["heldout_rooms_amp_only_accuracy"])),
            "metrics": ("md", _md_metrics({"held-out simulated homes": m})),
            "real_devices": (
                (
                    "md",
                    "Real espectre captures (public_real, evaluation only), the model's default decision. "
                    "The device prior was set with every chip's fit in view, so this is not "
                    "leave-one-chip-out: `bench/real_devices.py` is.\n\n"
                    + table_md(rows)
                    + f"\n\n{goal_summary(rows)} (goal: issue #13's 0.95 on both shares).",
                )
                if rows
                else ("text", "not measured: real ESP32 captures not found")
            ),
            "confusion_matrix": ("md", image(cm_png).value),
            "training_curve": ("md", image(curve).value),
            "evaluated_on": (
                "text",
                f"simulation: {sensing.eval_rooms} simulated homes never used in training "
                f"({m['heldout_rooms_n']} windows); public_real: espectre captures (evaluation only)",
            ),
        },
    }


def _canonical_adapter_config(path) -> None:
    """peft writes `target_modules` from a set (order varies between processes): sort it."""
    cfg = json.loads(path.read_text())
    if isinstance(cfg.get("target_modules"), list):
        cfg["target_modules"] = sorted(cfg["target_modules"])
    atomic_write_text(path, json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def _round(obj, nd: int = 6):
    """Floats rounded so the evaluation file is byte-identical across runs of the same DAC."""
    if isinstance(obj, float):
        return round(obj, nd)
    if isinstance(obj, dict):
        return {k: _round(v, nd) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_round(v, nd) for v in obj]
    return obj


@dg.asset(
    partitions_def=dac_partitions,
    group_name="training",
    owners=OWNERS,
    kinds={"pytorch", "peft", "safetensors"},
    pool="gpu",
    deps=["wifi_sensing_base_model", "validated_hypothesis"],  # the hypothesis gate comes first
    description=(
        "T2L step: a peft LoRA adapter for the domain base model, trained on Shadow Twin episodes "
        "of the client's room with the client's fitted device plus the labelled windows of the "
        "client's own calibration captures; compared with the base by a paired test on the same "
        "held-out windows; sets the fall threshold for the client's false-alarm target and says "
        "which evidence (simulation or the client's device) every number rests on."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            ADAPTER_CHECK,
            asset="lora_adapter",
            blocking=True,
            description="the adapter is not significantly worse than the base (paired test) and the "
            "shipped model meets the client's measured constraints",
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
    gpu_steps: GpuStepResource,
):
    if gpu_steps.mode == "k8s_pipes":
        # prod: the training runs in its own GPU pod (PipesK8sClient); the pod reads the twin
        # context this step received (pickled under <storage>/pipes/<dac>/: the same code
        # version runs there) and reports metadata, the adapter's digest and the check via Pipes
        import pickle

        from iv_pipelines.paths import atomic_write_bytes

        ctx_file = storage.layout.pipes_input_file(dac_request.dac_id, TWIN_CONTEXT_FILE)
        ctx_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(ctx_file, pickle.dumps(shadow_twin_context))
        context.log.info(f"LoRA training in a Kubernetes pod ({gpu_steps.image}) through Pipes")
        yield from gpu_steps.run(
            context,
            "train_lora_adapter",
            {
                "dac_id": dac_request.dac_id,
                "sensing": sensing.model_dump(),
                "storage_root": str(storage.root),
            },
        ).get_results()
        return
    out = train_lora_adapter(dac_request, shadow_twin_context, sensing, storage.layout, context.log.info)
    yield dg.Output(
        out["value"],
        metadata=tidy(to_metadata_values(out["metadata"])),
        data_version=dg.DataVersion(out["adapter_sha256"]),  # as the Pipes pod reports it
    )
    chk = out["check"]
    yield dg.AssetCheckResult(
        check_name=ADAPTER_CHECK,
        passed=chk["passed"],
        description=f"DAC {dac_request.dac_id}: {chk['why']}",
        metadata=tidy(to_metadata_values(chk["metadata"])),
    )


TWIN_CONTEXT_FILE = "twin_context.pkl"  # the Pipes pod's input (k8s_pipes only)


def train_lora_adapter(dac_request: DacRequest, twin, sensing: SensingResource, layout, log=print) -> dict:
    """Train, evaluate and gate the DAC's adapter; write it, its evaluation and the drift
    reference under the storage. Returns {"value": the report, "metadata": {key: (type, value)},
    "check": {"passed", "why", "metadata"}, "adapter_sha256"} with plain values: the asset's
    output in-process, and what the Pipes pod reports (`iv_app/pipes_steps.py`) — one function
    for both paths."""
    import hashlib

    from iv_pipelines.sensing.client import train_client_adapter
    from iv_pipelines.sensing.evaluate import confusion_png
    from iv_pipelines.sensing.intensity import describe as describe_intensity
    from iv_pipelines.sensing.pipeline import training_curve_png

    if twin.room is None:
        raise dg.Failure(
            description=f"domain {twin.domain!r} has no trainable base model yet; "
            "only wifi-sensing adapters are trained here"
        )
    base_dir = layout.base_model_dir()
    if not (base_dir / "model.safetensors").exists():
        raise dg.Failure(
            description=f"no base model at {base_dir}; materialize wifi_sensing_base_model first"
        )
    target_fa = dac_request.constraints.max_false_alarm_rate or sensing.default_false_alarm_rate
    # production feedback (issue #18): windows people labelled become real captures, the
    # newest held out to test this version against the deployed one
    from dataclasses import replace

    from iv_pipelines.ops.feedback import feedback_captures

    cal = twin.calibration
    fb_caps, fb_note = feedback_captures(layout, dac_request.dac_id, cal.amplitude_only)
    if fb_caps:
        cal = replace(cal, captures=list(cal.captures) + fb_caps)
        log(f"production feedback: {fb_note}")
    init_state, t2l_note, t2l_in = _t2l_start(dac_request, twin.room, cal, sensing, layout, log)
    try:
        res = train_client_adapter(
            base_dir,
            twin.room,
            cal,
            per_activity=sensing.lora_episodes_per_activity,
            eval_per_activity=sensing.lora_eval_episodes_per_activity,
            epochs=sensing.lora_epochs,
            seed=sensing.seed,
            rank=sensing.lora_rank,
            lr=sensing.lora_lr,
            target_fa=target_fa,
            log=log,
            workers=sensing.sim_workers,
            init_state=init_state,
            intensity_recall_cost=sensing.fall_intensity_recall_cost,
            real_weight=sensing.lora_calibration_weight,
        )
    except StaleModelError as e:
        raise dg.Failure(description=str(e)) from e
    out = layout.adapter_dir(dac_request.dac_id)
    res.model.save_pretrained(str(out))
    _canonical_adapter_config(out / "adapter_config.json")
    cm_png = confusion_png(
        res.confusion, out / "confusion.png", "held-out windows, shipped model's decisions"
    )
    curve = training_curve_png(res.losses, out / "training_curve.png", "LoRA adaptation")
    ev = res.evidence
    from iv_pipelines.sensing.gate import constraint_violations

    unmet = constraint_violations(dac_request.constraints, ev)
    gate_ok = res.gate["verdict"] != "worse"
    # an evolved version must not be worse than the deployed one on the held-out labels
    from iv_pipelines.ops.feedback import versus_deployed
    from iv_pipelines.sensing.client import _proba
    from iv_pipelines.sensing.model import load_model

    shipped = res.model if res.selected == "adapter" else load_model(base_dir)[0]
    versus = versus_deployed(
        layout,
        dac_request.dac_id,
        lambda x: _proba(shipped, x, cal.context),
        [c for c in fb_caps if c.split == "eval"],
        res.thresholds[res.selected],
        seed=sensing.seed,
        intensity_check=res.intensity_check,
    )
    if versus is not None:
        log(f"versus the deployed version: {versus['sentence']}")
        if versus["verdict"] == "worse":
            unmet = [*unmet, "worse than the deployed version on held-out feedback: " + versus["sentence"]]
    ok = gate_ok and not unmet
    why = (
        res.why
        if ok
        else "; ".join(
            ([] if gate_ok else ["the adapter is significantly worse than the base: " + res.why]) + unmet
        )
    )
    report = {
        "selected": res.selected,
        "why": res.why,
        "gate": res.gate,
        "thresholds": res.thresholds,
        "evidence": ev,
        "base": res.base_metrics,
        "adapter": res.adapter_metrics,
        "beats_base": res.gate["verdict"] == "better",
        "check_passed": ok,
        "trainable_params": res.trainable_params,
        "total_params": res.total_params,
        "room": twin.room.digest(),
        "resident": twin.resident,
        "calibration": cal.to_dict(),
        "calibration_weight": sensing.lora_calibration_weight,
        "production_feedback": fb_note if fb_caps else None,
        "versus_deployed": versus,
        "intensity_check": res.intensity_report,
    }
    # the file holds content only (timings go to the metadata): re-running the same DAC gives
    # byte-identical files, hence the same lineage digest and the same UTID
    atomic_write_text(out / "evaluation.json", json.dumps(_round(report), indent=2, sort_keys=True) + "\n")
    # what a Text-to-LoRA hypernetwork learns this adapter from (the factory's own library)
    from iv_pipelines.fleet.weekly import T2L_INPUTS, accuracy_png

    atomic_write_text(out / T2L_INPUTS, json.dumps(_round(t2l_in), indent=2) + "\n")
    # what production inputs are compared with (drift, dac_feedback): outside the package
    from iv_pipelines.sensing.drift import save_reference

    save_reference(
        layout.drift_reference_file(dac_request.dac_id),
        res.reference_features,
        res.reference_decisions,
    )
    sim, real = ev["simulation"], ev["client_device"]
    log(f"validated_on {ev['validated_on']}; ships the {res.selected}: {res.why}")
    nan = float("nan")
    digest = hashlib.sha256((out / "adapter_model.safetensors").read_bytes()).hexdigest()
    metadata = {
        "adapter_dir": ("path", str(out)),
        "adapter_sha256": ("text", digest),
        "selected_model": ("text", res.selected),
        "validated_on": ("text", ev["validated_on"]),
        "fall_threshold": ("float", float(ev["decision"]["fall_threshold"])),
        "simulated_accuracy": ("float", float(sim.get("accuracy", nan))),
        "simulated_fall_recall": ("float", float(sim.get("recall_fall", nan))),
        "simulated_fall_false_alarm_rate": ("float", float(sim.get("fall_false_alarm_rate", nan))),
        **(
            {
                "client_device_accuracy": ("float", float(real.get("accuracy", nan))),
                "client_device_fall_false_alarm_rate": (
                    "float",
                    float(real.get("fall_false_alarm_rate", nan)),
                ),
                "client_device_windows": ("int", int(real.get("n", 0))),
                **(
                    {
                        "client_device_fall_recall": ("float", float(real["recall_fall"])),
                        "client_device_fall_windows": ("int", int(real.get("n_fall", 0))),
                    }
                    if "recall_fall" in real
                    else {}
                ),
            }
            if real
            else {"client_device": ("text", "no held-out real captures: simulation only")}
        ),
        "gate": ("text", res.why),
        "fall_intensity_check": ("text", describe_intensity(res.intensity_report)),
        "fall_intensity_factor": ("float", float((res.intensity_check or {}).get("factor", 0.0))),
        "fall_intensity_still_factor": ("float", float((res.intensity_check or {}).get("still_factor", 0.0))),
        "calibration_weight": ("float", float(sensing.lora_calibration_weight)),
        "t2l_start": ("text", t2l_note),
        **(
            {
                "t2l_generated_vs_trained": (
                    "md",
                    image(
                        accuracy_png(
                            {
                                "generated": float(zs["generated"].get("client_room_accuracy", nan)),
                                "trained": float(zs["trained"].get("client_room_accuracy", nan)),
                            },
                            out / "t2l_generated_vs_trained.png",
                            "simulated client room, default decision: before / after training",
                        )
                    ).value,
                ),
                "t2l_zero_shot_simulated_accuracy": (
                    "float",
                    float(zs["generated"].get("client_room_accuracy", nan)),
                ),
                "t2l_trained_simulated_accuracy": (
                    "float",
                    float(zs["trained"].get("client_room_accuracy", nan)),
                ),
            }
            if (zs := res.zero_shot_metrics)
            else {}
        ),
        "trainable_params": ("int", int(res.trainable_params)),
        "trainable_ratio": ("float", round(res.trainable_params / res.total_params, 4)),
        "train_seconds": ("float", round(res.train_seconds, 2)),
        "metrics": (
            "md",
            _md_metrics({"base (sim)": res.base_metrics, "adapter (sim)": res.adapter_metrics}),
        ),
        "confusion_matrix": ("md", image(cm_png).value),
        "training_curve": ("md", image(curve).value),
        "evaluated_on": (
            "text",
            f"simulation: {sim['data']}"
            + (f"; client_device: {real['data']}" if real else "; client_device: none"),
        ),
    }
    check = {
        "passed": bool(ok),
        "why": why,
        "metadata": {
            "dac_id": ("text", dac_request.dac_id),
            "why": ("text", why),
            "verdict": ("text", res.gate["verdict"]),
            "selected": ("text", res.selected),
        },
    }
    return {
        "value": report | {"train_seconds": res.train_seconds},
        "metadata": metadata,
        "check": check,
        "adapter_sha256": digest,
    }


def _t2l_start(dac_request: DacRequest, room, cal, sensing: SensingResource, layout, log):
    """(peft state to start from or None, what the metadata says, this adapter's T2L inputs).
    A hypernetwork under models/t2l/ (the `t2l_hypernetwork` asset; off by default, see
    docs/fleet.md) writes the starting adapter from the request's text, room and device."""
    from iv_pipelines.fleet.weekly import t2l_inputs

    text = f"{dac_request.text.strip()} {dac_request.environment.description.strip()}"
    inputs = t2l_inputs(text, (room.width_m, room.depth_m, room.height_m), cal.context)
    t2l_dir = layout.t2l_dir()
    if not (t2l_dir / "t2l.json").is_file():
        return (
            None,
            "zero start (peft's): no Text-to-LoRA hypernetwork in models/t2l (off by default)",
            inputs,
        )
    import hashlib

    import numpy as np

    from iv_pipelines.fleet.merge import base_state, peft_state
    from iv_pipelines.fleet.t2l import T2L, embed_texts
    from iv_pipelines.sensing.model import load_model, lora_scaling

    t2l = T2L.load(t2l_dir)
    base_sha = hashlib.sha256((layout.base_model_dir() / "model.safetensors").read_bytes()).hexdigest()
    if t2l.base_sha256 is not None and t2l.base_sha256 != base_sha:
        return (
            None,
            "zero start: the hypernetwork writes deltas for another base model (rerun t2l_hypernetwork_job)",
            inputs,
        )
    if t2l.cfg.rank != sensing.lora_rank or len(t2l.mean) != len(inputs["numbers"]):
        return (
            None,
            f"zero start: the hypernetwork writes rank {t2l.cfg.rank} adapters for other inputs",
            inputs,
        )
    [blocks] = t2l.generate(embed_texts([text]), np.array([inputs["numbers"]], np.float32))
    # the adapter's lineage commits to the hypernetwork that wrote its start (t2l_inputs.json)
    inputs["generated_by_t2l_sha256"] = hashlib.sha256((t2l_dir / "t2l.safetensors").read_bytes()).hexdigest()
    base, cfg = load_model(layout.base_model_dir())
    state = peft_state(blocks, base_state(base), cfg, sensing.lora_rank, lora_scaling(sensing.lora_rank))
    log(f"starting from the Text-to-LoRA adapter ({t2l.library_size} adapters in its library)")
    return (
        state,
        f"generated by the Text-to-LoRA hypernetwork ({t2l.library_size} adapters in its library)",
        inputs,
    )


wifi_sensing_base_model_job = dg.define_asset_job(
    name="wifi_sensing_base_model_job",
    selection=dg.AssetSelection.assets("wifi_sensing_base_model"),
    description="Pretrains the wifi-sensing base model on Shadow Twin data from random rooms.",
)
