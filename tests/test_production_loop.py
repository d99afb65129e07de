"""The production loop end to end (issue #18, acceptance), in-process on embedded defaults:

1. the lifecycle deploys a DAC (its request asks the capsule to keep raw windows in its
   inference log);
2. a device with impairments the twin never drew streams SIMULATED CSI of the client's room;
   people label those windows; `dac_feedback` measures drift and `dac_drift_sensor` asks for an
   evolution run;
3. the evolution run trains on the twin plus the labelled windows (the newest held out), is
   significantly better than the deployed version on them (paired test), and is canaried
   beside it; labelled traffic to both, then `dac_feedback` promotes it;
4. caregivers then reject the production version's decisions ("no, not a <decision>"):
   `feedback_accuracy_sensor` asks for another evolution run (it trains on the class labels
   only, passes its gates) whose canary people also reject: it is rolled back;
5. `iv dac history` shows every step.

Everything here is simulated (the twin stands in for the radio and the labels are the twin's
ground truth, or deliberately wrong ones in step 4)."""

import json

import dagster as dg
import numpy as np

from tests.conftest import lifecycle_home

DAC = "fall-detection-acme"
# impairments outside the twin's device prior: a noisy, glitchy receiver with unstable gain
DRIFTED = {
    "name": "drifted-receiver",
    "snr_db": 12.0,
    "gain_jitter": 0.25,
    "glitch_rate": 0.05,
    "agc_flip_rate": 0.1,
    "motion_noise": 0.3,
}


def _episodes(req, n: int, seed: int):
    from iv_pipelines.sensing.device import Device
    from iv_pipelines.sensing.pipeline import client_resident, client_room
    from iv_pipelines.sensing.twin import simulate_dataset

    eps = simulate_dataset(
        [client_room(req)],
        n,
        seed,
        duration_s=4.0,
        resident=client_resident(req),
        devices=[Device.from_dict(DRIFTED)],
    )
    # production traffic interleaves the activities (the twin returns them one after another,
    # which would hold out only the last activities as the "newest" labels)
    return [eps[i] for i in np.random.default_rng(seed).permutation(len(eps))]


def _serve(url: str, episodes, device: str) -> list[tuple[str, str, str]]:
    """Each episode to the capsule at `url` as frames; (window_id, truth, decision) per logged window."""
    from iv_pipelines.edge.forward import http_post
    from iv_pipelines.sensing.formats import centred_to_entries

    out = []
    for e in episodes:
        raw = centred_to_entries(np.asarray(e.csi))
        t = e.t_s - e.t_s[0]
        frames = [{"t_s": float(ti), "iq": row.tolist()} for ti, row in zip(t, raw, strict=True)]
        r = http_post(
            url + "/v1/predict", {"frames": frames, "layout": "fft", "device_id": device}, timeout_s=30
        )
        out += [(w["window_id"], e.activity, w["label"]) for w in r["windows"] if w["window_id"]]
    return out


def _label(url: str, served, wrong: bool = False) -> None:
    """The truth for each window; `wrong`: "no, not <the decision>" instead, whatever it was
    (a caregiver rejecting every decision; such labels name no class, so nothing trains on them)."""
    from iv_pipelines.edge.forward import http_post

    for wid, truth, decided in served:
        label = f"not_{decided}" if wrong else truth
        http_post(url + "/v1/feedback", {"window_id": wid, "label": label, "source": "test"})


