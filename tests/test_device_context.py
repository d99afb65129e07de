"""The capsule serves with the device context its adapter trained and was evaluated with.

Until 2026-12-07 nothing wrote the DAC's `twin/context.json`, so every package's runtime.json
said `"context": null` and a calibrated DAC's capsule answered as an uncalibrated one (zeros),
not as the model whose accuracy the DAC reports."""

import json

import numpy as np
import pytest
import yaml
from conftest import materialize_to_adapter, plain_sample_request_text, tiny_home

from iv_pipelines.request import parse_request_text


def _walk_lines(seconds: float) -> str:
    from iv_pipelines.sensing.formats import write_esp_csi_lines
    from iv_pipelines.sensing.twin import Room, simulate_episode

    room = Room.random(np.random.default_rng(3), size=(5.0, 4.0, 2.6))
    ep = simulate_episode(room, "walk", seed=21, duration_s=seconds)
    return "\n".join(write_esp_csi_lines(ep.csi, ep.t_s)) + "\n"


def _request(tmp_path, dac_id: str, calibrated: bool):
    doc = yaml.safe_load(plain_sample_request_text()) | {"dac_id": dac_id}
    doc.pop("calibration", None)
    if calibrated:
        (tmp_path / "walk.csv").write_text(_walk_lines(20.0))
        doc["calibration"] = [{"activity": "walk", "path": "walk.csv", "origin": "simulated"}]
    return parse_request_text(yaml.safe_dump(doc))


def test_a_calibrated_dac_ships_its_context_and_the_capsule_uses_it(tmp_path):
    from iv_pipelines.packaging.dac import runtime_json
    from iv_pipelines.runtime.predictor import RuntimeConfig
    from iv_pipelines.sensing.context import CONTEXT_FILE, activities_in
    from iv_pipelines.sensing.features import N_FEATURES, VALID_COLUMN, T
    from iv_pipelines.sensing.model import load_model, predict_proba
    from resources.training import GpuStepResource

    storage, tiny, _ = tiny_home(tmp_path / "iv")
    gpu = GpuStepResource()
    req = _request(tmp_path, "fall-context-walk", calibrated=True)
    storage.requests().put(req, base_dir=tmp_path)
    res = materialize_to_adapter(storage, tiny, req, gpu)
    trained = res.output_for_node("shadow_twin_context").calibration.context
    assert activities_in(trained) == ["walk"]
    dac_dir = storage.dac_dir(req.dac_id)
    stored = json.loads((dac_dir / "twin" / CONTEXT_FILE).read_text())
    assert stored["activities"] == ["walk"]
    report = res.output_for_node("lora_adapter")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "runtime.json").write_text(runtime_json(req.dac_id, "1.0.0", report, dac_dir))
    served = RuntimeConfig.load(pkg).context
    assert served is not None and np.array_equal(np.asarray(served, np.float32), trained)  # bit for bit
    # the served context is not a no-op: the model answers differently with it than with zeros
    # (what the capsule served before the fix)
    model, _ = load_model(storage.layout.base_model_dir())
    x = np.random.default_rng(0).normal(size=(4, T, N_FEATURES)).astype(np.float32)
    x[..., VALID_COLUMN] = 1.0
    with_ctx = predict_proba(model, x, ctx=np.asarray(served, np.float32))
    assert not np.allclose(with_ctx, predict_proba(model, x, ctx=None))

    # a calibrated DAC whose context went missing is refused, naming the fix
    (dac_dir / "twin" / CONTEXT_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="re-materialize shadow_twin_context"):
        runtime_json(req.dac_id, "1.0.0", report, dac_dir)


def test_an_uncalibrated_dac_serves_without_context(tmp_path):
    from iv_pipelines.packaging.dac import runtime_json
    from iv_pipelines.sensing.context import CONTEXT_FILE
    from resources.training import GpuStepResource

    storage, tiny, _ = tiny_home(tmp_path / "iv")
    req = _request(tmp_path, "fall-context-none", calibrated=False)
    storage.requests().put(req, base_dir=tmp_path)
    res = materialize_to_adapter(storage, tiny, req, GpuStepResource())
    dac_dir = storage.dac_dir(req.dac_id)
    assert json.loads((dac_dir / "twin" / CONTEXT_FILE).read_text()) == {"context": None, "activities": []}
    doc = json.loads(runtime_json(req.dac_id, "1.0.0", res.output_for_node("lora_adapter"), dac_dir))
    assert doc["context"] is None
