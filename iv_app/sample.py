"""A small but real DAC for tests and benches: a tiny base model (seconds of pretraining),
a LoRA adapter, a twin snapshot, a signed lineage bundle. The discovery record and the ledger
registration are fixed stand-ins (no calibration or chain needed); never used by the lifecycle."""

from __future__ import annotations

from pathlib import Path


def _sample_request_text() -> str:
    from iv_app.demo import sample_request_path

    return sample_request_path().read_text()


def make_small_dac(
    root: Path, key, dac_id: str = "fall-detection-acme", base_model: Path | None = None
) -> None:
    """A real but small DAC under `root`: tiny base model, LoRA adapter, twin snapshot,
    validation record, signed lineage bundle and a ledger registration record. With
    `base_model` (a trained base model directory) that model is copied in instead of the tiny
    one, so the capsule makes useful decisions (the tiny model calls almost everything walk)."""
    import json

    from iv_pipelines.proof.lineage import build_bundle
    from iv_pipelines.request import parse_request_text
    from iv_pipelines.sensing.client import train_client_adapter, uncalibrated
    from iv_pipelines.sensing.formats import ESP_CSI_HEADER, write_esp_csi_lines
    from iv_pipelines.sensing.model import save_model
    from iv_pipelines.sensing.pipeline import client_resident, client_room, pretrain_base
    from iv_pipelines.storage import StorageLayout

    req = parse_request_text(_sample_request_text())
    layout = StorageLayout(root)
    dac = layout.dac_dir(dac_id)
    (dac / "twin").mkdir(parents=True)
    layout.dac_request_file(dac_id).write_text(req.model_dump_json(indent=2) + "\n")
    if base_model is not None:
        import shutil

        shutil.copytree(base_model, layout.base_model_dir(), dirs_exist_ok=True)
    else:
        base = pretrain_base(n_rooms=6, per_activity=3, epochs=3, seed=0, n_eval_rooms=2, eval_per_activity=2)
        save_model(base.model, base.cfg, layout.base_model_dir(), extra={"metrics": base.metrics})
    room, resident = client_room(req), client_resident(req)
    res = train_client_adapter(
        layout.base_model_dir(),
        room,
        uncalibrated(resident),
        per_activity=6,
        eval_per_activity=4,
        epochs=3,
    )
    adapter = layout.adapter_dir(dac_id)
    res.model.save_pretrained(str(adapter))
    (adapter / "evaluation.json").write_text(
        json.dumps(
            {
                "selected": "adapter",  # a fixture: the lifecycle picks by the paired test
                "why": "test fixture",
                "gate": res.gate,
                "thresholds": res.thresholds,
                "evidence": res.evidence,
                "base": res.base_metrics,
                "adapter": res.adapter_metrics,
                "beats_base": True,
                "check_passed": True,
                "trainable_params": res.trainable_params,
                "total_params": res.total_params,
                "room": room.digest(),
                "resident": resident.name,
            },
            sort_keys=True,
        )
    )
    from iv_pipelines.sensing.twin import simulate_dataset

    eps = simulate_dataset([room], 1, 7, duration_s=2.2, resident=resident)
    lines = [line for e in eps for line in write_esp_csi_lines(e.csi, e.t_s)[1:]]
    (dac / "twin" / "episodes.csv").write_text(ESP_CSI_HEADER + "\n" + "\n".join(lines) + "\n")
    (dac / "twin" / "room.json").write_text(json.dumps({"digest": room.digest()}) + "\n")
    hyp = {
        "domain": "wifi-sensing",
        "task": "fall detection from CSI windows",
        "approach": "a small transformer over CSI features",
        "target_metric": "fall recall at 2% false alarms",
        "origin": "template",
        "text": "Hypothesis: fall detection from CSI windows using a small transformer over CSI features.",
    }
    (dac / "validated_hypothesis.json").write_text(
        json.dumps(
            {
                "hypothesis": hyp,
                "percentiles": {"AROE": 0.9, "AESP": 0.8, "QERO": 0.95, "AIEO": 0.5},
                "prin": 0.77,
                "ods": 0.8,
                "validation_score": 0.97,
                "threshold": 0.95,
                "passed": True,
                "iterations": 1,
                "calibration_digest": "0" * 64,
            }
        )
    )
    build_bundle(root, dac_id, key, "test-run", [])
    (layout.lineage_dir(dac_id) / "registration.json").write_text(
        json.dumps({"utid": "utid:" + "ab" * 32, "digest": "cd" * 32, "dac_id": dac_id, "tx_hash": "ef" * 32})
    )