def test_drift_evolution_canary_promotion_and_rollback(default_base_model, calibrated, tmp_path, monkeypatch):
    import iv_app.definitions as code
    from defs.operations.feedback import dac_drift_sensor, dac_feedback, feedback_accuracy_sensor
    from iv_pipelines.deploy.canary import CanaryController, DeploymentHistory
    from iv_pipelines.deploy.targets import LocalDeployer
    from resources.selection import resources_for
    from tests.conftest import materialized

    home = tmp_path / "home"
    from iv_pipelines.request import InferenceLogSpec

    # the client keeps raw windows (labelled ones can retrain the DAC), every one of them
    log = InferenceLogSpec(retention="raw", sample=1.0)
    layout, req = lifecycle_home(home, default_base_model, calibrated, inference_log=log)
    for k, v in {"DAGSTER_HOME": str(home), "IV_STORAGE_ROOT": str(layout.root)}.items():
        monkeypatch.setenv(k, v)
    res = resources_for("local")
    defs = dg.Definitions(
        assets=code.defs.assets, asset_checks=code.defs.asset_checks, jobs=code.defs.jobs, resources=res
    )
    job = defs.resolve_job_def("dac_lifecycle_job")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("dac", [DAC])
    deployer = LocalDeployer(layout.deployments_dir())
    canary = CanaryController(layout, deployer)
    hist = DeploymentHistory(layout, DAC)

    def lifecycle(tags=None):
        r = job.execute_in_process(instance=instance, partition_key=DAC, tags=tags, raise_on_error=False)
        failed = [e.step_key for e in r.all_events if e.is_step_failure]
        checks = [(c.check_name, c.passed, c.metadata.get("why")) for c in r.get_asset_check_evaluations()]
        ev = layout.adapter_dir(DAC) / "evaluation.json"
        versus = json.loads(ev.read_text()).get("versus_deployed") if ev.is_file() else None
        assert r.success, (failed, [c for c in checks if not c[1]], (versus or {}).get("sentence"))
        return r

    def feedback():
        return materialized(
            dg.materialize([dac_feedback], partition_key=DAC, resources=res, instance=instance),
            "dac_feedback",
        )

    try:
        # 1. deployed
        lifecycle()
        v1 = layout.deployment(DAC)["version"]
        url1 = layout.deployment(DAC)["url"]
        assert hist.aliases()["production"] == v1

        # 2. the drifted device: 48 episodes, 3 windows each, labelled by "people"
        served = _serve(url1, _episodes(req, 12, seed=7), "esp-drifted")
        assert len(served) >= 100
        _label(url1, served)
        md = feedback()
        assert md["drifted"] is True and md["drift_p_value"] < 0.01, md
        assert md["production_devices"]["esp-drifted"] == len(served)  # (+ the deployment's smoke test)
        [run] = dac_drift_sensor(dg.build_sensor_context(instance=instance))
        assert run.partition_key == DAC and run.tags["iv/trigger"] == "drift"

        # 3. the evolution run: trained on the labelled windows, canaried
        evo = lifecycle(tags=run.tags)
        ev = materialized(evo, "lora_adapter")
        adapter_eval = json.loads((layout.adapter_dir(DAC) / "evaluation.json").read_text())
        assert "labelled production windows" in adapter_eval["production_feedback"]
        assert adapter_eval["versus_deployed"]["verdict"] == "better", adapter_eval["versus_deployed"]
        assert adapter_eval["evidence"]["validated_on"] == "client_device"  # the held-out labels
        assert ev  # materialized
        st = canary.state(DAC)
        assert st is not None and st["version"] != v1
        assert hist.aliases() == {"production": v1, "candidate": st["version"], "previous": None}
        assert layout.deployment(DAC)["url"] == url1  # production untouched while the canary runs
        # labelled traffic to both versions (the forwarder's router would split it 90/10)
        fresh = _episodes(req, 20, seed=11)
        _label(url1, _serve(url1, fresh, "esp-drifted"))
        _label(st["url"], _serve(st["url"], fresh, "esp-drifted"))
        md = feedback()
        assert md["canary"] == "promote", md["canary_reason"]
        a = hist.aliases()
        assert a == {"production": st["version"], "candidate": None, "previous": v1}
        v2 = st["version"]

        # 4. caregivers reject production's decisions: low feedback accuracy -> evolution ->
        # a canary people also say is wrong -> rolled back
        url2 = layout.deployment(DAC)["url"]
        _label(url2, _serve(url2, _episodes(req, 20, seed=13), "esp-drifted"), wrong=True)
        md = feedback()
        assert md["feedback_below_constraint"] is True, md
        [run] = feedback_accuracy_sensor(dg.build_sensor_context(instance=instance))
        assert run.tags["iv/trigger"] == "feedback_accuracy"
        lifecycle(tags=run.tags)
        st3 = canary.state(DAC)
        assert st3 is not None and st3["version"] not in (v1, v2)
        again = _episodes(req, 10, seed=17)
        _label(url2, _serve(url2, again, "esp-drifted"))
        _label(st3["url"], _serve(st3["url"], again, "esp-drifted"), wrong=True)
        md = feedback()
        assert md["canary"] == "rollback", md["canary_reason"]
        assert hist.aliases() == {"production": v2, "candidate": None, "previous": v1}

        # 5. the history, as `iv dac history` prints it
        from click.testing import CliRunner

        from iv_app.cli import main

        out = CliRunner().invoke(main, ["dac", "history", DAC]).output
        events = [ln.split()[2] for ln in out.splitlines() if ln[:2] == "20"]
        assert events == ["deployed", "canary_started", "promoted", "canary_started", "rolled_back"], out
    finally:
        for instance_id in (DAC, f"{DAC}--candidate"):
            deployer.stop(instance_id)
