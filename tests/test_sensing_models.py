"""Base model, LoRA adapter and their assets, with honest held-out metrics.

The default pretraining budget runs once per session (about 2-3 minutes on 2 cores); its
floors below are what this code measures today minus a margin, not the issue's goals (the
goals and the measured values are reported in the asset metadata and docs/sensing.md)."""

import json

import dagster as dg
import numpy as np
import pytest

from defs.discovery import dac_request, shadow_twin_context
from defs.training import ADAPTER_CHECK, lora_adapter, wifi_sensing_base_model
from iv_pipelines.request import parse_request_text
from iv_pipelines.sensing.model import LORA_TARGETS, ModelConfig, add_lora, build_model, count_params
from resources.sensing import SensingResource


def test_lora_wraps_attention_and_mlp_only():
    base = build_model(ModelConfig())
    total = count_params(base)
    peft_model = add_lora(base, r=4)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all(("lora_" in n) or ("head" in n) for n in trainable)
    assert {t for t in LORA_TARGETS if any(f".{t}.lora_A" in n for n in trainable)} == set(LORA_TARGETS)
    assert count_params(peft_model, trainable_only=True) < 0.1 * total


def test_causal_lm_domains_get_lora_on_a_tiny_config_built_model(tmp_path):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from iv_pipelines.sensing.registry import causal_lm_lora, registry, spec_for

    assert len(registry()) >= 15 and spec_for("wifi-sensing").trainable
    assert spec_for("customer-support").kind == "causal-lm"
    torch.manual_seed(0)
    GPT2LMHeadModel(
        GPT2Config(vocab_size=64, n_positions=32, n_embd=16, n_layer=1, n_head=2)
    ).save_pretrained(tmp_path)
    model = causal_lm_lora(str(tmp_path))
    ids = torch.randint(0, 64, (4, 16))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    losses = []
    for _ in range(15):
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.1  # the adapter (only) learns the batch
    with pytest.raises(KeyError, match="no base model registered"):
        spec_for("astrology")


@pytest.fixture(scope="module")
def trained(default_base_model):
    """The default base model (built once per session: the same one `make demo` trains), and
    the sample DAC's twin context and adapter with the sample's calibration captures."""
    from conftest import SAMPLE_REQUEST

    from resources.storage import FactoryStorage

    base, root = default_base_model
    storage = FactoryStorage(root_dir=str(root))
    from resources.training import GpuStepResource

    resources = {"storage": storage, "sensing": SensingResource(), "gpu_steps": GpuStepResource()}
    instance = dg.DagsterInstance.ephemeral()
    storage.requests().put(parse_request_text(SAMPLE_REQUEST.read_text()), base_dir=SAMPLE_REQUEST.parent)
    instance.add_dynamic_partitions("dac", ["fall-detection-acme"])

    @dg.asset(name="validated_hypothesis", partitions_def=dac_request.partitions_def)
    def validated_stub():  # the discovery gate is tested elsewhere; here it just exists
        return None

    lora = dg.materialize(
        [dac_request, shadow_twin_context, lora_adapter, validated_stub, wifi_sensing_base_model],
        selection=[dac_request, shadow_twin_context, validated_stub, lora_adapter],
        partition_key="fall-detection-acme",
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    return base, lora, root


def test_base_model_on_held_out_homes_and_real_captures(trained):
    """Floors below what this code measures today (docs/sensing.md), not the goals."""
    base, _, root = trained
    md = base.asset_materializations_for_node("wifi_sensing_base_model")[0].metadata
    assert (root / "models" / "wifi-sensing-base" / "model.safetensors").exists()
    ev = json.loads((root / "models" / "wifi-sensing-base" / "evaluation.json").read_text())
    held = ev["heldout"]
    assert held["heldout_rooms_n"] == 1280  # 32 homes x 10 episodes x 4 activities
    assert held["heldout_rooms_accuracy"] >= 0.85
    assert held["heldout_rooms_amp_only_accuracy"] >= 0.85
    assert held["heldout_rooms_uncalibrated_accuracy"] >= 0.82
    assert held["heldout_rooms_decision_recall_fall"] >= 0.75
    if ev["real"]:  # shared/data present: every chip, I/Q and amplitude-only, +- context
        rows = ev["real"]
        assert len(rows) == 20 and {r["chip"] for r in rows} == {"esp32", "s3", "c3", "c5", "c6"}
        assert all(r["moving_called_nonempty"] >= 0.9 and r["auroc"] >= 0.85 for r in rows)
        assert "leave-one-chip-out" in md["real_devices"].value  # says what it is not
        assert "certified (95 % lower bound of both shares >= 0.95) in " in md["real_devices"].value


def test_lora_adapter_is_gated_by_a_paired_test_and_says_what_its_evidence_is(trained):
    _, lora, _ = trained
    report = lora.output_for_node("lora_adapter")
    checks = [(c.check_name, c.passed) for c in lora.get_asset_check_evaluations()]
    assert checks == [(ADAPTER_CHECK, report["check_passed"])]
    gate = report["gate"]
    assert gate["verdict"] in ("better", "non-inferior", "inconclusive", "worse")
    assert report["check_passed"] == (
        gate["verdict"] != "worse"
    )  # the sample sets no violable constraint beyond noise
    assert report["selected"] in ("adapter", "base") and "McNemar" in report["why"]
    if gate["verdict"] != "better":  # not better: the better point estimate ships, and why is said
        assert "better point estimate" in report["why"]
    ev = report["evidence"]
    # the sample's calibration captures are twin-generated stand-ins: simulation only, said so
    assert ev["validated_on"] == "simulation_only" and ev["client_device"] is None
    assert "simulated client room" in ev["simulation"]["data"]
    assert 0.2 <= ev["decision"]["fall_threshold"] <= 0.95
    # the threshold sets say how many windows vouch for the target; twin-generated captures are
    # never labelled real there either
    dec = ev["decision"]
    assert set(dec["threshold_set_windows"]) == {"sim", "simulated capture"}
    assert all(0 < n for n in dec["threshold_set_windows"].values())
    assert dec["certified"] == all(
        u <= dec["target_false_alarm_rate"] for u in dec["threshold_set_false_alarm_upper95"].values()
    )
    cal = report["calibration"]
    assert cal["amplitude_only"] and [c["origin"] for c in cal["captures"]] == ["simulated", "simulated"]
    assert cal["fit"]["sources"]["snr_db"] == "fitted" and cal["fit"]["walk_speed_ms"] is not None
    assert report["resident"] == "elderly"  # the sample request is about elderly people
    assert report["trainable_params"] < 0.1 * report["total_params"]
    md = lora.asset_materializations_for_node("lora_adapter")[0].metadata
    assert md["validated_on"].value == "simulation_only"
    assert md["simulated_accuracy"].value == pytest.approx(
        ev["simulation"]["accuracy"], abs=5e-5
    )  # shown to 4 decimals
    twin_md = lora.asset_materializations_for_node("shadow_twin_context")[0].metadata
    from iv_pipelines.sensing.formats import read_csi_file

    cap, rep = read_csi_file(twin_md["episodes_path"].value)
    assert not rep.rejected and rep.parsed > 1000  # the snapshot parses like a real capture
    assert np.abs(cap.csi).max() <= 182  # int8 I/Q
    assert "device_fit" in twin_md and "fitted" in twin_md["device_fit"].value
