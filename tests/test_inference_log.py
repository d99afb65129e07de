"""The capsule's inference log and feedback (issue #18, items 1-2): sampled and bounded,
rotated by size, kept where the deployment says; feedback only for a logged window, with a
valid label; hostile bodies refused with 4xx; input statistics in /metrics."""

import json
import time

import numpy as np
import pytest

from iv_pipelines.runtime.inference_log import FeedbackError, InferenceLog, UnknownWindow

CLASSES = ["empty", "walk", "sit", "fall"]


def test_sampling_keeps_every_fall_and_a_share_of_the_rest(tmp_path):
    log = InferenceLog(tmp_path, CLASSES, sample=0.2, seed=1)
    ids = [log.record("esp-1", "walk", [0.1, 0.7, 0.1, 0.1]) for _ in range(1000)]
    falls = [log.record("esp-1", "fall", [0.1, 0.1, 0.1, 0.7]) for _ in range(50)]
    kept = sum(i is not None for i in ids)
    assert 150 <= kept <= 250  # Binomial(1000, 0.2): mean 200, sd 12.6
    assert all(falls) and log.recorded == kept + 50 and log.skipped == 1000 - kept
    recs = list(log.records())
    assert len(recs) == kept + 50 and {r["device_id"] for r in recs} == {"esp-1"}


def test_retention_decides_what_a_record_holds(tmp_path):
    x = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32)
    raw = np.arange(128 * 3, dtype=np.int64).reshape(3, 128) % 100
    for retention, keys in (
        ("none", set()),
        ("features", {"features"}),
        ("raw", {"features", "raw_int8"}),
    ):
        log = InferenceLog(tmp_path / retention, CLASSES, retention=retention, sample=1.0)
        wid = log.record("esp", "walk", [0, 1, 0, 0], features=x, raw=raw)
        rec = log.find(wid)
        assert {"features", "raw_int8"} & set(rec) == keys, retention
        if "features" in rec:  # mean and std per feature
            assert np.allclose(rec["features"][:6], x.mean(0), atol=1e-3)
            assert np.allclose(rec["features"][6:], x.std(0), atol=1e-3)
    with pytest.raises(ValueError, match="retention"):
        InferenceLog(tmp_path / "bad", CLASSES, retention="everything")


def test_the_log_is_bounded_and_rotated_by_size(tmp_path):
    log = InferenceLog(tmp_path, CLASSES, sample=1.0, file_bytes=4096, max_bytes=16384)
    x = np.ones((10, 8), np.float32)
    first = log.record("esp", "walk", [0, 1, 0, 0], features=x)
    last = None
    for _ in range(2000):
        last = log.record("esp", "walk", [0, 1, 0, 0], features=x)
    files = sorted(tmp_path.glob("log-*.jsonl"))
    assert 3 <= len(files) <= 5
    assert sum(f.stat().st_size for f in files) <= 16384 + 4096
    assert all(f.stat().st_size <= 4096 for f in files)
    assert log.find(first) is None and log.find(last) is not None  # the oldest went first
    with pytest.raises(UnknownWindow, match="rotated"):
        log.add_feedback(first, "walk")


def test_feedback_needs_a_logged_window_and_a_class(tmp_path):
    log = InferenceLog(tmp_path, CLASSES, sample=1.0)
    wid = log.record("esp-2", "fall", [0.1, 0.1, 0.1, 0.7])
    rec = log.add_feedback(wid, "walk", "caregiver", now=100.0)
    assert rec == {
        "window_id": wid,
        "label": "walk",
        "predicted": "fall",
        "device_id": "esp-2",
        "source": "caregiver",
        "at": 100.0,
    }
    for bad, err in (
        ((wid, "dance"), FeedbackError),
        ((wid, "walk", "x" * 41), FeedbackError),
        ((wid, "walk", "a;b"), FeedbackError),
        (("w-0000000000000000", "walk"), UnknownWindow),
        (("../../etc/passwd", "walk"), UnknownWindow),
    ):
        with pytest.raises(err):
            log.add_feedback(*bad)
    log.add_feedback(wid, "fall", "caregiver")  # changed their mind: the newest label counts
    assert [(f["window_id"], f["label"]) for f in log.feedback()] == [(wid, "fall")]


