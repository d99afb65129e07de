"""`iv dac evaluate`: labelled captures through a DAC package's own decision, offline — the
same windows and labels as its capsule's /v1/predict, counted per label and per capture; a
capture that calibrated the DAC is refused."""

import json
import shutil
import time

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import SAMPLE_REQUEST

from iv_app.cli import main


def _lines(activity: str, seed: int, seconds: float) -> str:
    from iv_pipelines.sensing.formats import write_esp_csi_lines
    from iv_pipelines.sensing.twin import Room, simulate_episode

    room = Room.random(np.random.default_rng(3), size=(5.0, 4.0, 2.6))
    ep = simulate_episode(room, activity, seed=seed, duration_s=seconds)
    return "\n".join(write_esp_csi_lines(ep.csi, ep.t_s)) + "\n"


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    d = tmp_path_factory.mktemp("captures")
    for i in range(3):
        (d / "fall").mkdir(exist_ok=True)
        (d / "fall" / f"f{i}.csv").write_text(_lines("fall", 40 + i, 1.4))
    (d / "walk").mkdir()
    (d / "walk" / "w0.csv").write_text(_lines("walk", 50, 5.0))
    return d


def _run(args, root):
    return CliRunner().invoke(main, ["dac", "evaluate", *args], env={"IV_STORAGE_ROOT": str(root)})


def test_evaluate_decides_as_the_capsule_does_and_counts_by_window_and_capture(
    small_package, captures, tmp_path
):
    from fastapi.testclient import TestClient

    from iv_pipelines.runtime.app import create_app

    _root, _key, pkg, _ = small_package
    out = tmp_path / "report.json"
    r = _run(
        [pkg.dac_id, str(captures), "--package", str(pkg.directory), "--json", str(out)], tmp_path / "iv"
    )
    assert r.exit_code == 0, r.output
    assert "no stored request" in r.output  # nothing to check the captures against here
    assert "fall: fall recall" in r.output and "of 3 captures" in r.output
    rep = json.loads(out.read_text())
    s = rep["summary"]
    assert s["captures"] == 4 and s["per_label"]["fall"]["windows"] == 3  # a 1.4 s fall: one window
    assert s["per_label"]["walk"]["windows"] == 4  # 5 s at a 1 s hop
    # the capsule answers the same for every window of every capture
    with TestClient(create_app(pkg.directory)) as c:
        for _ in range(400):  # the model loads in a background thread
            if c.get("/readyz").status_code == 200:
                break
            time.sleep(0.05)
        for cap in rep["captures"]:
            lines = open(cap["path"]).read().splitlines()
            resp = c.post("/v1/predict", json={"lines": lines, "hop_s": 1.0})
            assert resp.status_code == 200, resp.text
            assert [w["label"] for w in resp.json()["windows"]] == cap["decisions"]
            assert [w["start_s"] for w in resp.json()["windows"]] == cap["starts_s"]
    k = sum(c["decisions"].count("fall") for c in rep["captures"] if c["label"] == "fall")
    assert s["fall_recall"] == pytest.approx(k / 3)
    lo, hi = s["fall_recall_interval95"]
    assert lo <= s["fall_recall"] <= hi


def test_a_capture_the_capsule_refuses_is_kept_and_counts_as_no_fall_called(
    small_package, captures, tmp_path
):
    """A 0.8 s fall clip and a 40 packets/s one: the capsule answers neither with a window, so
    the evaluation lists them with the reason and counts them as fall captures missed, instead
    of stopping or leaving them out (which would flatter the recall)."""
    from iv_pipelines.sensing.formats import write_esp_csi_lines
    from iv_pipelines.sensing.twin import Room, simulate_episode

    _root, _key, pkg, _ = small_package
    d = tmp_path / "caps"
    shutil.copytree(captures, d)
    ep = simulate_episode(
        Room.random(np.random.default_rng(3), size=(5.0, 4.0, 2.6)), "fall", seed=44, duration_s=3.0
    )
    keep = ep.t_s - ep.t_s[0] < 0.8
    (d / "fall" / "short.csv").write_text("\n".join(write_esp_csi_lines(ep.csi[keep], ep.t_s[keep])) + "\n")
    (d / "fall" / "slow.csv").write_text("\n".join(write_esp_csi_lines(ep.csi[::3], ep.t_s[::3])) + "\n")
    out = tmp_path / "report.json"
    r = _run([pkg.dac_id, str(d), "--package", str(pkg.directory), "--json", str(out)], tmp_path / "iv")
    assert r.exit_code == 0, r.output
    assert "refused: need at least 1.0 s" in r.output and "refused: packet rate" in r.output
    assert "of 5 captures" in r.output and "2 refused by the capsule" in r.output
    s = json.loads(out.read_text())["summary"]
    fall = s["per_label"]["fall"]
    assert s["refused_captures"] == 2 and fall["captures"] == 5 and fall["captures_refused"] == 2
    assert fall["windows"] == 3  # the three 1.4 s clips; the refused ones have none
    assert fall["captures_with_a_window_called_fall"] <= 3


