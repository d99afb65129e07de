"""Fleet learning on real models (issue #20): adapters as M2N2 deltas, the merged model equal
to peft's, the Text-to-LoRA output loading into the peft model with the right shapes."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tiny_base():
    import torch

    from iv_pipelines.sensing.model import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig()
    model = build_model(cfg)
    model.eval()
    return model, cfg


def _windows(n=12, seed=0):
    from iv_pipelines.fleet.merge import WindowSet
    from iv_pipelines.sensing.context import CTX_DIM
    from iv_pipelines.sensing.features import N_FEATURES, VALID_COLUMN, T

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, T, N_FEATURES)).astype(np.float32)
    x[:, :, VALID_COLUMN] = 1.0
    return WindowSet(x, rng.integers(0, 4, n), rng.normal(size=(n, CTX_DIM)).astype(np.float32))


def _random_adapter(model, seed):
    import copy

    import torch

    from iv_pipelines.fleet.clients import adapter_state
    from iv_pipelines.sensing.model import add_lora

    torch.manual_seed(seed)
    peft_model = add_lora(copy.deepcopy(model))
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_" in n or "modules_to_save" in n:
                p.add_(0.05 * torch.randn_like(p))
    return peft_model, adapter_state(peft_model)


def test_an_adapter_as_deltas_predicts_exactly_as_the_peft_model(tiny_base):
    from iv_pipelines.fleet.merge import adapter_blocks, base_state, merged_model, peft_state
    from iv_pipelines.sensing.model import predict_proba

    model, cfg = tiny_base
    ws = _windows()
    peft_model, state = _random_adapter(model, 1)
    base = base_state(model)
    blocks = adapter_blocks(state, base, cfg, scaling=2.0)
    p_peft = predict_proba(peft_model, ws.x, ctx=ws.ctx)
    np.testing.assert_allclose(
        predict_proba(merged_model(base, cfg, blocks), ws.x, ctx=ws.ctx), p_peft, atol=1e-5
    )
    # and back: rank-4 deltas refactored into A and B give the same adapter
    again = adapter_blocks(peft_state(blocks, base, cfg, 4, 2.0), base, cfg, 2.0)
    for k in blocks:
        np.testing.assert_allclose(again[k], blocks[k], atol=1e-5)


def test_the_hypernetworks_output_loads_into_the_peft_model_with_the_right_shapes(tiny_base):
    import copy

    from iv_pipelines.fleet.merge import adapter_blocks, base_state, merged_model, peft_state
    from iv_pipelines.fleet.t2l import T2L, train_hypernet
    from iv_pipelines.sensing.model import add_lora, load_peft_state, predict_proba

    model, cfg = tiny_base
    base = base_state(model)
    library = [adapter_blocks(_random_adapter(model, s)[1], base, cfg, 2.0) for s in range(4)]
    rng = np.random.default_rng(0)
    text, numbers = rng.normal(size=(4, 384)).astype(np.float32), rng.normal(size=(4, 7)).astype(np.float32)
    t2l = train_hypernet(text, numbers, library, cfg, epochs=30, seed=0)
    assert t2l.losses[-1] < t2l.losses[0]  # it learns the library
    [gen] = t2l.generate(text[:1], numbers[:1])
    assert {k: v.shape for k, v in gen.items()} == {k: v.shape for k, v in library[0].items()}
    state = peft_state(gen, base, cfg, rank=4, scaling=2.0)
    peft_model = add_lora(copy.deepcopy(model))
    load_peft_state(peft_model, state)  # every key used, none missing
    ws = _windows()
    np.testing.assert_allclose(
        predict_proba(peft_model, ws.x, ctx=ws.ctx),
        predict_proba(merged_model(base, cfg, gen), ws.x, ctx=ws.ctx),
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="does not have"):
        load_peft_state(
            add_lora(copy.deepcopy(model)),
            state | {"base_model.model.nowhere.lora_A.weight": np.zeros((4, 4))},
        )
    with pytest.raises(ValueError):  # a wrong shape is refused too
        bad = dict(state)
        k = next(k for k in bad if k.endswith("lora_A.weight"))
        bad[k] = np.zeros((2, 3), np.float32)
        load_peft_state(add_lora(copy.deepcopy(model)), bad)
    # saved and loaded, it generates the same adapter
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        again = T2L.load(t2l.save(Path(d)))
        [gen2] = again.generate(text[:1], numbers[:1])
    for k in gen:
        np.testing.assert_allclose(gen2[k], gen[k], atol=1e-6)


def test_a_merge_is_kept_out_unless_better_than_the_base_and_every_parent(tiny_base):
    """Random adapters on random windows: nothing can be significantly better on held-out
    windows, so the merge is never promoted and the report says against whom it lost."""
    from iv_pipelines.fleet.merge import adapter_blocks, base_state, fleet_merge

    model, cfg = tiny_base
    base = base_state(model)
    adapters = {f"a{s}": adapter_blocks(_random_adapter(model, s)[1], base, cfg, 2.0) for s in range(3)}
    rep = fleet_merge(model, cfg, adapters, _windows(40, 1), _windows(40, 2), iterations=6, seed=0)
    assert len(rep.members) == 4 and len(rep.fitness) == 4
    assert not rep.promoted and rep.why
    if rep.chosen:
        assert set(rep.comparisons) == {"base", "a0", "a1", "a2"}
        assert "not significantly better" in rep.why


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory):
    """A storage root with a tiny base model and the sample request's DAC registered."""
    from tests.conftest import tiny_home as make

    return make(tmp_path_factory.mktemp("fleet") / "iv")