@pytest.fixture(scope="module")
def capsule(small_package, tmp_path_factory):
    import os

    from fastapi.testclient import TestClient

    from iv_pipelines.runtime.app import create_app

    _root, _key, pkg, _ = small_package
    log_dir = tmp_path_factory.mktemp("inference")
    old = dict(os.environ)
    os.environ |= {"IV_INFERENCE_LOG_DIR": str(log_dir), "IV_INFERENCE_LOG_SAMPLE": "1.0"}
    try:
        with TestClient(create_app(pkg.directory)) as c:
            for _ in range(200):
                if c.get("/readyz").status_code == 200:
                    break
                time.sleep(0.05)
            yield c, log_dir
    finally:
        os.environ.clear()
        os.environ.update(old)


def _lines(activity="walk", seconds=3.0):
    from iv_pipelines.sensing.formats import write_esp_csi_lines
    from iv_pipelines.sensing.twin import Room, simulate_episode

    e = simulate_episode(Room.random(np.random.default_rng(5)), activity, seed=3, duration_s=seconds)
    return write_esp_csi_lines(e.csi, e.t_s)


def test_the_capsule_logs_windows_and_takes_feedback_on_them(capsule):
    c, log_dir = capsule
    r = c.post("/v1/predict", json={"lines": _lines(), "device_id": "esp-kitchen"})
    assert r.status_code == 200, r.text
    wins = r.json()["windows"]
    assert all(w["window_id"] and w["window_id"].startswith("w-") for w in wins)
    recs = [json.loads(x) for f in sorted(log_dir.glob("log-*.jsonl")) for x in f.read_text().splitlines()]
    assert {w["window_id"] for w in wins} <= {x["window_id"] for x in recs}
    mine = [x for x in recs if x["window_id"] == wins[0]["window_id"]][0]
    assert mine["device_id"] == "esp-kitchen" and mine["label"] == wins[0]["label"] and mine["features"]

    r = c.post(
        "/v1/feedback", json={"window_id": wins[0]["window_id"], "label": "fall", "source": "caregiver"}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "window_id": wins[0]["window_id"],
        "label": "fall",
        "predicted": wins[0]["label"],
        "stored": True,
    }
    stored = [json.loads(x) for x in (log_dir / "feedback.jsonl").read_text().splitlines()]
    assert stored[-1]["label"] == "fall" and stored[-1]["device_id"] == "esp-kitchen"
    metrics = c.get("/metrics").text
    assert f'capsule_feedback_total{{label="fall",predicted="{wins[0]["label"]}"}} 1.0' in metrics
    assert (
        "capsule_window_amplitude_cv_count" in metrics and "capsule_window_mean_amplitude_bucket" in metrics
    )
    assert "capsule_inference_log_windows_total" in metrics


@pytest.mark.parametrize(
    "body,status",
    [
        ({"window_id": "w-0123456789abcdef", "label": "walk"}, 404),  # never logged
        ({"window_id": "w-0123", "label": "walk"}, 422),
        ({"window_id": "../feedback.jsonl", "label": "walk"}, 422),
        ({"window_id": "w-0123456789abcdef", "label": "dance"}, 422),  # not a class
        ({"window_id": "w-0123456789abcdef", "label": "WALK"}, 422),
        ({"window_id": "w-0123456789abcdef", "label": "walk", "source": "<script>"}, 422),
        ({"window_id": "w-0123456789abcdef", "label": "walk", "admin": True}, 422),
        ({"label": "walk"}, 422),
        ("not json", 422),
    ],
)
def test_hostile_feedback_is_refused_and_stores_nothing(capsule, body, status):
    c, log_dir = capsule
    before = (log_dir / "feedback.jsonl").read_text() if (log_dir / "feedback.jsonl").exists() else ""
    r = c.post("/v1/feedback", json=body) if isinstance(body, dict) else c.post("/v1/feedback", content=body)
    assert r.status_code == status, r.text
    assert r.json()["detail"]
    after = (log_dir / "feedback.jsonl").read_text() if (log_dir / "feedback.jsonl").exists() else ""
    assert after == before


def test_a_bad_label_for_a_logged_window_names_the_classes(capsule):
    c, _ = capsule
    wid = c.post("/v1/predict", json={"lines": _lines()}).json()["windows"][0]["window_id"]
    r = c.post("/v1/feedback", json={"window_id": wid, "label": "dance"})
    assert r.status_code == 422 and "empty, walk, sit, fall" in r.json()["detail"][0]