def test_row_labels_of_an_amplitude_csv_label_its_windows(small_package, tmp_path):
    from iv_pipelines.runtime.evaluation import evaluate_capture
    from iv_pipelines.runtime.predictor import Predictor

    _root, _key, pkg, _ = small_package
    row = ",".join(["20"] * 64)
    rows = [f"{row},empty"] * 300 + [f"{row},walk"] * 200  # 3 s empty, then 2 s walking
    f = tmp_path / "labelled.csv"
    f.write_text("\n".join(rows) + "\n")
    res = evaluate_capture(Predictor(pkg.directory), f, None, "amplitude-csv", 100.0)
    # windows start at 0, 1, 2 and 3 s: the majority of their rows decides
    assert res.window_labels == ["empty", "empty", "walk", "walk"] and res.label == "mixed"


def test_calibration_captures_and_bad_input_are_refused_by_name(small_package, captures, tmp_path):
    from iv_pipelines.intake import RequestStore
    from iv_pipelines.request import parse_request_text

    _root, _key, pkg, _ = small_package
    root = tmp_path / "iv"
    req = parse_request_text(SAMPLE_REQUEST.read_text())
    RequestStore(root).put(req, base_dir=SAMPLE_REQUEST.parent)
    walk_cal = SAMPLE_REQUEST.parent / yaml.safe_load(SAMPLE_REQUEST.read_text())["calibration"][1]["path"]
    copy = tmp_path / "mine" / "walk.csv"
    copy.parent.mkdir()
    shutil.copyfile(walk_cal, copy)
    base = [pkg.dac_id, "--package", str(pkg.directory)]
    r = _run([*base, str(copy), "--label", "walk", "--rate-hz", "100"], root)
    assert r.exit_code != 0 and "the same capture as fall-detection-acme's calibration[1] (walk)" in r.output
    r = _run([*base, str(captures / "walk" / "w0.csv")], root)
    assert r.exit_code == 0 and "walk: called fall" in r.output, r.output
    unlabelled = tmp_path / "x.csv"
    unlabelled.write_text(_lines("walk", 60, 3.0))
    for args, needle in (
        ([str(unlabelled)], "no label"),
        ([str(tmp_path / "nope.csv")], "no such file or folder"),
        ([str(captures / "fall" / "f0.csv"), "--format", "amplitude-csv"], "give its packet rate"),
    ):
        r = _run([*base, *args], root)
        assert r.exit_code != 0 and needle in r.output, r.output
    r = _run(["another-dac", "--package", str(pkg.directory), str(unlabelled), "--label", "walk"], root)
    assert r.exit_code != 0 and "not of another-dac" in r.output


def test_record_leaves_the_summary_in_dagster_as_an_observation(small_package, captures, tmp_path):
    import dagster as dg

    _root, _key, pkg, _ = small_package
    home = tmp_path / "home"
    home.mkdir()
    r = CliRunner().invoke(
        main,
        ["dac", "evaluate", pkg.dac_id, str(captures / "fall"), "--package", str(pkg.directory), "--record"],
        env={"IV_STORAGE_ROOT": str(tmp_path / "iv"), "DAGSTER_HOME": str(home)},
    )
    assert r.exit_code == 0 and "recorded in Dagster" in r.output, r.output
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [rec] = instance.fetch_observations(dg.AssetKey("dac_deployment"), limit=5).records
    obs = rec.asset_observation
    assert obs.partition == pkg.dac_id
    md = {k: v.value for k, v in obs.metadata.items()}
    assert md["captures"] == 3 and md["fall_recall_low95"] <= md["fall_recall"] <= md["fall_recall_high95"]
    assert "caller" in md["evaluation"]