def _lifecycle_to_adapter(storage, tiny, req):
    from resources.training import GpuStepResource
    from tests.conftest import materialize_to_adapter

    res = materialize_to_adapter(storage, tiny, req, GpuStepResource())
    [mat] = res.asset_materializations_for_node("lora_adapter")
    return {k: v.value for k, v in mat.metadata.items()}


def test_lora_adapter_starts_from_the_hypernetworks_adapter_when_one_exists(tiny_home):
    """Without a hypernetwork the adapter starts from zero and says so, and records its
    inputs for a future library; with one under models/t2l/, it starts from the generated
    adapter and reports zero-shot next to trained accuracy, with a plot."""
    import json

    from iv_pipelines.fleet.merge import adapter_blocks, base_state
    from iv_pipelines.fleet.t2l import embed_texts, train_hypernet
    from iv_pipelines.fleet.weekly import T2L_INPUTS
    from iv_pipelines.sensing.model import load_model

    storage, tiny, req = tiny_home
    layout = storage.layout
    md = _lifecycle_to_adapter(storage, tiny, req)
    assert md["t2l_start"].startswith("zero start") and "t2l_zero_shot_simulated_accuracy" not in md
    # the plain request has no walking calibration: no fall-intensity check, and it says why
    assert md["fall_intensity_check"] == "off: no walking calibration capture: no reference, no check"
    assert md["fall_intensity_factor"] == 0.0
    ev = json.loads((layout.adapter_dir(req.dac_id) / "evaluation.json").read_text())
    assert ev["intensity_check"]["on"] is False and ev["evidence"]["decision"]["intensity_check"] is None
    # the calibration windows' weight in the adapter's training is the resource's, on record
    from iv_pipelines.sensing.client import REAL_WEIGHT

    assert md["calibration_weight"] == ev["calibration_weight"] == REAL_WEIGHT
    inputs = json.loads((layout.adapter_dir(req.dac_id) / T2L_INPUTS).read_text())
    from iv_pipelines.sensing.context import CTX_DIM

    assert req.environment.description.strip() in inputs["text"] and len(inputs["numbers"]) == 3 + CTX_DIM
    base, cfg = load_model(layout.base_model_dir())
    bstate = base_state(base)
    from safetensors.numpy import load_file

    own = adapter_blocks(
        load_file(str(layout.adapter_dir(req.dac_id) / "adapter_model.safetensors")), bstate, cfg, 2.0
    )
    other = {k: -v for k, v in own.items()}
    t2l = train_hypernet(
        embed_texts([inputs["text"], "another home"]),
        np.array([inputs["numbers"], np.zeros(len(inputs["numbers"]))], np.float32),
        [own, other],
        cfg,
        epochs=5,
    )
    t2l.save(layout.t2l_dir())
    md = _lifecycle_to_adapter(storage, tiny, req)
    assert md["t2l_start"].startswith("generated by the Text-to-LoRA hypernetwork (2 adapters")
    assert (
        0.0 <= md["t2l_zero_shot_simulated_accuracy"] <= 1.0
        and 0.0 <= md["t2l_trained_simulated_accuracy"] <= 1.0
    )
    assert "data:image/png;base64," in md["t2l_generated_vs_trained"]
    # the adapter's lineage (its directory) commits to the hypernetwork that wrote its start
    import hashlib

    again = json.loads((layout.adapter_dir(req.dac_id) / T2L_INPUTS).read_text())
    assert (
        again["generated_by_t2l_sha256"]
        == hashlib.sha256((layout.t2l_dir() / "t2l.safetensors").read_bytes()).hexdigest()
    )
    # a hypernetwork trained for another base model is not used, and the adapter says so
    t2l.base_sha256 = "0" * 64
    t2l.save(layout.t2l_dir())
    md = _lifecycle_to_adapter(storage, tiny, req)
    assert md["t2l_start"].startswith("zero start: the hypernetwork writes deltas for another base model")
    assert "generated_by_t2l_sha256" not in json.loads(
        (layout.adapter_dir(req.dac_id) / T2L_INPUTS).read_text()
    )