def test_an_oversized_feedback_body_is_refused(capsule):
    c, _ = capsule
    r = c.post(
        "/v1/feedback", json={"window_id": "w-0123456789abcdef", "label": "walk", "source": "x" * 100_000}
    )
    assert r.status_code == 422


def test_device_ids_are_checked(capsule):
    c, _ = capsule
    r = c.post("/v1/predict", json={"lines": _lines(), "device_id": "bad id with spaces"})
    assert r.status_code == 422 and "device_id" in r.json()["detail"][0]


def test_iv_feedback_add_stores_all_rows_or_none(small_package, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from iv_app.cli import main
    from iv_pipelines.storage import StorageLayout

    _root, _key, pkg, _ = small_package
    layout = StorageLayout(tmp_path / "iv")  # a storage root of its own, pointing at the package
    layout.write_current_package(pkg.dac_id, {"version": pkg.version, "directory": str(pkg.directory)})
    log_dir = layout.inference_log_dir(pkg.dac_id)
    monkeypatch.setenv("IV_STORAGE_ROOT", str(layout.root))
    run = CliRunner().invoke
    log = InferenceLog(log_dir, CLASSES, sample=1.0)
    ids = [log.record("esp", "walk", [0, 1, 0, 0]) for _ in range(3)]
    good = tmp_path / "labels.csv"
    good.write_text(
        "window_id,label,source\n"
        + "".join(f"{w},{lab},nurse\n" for w, lab in zip(ids, ["walk", "fall", "sit"], strict=True))
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(f"window_id,label\n{ids[0]},walk\n{ids[1]},dance\n")
    r = run(main, ["feedback", "add", pkg.dac_id, str(bad)])
    assert (
        r.exit_code == 1 and "row 2" in r.output and "dance" in r.output and "nothing was stored" in r.output
    )
    assert not (log_dir / "feedback.jsonl").exists()
    jl = tmp_path / "labels.jsonl"
    jl.write_text('{"window_id": "x", "label": "walk"}\nnot json\n')
    r = run(main, ["feedback", "add", pkg.dac_id, str(jl)])
    assert r.exit_code == 1 and "labels.jsonl:2" in r.output
    r = run(main, ["feedback", "add", pkg.dac_id, str(good)])
    assert r.exit_code == 0, r.output
    assert "stored 3 labels" in r.output and "2 disagree" in r.output
    assert [f["label"] for f in InferenceLog(log_dir, CLASSES).feedback()] == ["walk", "fall", "sit"]
    r = run(main, ["feedback", "add", "no-such-dac", str(good)])
    assert r.exit_code == 1 and "no package" in r.output


def test_monitoring_files_query_what_the_capsule_exposes(capsule, tmp_path):
    """The Grafana panels and the scrape config (issue #18, item 7): parsed, and every series a
    panel queries is in a real capsule's /metrics after it served a prediction and a label."""
    import yaml

    from iv_pipelines.deploy.monitoring import PANELS, series_in, write_monitoring

    c, _ = capsule
    wid = c.post("/v1/predict", json={"lines": _lines()}).json()["windows"][0]["window_id"]
    c.post("/v1/feedback", json={"window_id": wid, "label": "walk"})
    exposed = {
        line.split("{")[0].split(" ")[0]
        for line in c.get("/metrics").text.splitlines()
        if not line.startswith("#")
    }
    prom, dash = write_monitoring(tmp_path, "fall-x", "1.2.0", "http://127.0.0.1:8123")
    cfg = yaml.safe_load(prom.read_text())
    [job] = cfg["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8123"] and job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["labels"] == {"dac_id": "fall-x", "version": "1.2.0"}
    board = json.loads(dash.read_text())
    assert len(board["panels"]) == len(PANELS) and board["templating"]["list"][0]["query"] == "fall-x"
    for panel in board["panels"]:
        expr = panel["targets"][0]["expr"]
        assert expr.count("(") == expr.count(")"), expr
        missing = series_in(expr) - exposed
        assert not missing, (panel["title"], missing)
    with pytest.raises(ValueError, match="http"):
        write_monitoring(tmp_path, "fall-x", "1.2.0", "not a url")
