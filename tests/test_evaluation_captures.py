"""A request's evaluation captures: labelled real captures of the client's device (falls
included, from one window long) that only ever evaluate the DAC — never fit, train, set the
threshold or choose between the adapter and the base model — and make its `client_device`
evidence, fall recall included."""

import numpy as np
import pytest
import yaml
from conftest import plain_sample_request_text

from iv_pipelines.errors import InputError
from iv_pipelines.intake import RequestStore
from iv_pipelines.request import parse_request_text


def _episode_lines(activity: str, seed: int, seconds: float) -> str:
    from iv_pipelines.sensing.formats import write_esp_csi_lines
    from iv_pipelines.sensing.twin import Room, simulate_episode

    room = Room.random(np.random.default_rng(3), size=(5.0, 4.0, 2.6))
    ep = simulate_episode(room, activity, seed=seed, duration_s=seconds)
    return "\n".join(write_esp_csi_lines(ep.csi, ep.t_s)) + "\n"


def _request(tmp_path, evaluation: list[dict], files: dict[str, str], calibration: list[dict] | None = None):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    doc = yaml.safe_load(plain_sample_request_text()) | {"evaluation": evaluation}
    if calibration is not None:
        doc["calibration"] = calibration
    return parse_request_text(yaml.safe_dump(doc))


def test_evaluation_may_hold_a_fall_and_calibration_may_not():
    doc = yaml.safe_load(plain_sample_request_text())
    ok = parse_request_text(yaml.safe_dump(doc | {"evaluation": [{"activity": "fall", "path": "f.csv"}]}))
    assert ok.evaluation[0].activity == "fall"
    for bad, needle in (
        ({"calibration": [{"activity": "fall", "path": "f.csv"}]}, "falls are never required"),
        ({"evaluation": [{"activity": "jump", "path": "f.csv"}]}, "'jump' is not an activity"),
        (
            {"evaluation": [{"activity": "walk", "path": "w.csv", "format": "amplitude-csv"}]},
            "rate_hz is required",
        ),
        ({"evaluation": [{"activity": "walk", "path": "w.csv", "origin": "simulated"}]}, "origin"),
    ):
        with pytest.raises(InputError, match=needle):
            parse_request_text(yaml.safe_dump(doc | bad))
    # a request without evaluation captures keeps its digest (and its DAC its identity)
    plain = parse_request_text(plain_sample_request_text())
    assert "evaluation" not in plain.canonical_dict()


def test_a_short_fall_capture_is_stored_by_content_and_bound_into_the_digest(tmp_path):
    fall = _episode_lines("fall", 1, 1.4)
    req = _request(
        tmp_path, [{"activity": "fall", "path": "fall.csv", "device": "ESP32-S3"}], {"fall.csv": fall}
    )
    store = RequestStore(tmp_path / "store")
    store.put(req, base_dir=tmp_path)
    stored = store.get(req.dac_id)
    [e] = stored.evaluation
    assert e.sha256 and e.path == e.sha256 + ".csv" and store.calibration_file(e).read_text() == fall
    assert stored.digest() != req.digest() and "evaluation" in stored.canonical_dict()


def test_bad_evaluation_captures_are_refused_by_name_and_nothing_is_stored(tmp_path):
    walk = _episode_lines("walk", 2, 9.0)
    cases = [
        (
            [{"activity": "fall", "path": "tiny.csv"}],
            {"tiny.csv": _episode_lines("fall", 3, 0.6)},
            None,
            "lasts 0.6 s",
        ),
        (
            [{"activity": "walk", "path": "walk.csv"}],
            {"walk.csv": walk},
            [{"activity": "walk", "path": "walk.csv"}],
            "evaluation[0].path: the same capture as calibration[0]",
        ),
        (
            [{"activity": "walk", "path": "walk.csv"}, {"activity": "walk", "path": "copy.csv"}],
            {"walk.csv": walk, "copy.csv": walk},
            None,
            "evaluation[1].path: the same capture as evaluation[0]",
        ),
        (
            [{"activity": "fall", "path": "missing.csv"}],
            {},
            None,
            "missing.csv: no such capture file",
        ),
    ]
    for i, (ev, files, cal, needle) in enumerate(cases):
        d = tmp_path / str(i)
        d.mkdir()
        store = RequestStore(d / "store")
        with pytest.raises(InputError) as exc:
            store.put(_request(d, ev, files, cal), base_dir=d)
        assert needle in str(exc.value), exc.value
        assert not (d / "store" / "requests").exists() and not (d / "store" / "calibration").exists()