def test_base_model_update_with_the_fleet_merge_reports_the_archive(tiny_home):
    """`fleet_merge: true` with two adapters on the current base: the archive, each member's
    fitness and the merge chosen (or why none) are in the metadata, with a plot; with it off
    (the default) the metadata says why it is off."""
    import dagster as dg

    from defs.operations.base_model import base_model_update
    from iv_pipelines.sensing.model import load_model
    from resources.training import GpuStepResource

    storage, tiny, req = tiny_home
    layout = storage.layout
    base, _ = load_model(layout.base_model_dir())
    for i, dac in enumerate(["fleet-a", "fleet-b"]):  # two more DACs with adapters on this base
        layout.dac_dir(dac)
        layout.dac_request_file(dac).write_text(req.model_dump_json())
        _random_adapter(base, 10 + i)[0].save_pretrained(str(layout.adapter_dir(dac)))

    def run(cfg):
        res = dg.materialize(
            [base_model_update],
            resources={"storage": storage, "sensing": tiny, "gpu_steps": GpuStepResource()},
            run_config={"ops": {"base_model_update": {"config": cfg}}},
            instance=dg.DagsterInstance.ephemeral(),
        )
        [mat] = res.asset_materializations_for_node("base_model_update")
        return {k: v.value for k, v in mat.metadata.items()}

    off = run({"candidate_seed": 3})
    assert off["fleet_merge"].startswith("off by default")
    on = run({"candidate_seed": 3, "fleet_merge": True, "fleet_merge_iterations": 4})
    if on["promoted"] and "fleet_archive" not in on:  # the seed candidate itself won this week
        assert on["fleet_merge"].startswith("not run: a new base was promoted")
        return
    assert on["fleet_adapters"] >= 2
    table = on["fleet_archive"].splitlines()
    assert "fitness (resource competition)" in table[0] and len(table) == 2 + 1 + on["fleet_adapters"]
    assert on["fleet_merge"] and "data:image/png;base64," in on["fleet_plot"]
    assert "SIMULATED" in on["fleet_evaluated_on"]
    assert (layout.fleet_dir() / "m2n2.json").is_file()
