"""The drop folder, the request drop sensor, the `dac_request` asset and the CLI."""

import json
import os

import dagster as dg
import pytest
import yaml

from defs.common import dac_partitions
from defs.discovery import dac_request, dac_request_drop_sensor
from iv_pipelines.intake import process_drop_folder


def _drop(storage, name, text, age_s=0):
    d = storage.drop_dir()
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_text(text)
    if age_s:
        t = p.stat().st_mtime - age_s
        os.utime(p, (t, t))
    return p


def test_drop_folder_accepts_valid_rejects_bad_loses_nothing(storage, sample_request_text):
    good = _drop(storage, "acme.yaml", sample_request_text, age_s=3)
    _drop(storage, "broken.json", '{"client_id": "x"', age_s=2)
    _drop(storage, "notes.txt", "hello", age_s=1)
    bad_req = yaml.safe_load(sample_request_text) | {"dac_id": "other", "target": "moon"}
    _drop(storage, "bad.json", json.dumps(bad_req))
    _drop(storage, ".hidden.json", "{}")  # in-progress copies are left alone
    originals = {p.name: p.read_bytes() for p in storage.drop_dir().iterdir() if p.is_file()}

    out = process_drop_folder(storage.drop_dir(), storage.requests())

    assert [a.request.dac_id for a in out.accepted] == ["fall-detection-acme"]
    assert sorted(r.moved_to.name for r in out.rejected) == ["bad.json", "broken.json", "notes.txt"]
    rejected = storage.drop_dir() / "rejected"
    assert "target" in (rejected / "bad.json.error.txt").read_text()
    assert "not valid JSON/YAML" in (rejected / "broken.json.error.txt").read_text()
    assert "extension '.txt'" in (rejected / "notes.txt.error.txt").read_text()
    # nothing lost: every original byte string still exists somewhere under drop/
    for name, data in originals.items():
        if name.startswith("."):
            assert (storage.drop_dir() / name).read_bytes() == data
            continue
        found = [p for p in storage.drop_dir().rglob(name) if p.read_bytes() == data]
        assert found, f"{name} was lost"
    assert not good.exists()
    assert storage.requests().list_ids() == ["fall-detection-acme"]


def test_drop_folder_work_is_bounded(storage, sample_request_text):
    base = yaml.safe_load(sample_request_text)
    for i in range(5):
        _drop(storage, f"r{i}.json", json.dumps(base | {"dac_id": f"dac-{i}"}), age_s=10 - i)
    out = process_drop_folder(storage.drop_dir(), storage.requests(), max_files=2)
    assert len(out.accepted) == 2 and out.remaining == 3
    assert [a.request.dac_id for a in out.accepted] == ["dac-0", "dac-1"]  # oldest first


def test_conflicting_resubmission_is_rejected_not_overwritten(storage, sample_request_text):
    _drop(storage, "a.yaml", sample_request_text)
    process_drop_folder(storage.drop_dir(), storage.requests())
    stored = storage.requests().path_for("fall-detection-acme").read_bytes()
    changed = sample_request_text.replace("rare.", "very rare.")
    _drop(storage, "a.yaml", changed)
    out = process_drop_folder(storage.drop_dir(), storage.requests())
    assert len(out.rejected) == 1 and "already registered" in out.rejected[0].message
    assert storage.requests().path_for("fall-detection-acme").read_bytes() == stored


def test_sensor_adds_partitions_requests_runs_and_advances_cursor(storage, sample_request_text):
    instance = dg.DagsterInstance.ephemeral()
    _drop(storage, "acme.yaml", sample_request_text, age_s=1)
    _drop(storage, "junk.json", "[1, 2")
    ctx = dg.build_sensor_context(instance=instance, resources={"storage": storage})
    result = dac_request_drop_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    assert [r.partition_key for r in result.run_requests] == ["fall-detection-acme"]
    assert result.run_requests[0].run_key.startswith("fall-detection-acme:")
    assert result.dynamic_partitions_requests[0].partition_keys == ["fall-detection-acme"]
    assert json.loads(result.cursor) == {"accepted": 1, "rejected": 1}

    # an empty folder skips and keeps the cursor
    ctx2 = dg.build_sensor_context(instance=instance, resources={"storage": storage}, cursor=result.cursor)
    again = dac_request_drop_sensor(ctx2)
    assert isinstance(again, dg.SkipReason)