def test_evaluation_windows_never_train_set_the_threshold_or_reach_the_gate():
    """client_sets puts a `test` capture's windows in the evaluation set only, last, marked;
    the capsule's windowing gives a 1.4 s fall one shorter window."""
    from iv_pipelines.sensing.calibration import Calibration
    from iv_pipelines.sensing.client import client_sets, evaluation_captures, real_repeats, uncalibrated
    from iv_pipelines.sensing.formats import parse_lines
    from iv_pipelines.sensing.twin import RESIDENTS, Room

    caps = []
    for act, seed, s in (("fall", 4, 1.4), ("walk", 5, 6.0)):
        cap, rep = parse_lines(_episode_lines(act, seed, s).splitlines())
        assert not rep.rejected
        caps.append(Calibration(act, cap, True, f"eval-{act}"))
    tests = evaluation_captures(caps, amplitude_only=False)
    assert [c.split for c in tests] == ["test", "test"] and len(tests[0].windows) == 1
    cal = uncalibrated(RESIDENTS["mixed"])
    cal.captures = tests
    assert cal.has_real_eval and real_repeats(tests, 10) == [0, 0]
    room = Room.random(np.random.default_rng(0), size=(5.0, 4.0, 2.6))
    tr, th, ev = client_sets(room, cal, 2, 2, seed=0)
    n_test = sum(len(c.windows) for c in tests)
    assert (tr.source == "sim").all() and (th.source == "sim").all()
    assert ev.test is not None and int(ev.test.sum()) == n_test and ev.test[-n_test:].all()
    assert (ev.source[ev.test] == "real").all() and (ev.source[ev.choosable()] == "sim").all()
    np.testing.assert_array_equal(ev.x[ev.test], np.concatenate([c.windows for c in tests]))


def test_the_dac_reports_real_fall_recall_from_evaluation_captures_and_chooses_without_them(tmp_path):
    """Through the lifecycle's assets (tiny budget): the evaluation captures become
    `client_device` evidence with fall recall, intervals and per-capture counts; the gate's
    paired test runs on the simulated windows alone; nothing of them trains."""
    from conftest import materialize_to_adapter, tiny_home

    from resources.training import GpuStepResource

    storage, tiny, _ = tiny_home(tmp_path / "iv")
    files = {f"fall-{i}.csv": _episode_lines("fall", 10 + i, 1.5) for i in range(3)}
    files["walk.csv"] = _episode_lines("walk", 20, 8.0)
    ev = [{"activity": "fall", "path": f"fall-{i}.csv"} for i in range(3)] + [
        {"activity": "walk", "path": "walk.csv"}
    ]
    req = _request(tmp_path, ev, files).model_copy(update={"dac_id": "fall-detection-evaluated"})
    storage.requests().put(req, base_dir=tmp_path)
    res = materialize_to_adapter(storage, tiny, req, GpuStepResource())
    [twin_mat] = res.asset_materializations_for_node("shadow_twin_context")
    assert [c["split"] for c in twin_mat.metadata["evaluation_captures"].value] == ["test"] * 4
    report = res.output_for_node("lora_adapter")
    real = report["evidence"]["client_device"]
    assert report["evidence"]["validated_on"] == "client_device"
    assert "evaluation-only" in real["data"] and "falls included" in real["data"]
    assert real["n_fall"] == 3 and 0.0 <= real["recall_fall"] <= 1.0
    lo, hi = real["recall_fall_interval95"]
    assert lo <= real["recall_fall"] <= hi
    assert real["per_capture"]["fall"]["captures"] == 3 and real["per_capture"]["walk"]["captures"] == 1
    sim_n = report["evidence"]["simulation"]["n"]
    assert report["gate"]["n"] == sim_n  # the paired test never saw the evaluation windows
    [mat] = res.asset_materializations_for_node("lora_adapter")
    assert mat.metadata["client_device_fall_windows"].value == 3
    from iv_app.demo import real_evidence_line

    line = real_evidence_line(real)
    assert "fall recall" in line and "fall captures detected:" in line and "of 3" in line


def test_evaluation_captures_are_bounded_in_all(tmp_path, monkeypatch):
    """Their windows travel with the twin context: a request's evaluation captures last at
    most MAX_EVALUATION_S together, or the request is refused and nothing is stored."""
    import iv_pipelines.intake as intake

    monkeypatch.setattr(intake, "MAX_EVALUATION_S", 10.0)
    files = {f"w{i}.csv": _episode_lines("walk", 70 + i, 6.0) for i in range(2)}
    ev = [{"activity": "walk", "path": f"w{i}.csv"} for i in range(2)]
    store = RequestStore(tmp_path / "store")
    with pytest.raises(InputError, match="its 2 captures last 12 s together"):
        store.put(_request(tmp_path, ev, files), base_dir=tmp_path)
    assert not (tmp_path / "store" / "calibration").exists()
    store.put(_request(tmp_path, ev[:1], files), base_dir=tmp_path)  # one of them is fine
    monkeypatch.setattr(intake, "MAX_TOTAL_CALIBRATION_S", 10.0)  # calibration likewise
    cal = [{"activity": "walk", "path": f"w{i}.csv"} for i in range(2)]
    with pytest.raises(InputError, match="calibration: its 2 captures last 12 s together"):
        RequestStore(tmp_path / "store2").put(_request(tmp_path, [], files, cal), base_dir=tmp_path)


def test_the_manifest_carries_evidence_intervals_as_numbers():
    from iv_pipelines.packaging.dac import _flat_evidence

    e = {
        "data": "real captures",
        "recall_fall": 0.8,
        "recall_fall_interval95": [0.5, 0.95],
        "n": 10,
        "per_capture": {"fall": {"captures": 3}},
    }
    assert _flat_evidence(e) == {
        "data": "real captures",
        "recall_fall": 0.8,
        "recall_fall_low95": 0.5,
        "recall_fall_high95": 0.95,
        "n": 10,
    }
