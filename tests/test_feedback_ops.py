"""dac_feedback (issue #18, item 4) and the two sensors that act on it (item 5): drift of the
logged production windows against the DAC's reference, accuracy on confirmed feedback with its
interval, the ACE update; the sensors fire, do not fire, and advance their cursor."""

import json

import dagster as dg
import numpy as np
import pytest

from iv_pipelines.runtime.inference_log import InferenceLog
from iv_pipelines.sensing.drift import save_reference
from iv_pipelines.storage import StorageLayout

CLASSES = ["empty", "walk", "sit", "fall"]
F2 = 8  # summary size (2 x features) of these synthetic windows


def _dac(layout: StorageLayout, dac: str, shift: float, labels: list[tuple[str, str]], seed: int):
    """A deployed DAC: its saved request, drift reference (N(0,1) summaries), and an inference
    log of 60 windows whose summaries are N(shift, 1); `labels`: (predicted, true) feedback."""
    rng = np.random.default_rng(seed)
    _request(layout, dac)
    save_reference(
        layout.drift_reference_file(dac),
        rng.normal(size=(200, F2)),
        {"empty": 50, "walk": 50, "sit": 50, "fall": 50},
    )
    log = InferenceLog(layout.inference_log_dir(dac), CLASSES, sample=1.0, seed=seed)
    ids = []
    for i in range(60):
        x = rng.normal(loc=shift, size=(10, F2 // 2))  # (T, F): summarised to 2F = 8
        ids.append(log.record(f"esp-{i % 2}", CLASSES[i % 4], [0.25] * 4, features=x))
    # reference summaries must be comparable: summarise() of N(shift,1) windows is (mean, std)
    for wid, (pred, true) in zip(ids, labels, strict=False):
        rec = log.find(wid)
        assert rec
        log._write_feedback([log._checked(wid, true, "test", None) | {"predicted": pred}])


def _request(layout: StorageLayout, dac: str) -> None:
    """The sample request (min_accuracy 0.95), saved for `dac` as its lifecycle would."""
    from iv_pipelines.request import parse_request_text
    from tests.conftest import plain_sample_request_text

    req = parse_request_text(plain_sample_request_text()).model_copy(update={"dac_id": dac})
    layout.dac_dir(dac)
    layout.dac_request_file(dac).write_text(req.model_dump_json())


@pytest.fixture
def env(tmp_path):
    from defs.common import dac_partitions
    from resources.deploy import DeployerResource
    from resources.discovery import AceMemoryResource
    from resources.storage import FactoryStorage

    layout = StorageLayout(tmp_path / "iv")
    instance = dg.DagsterInstance.ephemeral()
    resources = {
        "storage": FactoryStorage(root_dir=str(layout.root)),
        "ace": AceMemoryResource(url=f"sqlite:///{tmp_path / 'ace.sqlite'}"),
        "deployer": DeployerResource(),
    }

    def run(dac):
        from defs.operations.feedback import dac_feedback

        if not instance.has_dynamic_partition(dac_partitions.name, dac):
            instance.add_dynamic_partitions(dac_partitions.name, [dac])
        return dg.materialize([dac_feedback], partition_key=dac, resources=resources, instance=instance)

    return layout, instance, run, resources


def _summary_reference(layout, dac, rng):
    """Replace the reference by summaries of N(0,1) windows made exactly like production's."""
    from iv_pipelines.sensing.drift import summarise

    save_reference(
        layout.drift_reference_file(dac),
        summarise(rng.normal(size=(200, 10, F2 // 2))),
        {"empty": 50, "walk": 50, "sit": 50, "fall": 50},
    )


def test_drift_and_feedback_are_measured_and_the_sensors_act_on_them(env):
    from defs.operations.feedback import dac_drift_sensor, feedback_accuracy_sensor
    from tests.conftest import materialized

    layout, instance, run, resources = env
    rng = np.random.default_rng(0)
    # "steady": production like its reference, feedback mostly right (19 of 20)
    _dac(layout, "steady", 0.0, [("walk", "walk")] * 19 + [("fall", "not_fall")], seed=1)
    _summary_reference(layout, "steady", rng)
    # "moved": production shifted by 1 sd, feedback mostly wrong (8 of 24 right)
    _dac(layout, "moved", 1.0, [("walk", "walk")] * 8 + [("fall", "walk")] * 16, seed=2)
    _summary_reference(layout, "moved", rng)

    steady = materialized(run("steady"))
    assert steady["drifted"] is False and steady["drift_p_value"] > 0.01, steady
    assert steady["feedback_n"] == 20 and steady["feedback_accuracy"] == 0.95
    assert steady["feedback_below_constraint"] is False
    moved = materialized(run("moved"))
    assert moved["drifted"] is True and moved["drift_p_value"] < 0.01, moved
    assert moved["feedback_n"] == 24 and moved["feedback_accuracy"] == pytest.approx(8 / 24, abs=1e-4)
    lo, hi = moved["feedback_ci95"]
    assert lo < 8 / 24 < hi < 0.95 and moved["feedback_below_constraint"] is True
    assert moved["fall_alerts"] == "0 of 16 confirmed"
    report = json.loads((layout.dac_dir("moved") / "feedback_report.json").read_text())
    assert report["drift"]["per_device"]["esp-0"]["n_production"] == 30
    assert any("Caregivers confirmed only 0 of 16" in b for b in report["playbook"])
    bullets = [b.text for b in resources["ace"].get().bullets("wifi-sensing")]
    assert any("drifted" in b for b in bullets)  # the ACE playbook learned it

    ctx = dg.build_sensor_context(instance=instance)
    reqs = dac_drift_sensor(ctx)
    assert [(r.partition_key, r.tags["iv/trigger"]) for r in reqs] == [("moved", "drift")]
    assert "MMD p=" in reqs[0].tags["iv/reason"]
    again = dac_drift_sensor(dg.build_sensor_context(instance=instance, cursor=ctx.cursor))
    assert isinstance(again, dg.SkipReason) and "no new" in again.skip_message  # the cursor moved on
    ctx2 = dg.build_sensor_context(instance=instance)
    reqs = feedback_accuracy_sensor(ctx2)
    assert [(r.partition_key, r.tags["iv/trigger"]) for r in reqs] == [("moved", "feedback_accuracy")]
    assert "on 24 confirmed labels" in reqs[0].tags["iv/reason"]

    # "moved" reported again while its evolution run is recent: no second run within 24 h
    instance.add_run(
        dg.DagsterRun(
            job_name="dac_lifecycle_job", tags={"dagster/partition": "moved", "iv/trigger": "drift"}
        )
    )
    run("moved")
    cooled = dac_drift_sensor(dg.build_sensor_context(instance=instance, cursor=ctx.cursor))
    assert isinstance(cooled, dg.SkipReason) and "1 drifted but had an evolution run" in cooled.skip_message
    ctx = dg.build_sensor_context(instance=instance, cursor=ctx.cursor)
    dac_drift_sensor(ctx)  # (advances the cursor past that report)
    ctx2 = dg.build_sensor_context(instance=instance, cursor=ctx.cursor)
    # a new report for "steady" alone: neither sensor fires
    run("steady")
    skip = dac_drift_sensor(dg.build_sensor_context(instance=instance, cursor=ctx.cursor))
    assert isinstance(skip, dg.SkipReason) and "no drift" in skip.skip_message
    skip = feedback_accuracy_sensor(dg.build_sensor_context(instance=instance, cursor=ctx2.cursor))
    assert isinstance(skip, dg.SkipReason) and "within constraints" in skip.skip_message


def test_too_few_labels_or_windows_do_not_count(env):
    from tests.conftest import materialized

    layout, _, run, _ = env
    _dac(layout, "young", 0.0, [("walk", "fall")] * 5, seed=3)
    # only 5 labels, all wrong: the interval is wide; and few windows: drift waits
    md = materialized(run("young"))
    assert md["feedback_n"] == 5 and md["feedback_accuracy"] == 0.0
    lo, hi = md["feedback_ci95"]
    assert hi < 0.95  # below the constraint already, but ...
    from defs.operations.feedback import MIN_FEEDBACK

    assert MIN_FEEDBACK > 5  # ... the sensor needs MIN_FEEDBACK labels before it acts


def test_a_dac_without_a_log_is_refused_clearly(env):
    layout, _, run, _ = env
    _request(layout, "nolog")
    with pytest.raises(dg.Failure, match="no inference log .* deploy it and send it CSI"):
        run("nolog")


def test_labelled_production_windows_become_real_captures_and_gate_an_evolved_version(
    small_package, tmp_path
):
    """Item 5: windows kept with raw CSI and labelled by people become real captures (the
    newest 30 % held out), and a candidate is compared with the deployed version on them."""
    from iv_pipelines.ops.feedback import feedback_captures, versus_deployed
    from iv_pipelines.runtime.predictor import Predictor
    from iv_pipelines.sensing.formats import centred_to_entries
    from iv_pipelines.sensing.twin import Room, simulate_episode

    _root, _key, pkg, _ = small_package
    layout = StorageLayout(tmp_path / "iv")
    layout.write_current_package(pkg.dac_id, {"version": pkg.version, "directory": str(pkg.directory)})
    log = InferenceLog(layout.inference_log_dir(pkg.dac_id), CLASSES, retention="raw", sample=1.0)
    room = Room.random(np.random.default_rng(4))
    t_label = 1000.0
    for i, act in enumerate(["walk", "empty", "fall", "sit"] * 10):
        e = simulate_episode(room, act, seed=i, duration_s=2.2)
        keep = e.t_s - e.t_s[0] <= 2.0
        wid = log.record(
            "esp-1", "walk", [0.25] * 4, raw=centred_to_entries(e.csi[keep]), raw_t_s=e.t_s[keep]
        )
        log.add_feedback(wid, act, "nurse", now=t_label + i)
    extra = log.record("esp-1", "fall", [0, 0, 0, 1])  # kept without CSI (features retention)
    log.add_feedback(extra, "walk", "nurse", now=t_label + 100)
    log.add_feedback(log.record("esp-1", "fall", [0, 0, 0, 1], raw=None), "not_fall", "nurse")

    caps, note = feedback_captures(layout, pkg.dac_id, amplitude_only=False)
    assert "40 labelled production windows (28 train, 12 held out, the newest)" in note
    assert "1 labelled without kept CSI, 1 not_<class> labels unused" in note
    held = [c for c in caps if c.split == "eval"]
    assert sum(len(c.windows) for c in held) == 12 and all(c.origin == "real" and c.independent for c in caps)
    assert {c.activity for c in caps if c.split == "train"} == {"walk", "empty", "fall", "sit"}

    deployed = Predictor(pkg.directory)
    same = versus_deployed(layout, pkg.dac_id, deployed.proba, held, deployed.config.fall_threshold)
    assert same["n"] == 12 and same["accuracy_a"] == same["accuracy_b"] and same["verdict"] != "worse"
    assert same["deployed_version"] == pkg.version and "held-out production windows" in same["data"]

    def always_empty(x):
        p = np.zeros((len(x), 4))
        p[:, 0] = 1.0
        return p

    # a candidate that calls everything empty: worse wherever the deployed one is right on
    # enough windows, and never "better"
    bad = versus_deployed(layout, pkg.dac_id, always_empty, held, 0.5)
    assert bad["accuracy_a"] <= bad["accuracy_b"] and bad["verdict"] != "better"
    assert versus_deployed(layout, pkg.dac_id, always_empty, [], 0.5) is None