def test_sensor_evaluate_tick_with_instance(storage, sample_request_text):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("dac", ["fall-detection-acme"])
    _drop(storage, "acme.yaml", sample_request_text)
    from iv_app.definitions import defs

    ctx = dg.build_sensor_context(
        instance=instance, resources={"storage": storage}, cursor=None, definitions=defs
    )
    # evaluate_tick resolves dynamic partitions outside the sensor body: give it the instance
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        data = dac_request_drop_sensor.evaluate_tick(ctx)
    assert len(data.run_requests) == 1
    # partition already known: no duplicate add request
    assert not data.dynamic_partitions_requests
    assert json.loads(data.cursor)["accepted"] == 1


def test_dac_request_asset_materializes_in_process(storage, sample_request_text):
    from iv_pipelines.request import parse_request_text

    storage.requests().put(parse_request_text(sample_request_text))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(dac_partitions.name, ["fall-detection-acme"])
    result = dg.materialize(
        [dac_request], partition_key="fall-detection-acme", resources={"storage": storage}, instance=instance
    )
    assert result.success
    req = result.output_for_node("dac_request")
    assert req.client_id == "acme-healthcare"
    md = result.asset_materializations_for_node("dac_request")[0].metadata
    stored = storage.root / "dacs" / "fall-detection-acme" / "request.json"
    assert md["request_path"].value == str(stored)
    assert json.loads(stored.read_text())["dac_id"] == "fall-detection-acme"
    assert md["request_digest"].value == req.digest()


def test_dac_request_unknown_partition_fails_clearly(storage):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(dac_partitions.name, ["ghost"])
    with pytest.raises(dg.Failure, match="no request stored for DAC 'ghost'"):
        dg.materialize(
            [dac_request], partition_key="ghost", resources={"storage": storage}, instance=instance
        )


def test_cli_request_add(tmp_path, sample_request_text, monkeypatch):
    from click.testing import CliRunner

    from iv_app.cli import main

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("IV_STORAGE_ROOT", str(tmp_path / "iv"))
    req = tmp_path / "req.yaml"
    req.write_text(sample_request_text)
    runner = CliRunner()
    res = runner.invoke(main, ["request", "add", str(req)])
    assert res.exit_code == 0, res.output
    assert "added: dac partition 'fall-detection-acme'" in res.output
    res2 = runner.invoke(main, ["request", "add", str(req)])
    assert "already registered" in res2.output
    instance = dg.DagsterInstance.from_config(str(home))
    assert instance.get_dynamic_partitions("dac") == ["fall-detection-acme"]

    bad = tmp_path / "bad.yaml"
    bad.write_text("client_id: acme\n")
    res3 = runner.invoke(main, ["request", "add", str(bad)])
    assert res3.exit_code == 2
    assert "domain: field required" in res3.output


def test_intake_warnings_reach_the_sensor_run_and_the_cli(
    storage, sample_request_text, tmp_path, monkeypatch
):
    """A declared-empty calibration capture with someone moving in it is accepted, and said so:
    the drop sensor tags the run (`iv/intake_warnings`) and logs each warning, and
    `iv request add` prints them on stderr."""
    from click.testing import CliRunner
    from conftest import empty_room_opened_by_walking

    from iv_app.cli import main
    from iv_pipelines.sensing.formats import write_esp_csi_lines

    (csi, t), _ = empty_room_opened_by_walking()
    lines = "\n".join(write_esp_csi_lines(csi, t)) + "\n"
    doc = yaml.safe_load(sample_request_text) | {
        "calibration": [{"activity": "empty", "path": "captures/empty.csv", "format": "esp-csi"}]
    }
    (storage.drop_dir() / "captures").mkdir(parents=True)
    (storage.drop_dir() / "captures" / "empty.csv").write_text(lines)
    _drop(storage, "acme.yaml", yaml.safe_dump(doc))
    instance = dg.DagsterInstance.ephemeral()
    result = dac_request_drop_sensor(
        dg.build_sensor_context(instance=instance, resources={"storage": storage})
    )
    assert result.run_requests[0].tags["iv/intake_warnings"] == "1"

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("IV_STORAGE_ROOT", str(tmp_path / "cli-iv"))
    (tmp_path / "captures").mkdir()
    (tmp_path / "captures" / "empty.csv").write_text(lines)
    req = tmp_path / "req.yaml"
    req.write_text(yaml.safe_dump(doc))
    res = CliRunner().invoke(main, ["request", "add", str(req)])
    assert res.exit_code == 0, res.output
    assert "warning: calibration[0] (empty.csv) (declared empty): 0-" in res.output
