"""Base model, LoRA adapter and their assets, with honest held-out metrics.

The default pretraining budget runs once per session (about 2-3 minutes on 2 cores); its
floors below are what this code measures today minus a margin, not the issue's goals (the
goals and the measured values are reported in the asset metadata and the README)."""

import json

import dagster as dg
import numpy as np
import pytest

from assets.discovery import dac_request, shadow_twin_context
from assets.training import ADAPTER_CHECK, lora_adapter, wifi_sensing_base_model
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
def trained(tmp_path_factory, sample_request_text_module):
    """Default budgets: the same base model `make demo` trains, in a temporary storage root."""
    from resources.storage import FactoryStorage

    root = tmp_path_factory.mktemp("sensing")
    storage = FactoryStorage(root_dir=str(root))
    resources = {"storage": storage, "sensing": SensingResource()}
    instance = dg.DagsterInstance.ephemeral()
    base = dg.materialize([wifi_sensing_base_model], resources=resources, instance=instance)
    storage.requests().put(parse_request_text(sample_request_text_module))
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


def test_base_model_on_held_out_rooms_and_real_captures(trained):
    base, _, root = trained
    md = base.asset_materializations_for_node("wifi_sensing_base_model")[0].metadata
    assert (root / "models" / "wifi-sensing-base" / "model.safetensors").exists()
    ev = json.loads((root / "models" / "wifi-sensing-base" / "evaluation.json").read_text())
    held = ev["heldout"]
    assert held["heldout_rooms_n"] == 1280  # 32 rooms x 10 episodes x 4 activities
    assert held["heldout_rooms_accuracy"] >= 0.90
    assert held["heldout_rooms_amp_only_accuracy"] >= 0.90
    assert held["heldout_rooms_fall_recall_at_2pct_fa"] >= 0.80
    if ev["real"]:
        assert ev["real"]["n_files"] == 20
        assert md["real_presence_auroc"].value >= 0.85  # the goal; see the README for the measured value


def test_lora_adapter_asset_beats_base_and_records_metrics(trained):
    _, lora, _ = trained
    assert lora.success or not lora.output_for_node("lora_adapter")["beats_base"]
    report = lora.output_for_node("lora_adapter")
    # the gate is honest, not guaranteed: with the default seed the adapter beats the base on
    # this room by a small margin; other seeds can fail it (see the README)
    checks = [(c.check_name, c.passed) for c in lora.get_asset_check_evaluations()]
    assert checks == [(ADAPTER_CHECK, report["beats_base"])]
    a, b = report["adapter"], report["base"]
    assert report["beats_base"] == (
        a["client_room_accuracy"] > b["client_room_accuracy"]
        or (
            a["client_room_accuracy"] == b["client_room_accuracy"]
            and a["client_room_nll"] < b["client_room_nll"]
        )
    )
    assert a["client_room_n"] == 600  # 150 held-out episodes per activity
    assert report["resident"] == "elderly"  # the sample request is about elderly people
    assert report["trainable_params"] < 0.1 * report["total_params"]
    md = lora.asset_materializations_for_node("lora_adapter")[0].metadata
    assert md["client_room_accuracy"].value == a["client_room_accuracy"]
    twin_md = lora.asset_materializations_for_node("shadow_twin_context")[0].metadata
    from iv_pipelines.sensing.formats import read_csi_file

    cap, rep = read_csi_file(twin_md["episodes_path"].value)
    assert not rep.rejected and rep.parsed > 1000  # the snapshot parses like a real capture
    assert np.abs(cap.csi).max() <= 182  # int8 I/Q
