"""Operations: the health check over deployed DACs, the healing job, and the two threshold
sensors (firing, not firing, cursor advance)."""

import json

import dagster as dg
import pytest

from iv_pipelines.energy.atlas import EnergyState
from tests.conftest import materialized


@pytest.fixture
def deployed(small_package, tmp_path):
    """The small package deployed locally under a storage root that has its request."""
    import shutil

    from iv_pipelines.deploy.targets import LocalDeployer
    from resources.deploy import DeployerResource, EnergyAtlasResource
    from resources.sensing import SensingResource
    from resources.storage import FactoryStorage

    root, _key, pkg, _ = small_package
    work = tmp_path / "iv"
    (work / "dacs" / pkg.dac_id).mkdir(parents=True)
    shutil.copyfile(root / "dacs" / pkg.dac_id / "request.json", work / "dacs" / pkg.dac_id / "request.json")
    dep = LocalDeployer(work / "deployments")
    dep.deploy(pkg.directory, pkg.dac_id, pkg.version)
    res = {
        "storage": FactoryStorage(root_dir=str(work)),
        "deployer": DeployerResource(),
        "sensing": SensingResource(),
        "atlas": EnergyAtlasResource(root_dir=str(tmp_path / "atlas")),
    }
    yield work, dep, pkg, res
    dep.stop(pkg.dac_id)


def test_health_check_rescores_flags_and_writes_telemetry(deployed):
    from defs.operations.health import dac_health

    work, _dep, pkg, res = deployed
    out = dg.materialize([dac_health], resources=res)
    md = materialized(out)
    assert md["dacs"] == 1 and md["issues"] == {pkg.dac_id: None}
    score = md["scores"][pkg.dac_id]
    assert 0 <= score <= 1 and md["thresholds"][pkg.dac_id] == 0.95  # the request's min_accuracy
    assert (pkg.dac_id in md["degraded"]) == (score < 0.95)  # the tiny test model scores low
    dg.materialize([dac_health], resources=res)
    lines = [json.loads(x) for x in (work / "telemetry" / "capsules.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and lines[0]["service"] == pkg.dac_id
    assert lines[1]["cpu_seconds"] > 0 and lines[1]["wall_seconds"] < lines[0]["wall_seconds"] + 60  # a delta
    # a stopped capsule is an issue in the health report, never "issue None, score None"
    _dep.stop(pkg.dac_id)
    md = materialized(dg.materialize([dac_health], resources=res))
    assert md["issues"] == {pkg.dac_id: "stopped"} and md["degraded"] == [pkg.dac_id]
    assert md["scores"] == {pkg.dac_id: None}


def test_healing_job_leaves_a_healthy_capsule_alone_and_restarts_a_dead_one(deployed):
    import os
    import signal
    import time

    from defs.operations.health import dac_healing_job

    _work, dep, pkg, res = deployed
    defs = dg.Definitions(jobs=[dac_healing_job], resources=res)
    cfg = {"ops": {"heal_dac": {"config": {"dac_id": pkg.dac_id, "reason": "test"}}}}
    r = defs.resolve_job_def("dac_healing_job").execute_in_process(run_config=cfg)
    assert r.output_for_node("heal_dac")["action"] is None
    st = dep.status(pkg.dac_id)
    os.kill(st["supervisor_pid"], signal.SIGKILL)
    os.kill(st["capsule_pid"], signal.SIGKILL)
    time.sleep(0.3)
    r = defs.resolve_job_def("dac_healing_job").execute_in_process(run_config=cfg)
    out = r.output_for_node("heal_dac")
    assert out["issue"] == "crashed" and out["action"]["strategy"] == "restart" and out["action"]["ok"]
    assert dep.status(pkg.dac_id)["ready"]


def _tick(sensor, ctx, instance):
    # evaluate_tick resolves dynamic partitions outside the sensor body: give it the instance
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        return sensor.evaluate_tick(ctx)


def test_score_below_threshold_sensor():
    from defs.operations.health import score_below_threshold_sensor
    from iv_app.definitions import defs

    repo = defs.get_repository_def()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("dac", ["a", "b", "c"])
        ctx = dg.build_sensor_context(instance=instance, repository_def=repo)
        assert _tick(score_below_threshold_sensor, ctx, instance).run_requests == []  # nothing yet

        def health(scores, thresholds):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    "dac_health",
                    metadata={
                        "scores": dg.MetadataValue.json(scores),
                        "thresholds": dg.MetadataValue.json(thresholds),
                    },
                )
            )

        health({"a": 0.97, "b": 0.80, "c": None}, {"a": 0.95, "b": 0.95, "c": 0.95})
        data = _tick(score_below_threshold_sensor, ctx, instance)
        assert [(r.partition_key, r.tags["iv/trigger"]) for r in data.run_requests] == [
            ("b", "score_below_threshold")
        ]
        ctx2 = dg.build_sensor_context(instance=instance, cursor=data.cursor, repository_def=repo)
        assert _tick(score_below_threshold_sensor, ctx2, instance).run_requests == []  # cursor advanced
        health({"a": 0.97}, {"a": 0.95})
        ctx3 = dg.build_sensor_context(instance=instance, cursor=data.cursor, repository_def=repo)
        tick = _tick(score_below_threshold_sensor, ctx3, instance)
        assert tick.run_requests == [] and "at or above" in (tick.skip_message or "")


def test_energy_variance_sensor_fires_once_per_anomaly(storage, tmp_path):
    from defs.operations.energy import energy_variance_sensor
    from resources.deploy import EnergyAtlasResource

    atlas = EnergyAtlasResource(root_dir=str(tmp_path / "atlas"))
    states = [
        EnergyState("dac:acme", 1000 * i, 10.0 + (i % 3) * 0.1, 0.0, 0.5, "lifecycle", f"r{i}")
        for i in range(30)
    ]
    with atlas.open(storage.root) as g:
        g.record(states)
    res = {"storage": storage, "atlas": atlas}
    with dg.instance_for_test() as instance:
        tick = energy_variance_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=res))
        assert tick.run_requests == []  # steady energy
        with atlas.open(storage.root) as g:
            g.record([EnergyState("dac:acme", 40_000, 90.0, 0.0, 0.5, "lifecycle", "spike")])
        tick = energy_variance_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=res))
        [req] = tick.run_requests
        assert req.run_config["ops"]["heal_dac"]["config"]["dac_id"] == "acme" and tick.cursor == "40000"
        again = energy_variance_sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, resources=res, cursor=tick.cursor)
        )
        assert again.run_requests == []


def test_security_audit_reviews_packages_and_dependencies(small_package, tmp_path):
    import shutil

    from defs.operations.reports import security_audit_report as security_audit
    from iv_pipelines.ops.audit import requirement_problems
    from resources.proof import ProofResource
    from resources.storage import FactoryStorage

    root, _key, pkg, _ = small_package
    work = tmp_path / "iv" / "packages" / pkg.dac_id
    shutil.copytree(pkg.directory, work / pkg.version)
    for f in (pkg.tarball, pkg.attestation):
        shutil.copyfile(f, work / f.name)
    (work / "current.json").write_text(
        json.dumps({"version": pkg.version, "directory": str(work / pkg.version)})
    )
    (work / pkg.version / "notes.txt").write_text('password = "hunter2hunter2"\n')  # planted
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copyfile(root.parent / "keys" / "lineage-ed25519.pem", keys / "lineage-ed25519.pem")
    res = {
        "storage": FactoryStorage(root_dir=str(tmp_path / "iv")),
        "proof": ProofResource(keys_dir=str(keys)),
    }
    out = dg.materialize([security_audit], resources=res)
    md = materialized(out)
    assert md["packages_reviewed"] == 1 and md["packages_failing"] == [f"{pkg.dac_id} {pkg.version}"]
    report = json.loads((tmp_path / "iv" / "operations" / "security_audit.json").read_text())
    findings = report["packages"][f"{pkg.dac_id} {pkg.version}"]
    assert any("notes.txt" in f for f in findings["findings"]) and any(
        "notes.txt" in p for p in findings["provenance_problems"]
    )
    assert (
        md["unpinned_requirements"] == []
        and md["not_exactly_pinned"] == []
        and md["distributions_checked"] > 100
    )
    assert requirement_problems(["dagster>=1.13", "numpy", "torch==2.13.0", "scipy>=1.11"]) == (
        ["numpy"],
        ["dagster>=1.13"],
    )


def test_dac_deployed_sensor_requests_routes_once_per_deployment():
    from defs.deployment import dac_deployed_sensor
    from iv_app.definitions import defs

    repo = defs.get_repository_def()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("dac", ["acme"])
        ctx = dg.build_sensor_context(instance=instance, repository_def=repo)
        assert _tick(dac_deployed_sensor, ctx, instance).run_requests == []
        instance.report_runless_asset_event(dg.AssetMaterialization("dac_deployment", partition="acme"))
        data = _tick(dac_deployed_sensor, ctx, instance)
        [req] = data.run_requests
        assert req.tags["iv/dac"] == "acme" and req.run_key.startswith("mesh:acme:")
        again = _tick(
            dac_deployed_sensor,
            dg.build_sensor_context(instance=instance, cursor=data.cursor, repository_def=repo),
            instance,
        )
        assert again.run_requests == []


def test_energy_trends_reports_rising_dacs(storage, tmp_path):
    import time

    from defs.operations.energy import energy_trends
    from resources.deploy import EnergyAtlasResource

    atlas = EnergyAtlasResource(root_dir=str(tmp_path / "atlas"))
    now = int(time.time() * 1000)
    h = 3_600_000
    with atlas.open(storage.root) as g:
        g.record(
            [
                EnergyState("dac:hot", now - 30 * h, 10.0, 0, 0.5, "energy_history", "d1"),
                EnergyState("dac:hot", now - 2 * h, 14.0, 0, 0.5, "energy_history", "d2"),
                EnergyState("dac:calm", now - 30 * h, 10.0, 0, 0.5, "energy_history", "d1"),
                EnergyState("dac:calm", now - 2 * h, 10.5, 0, 0.5, "energy_history", "d2"),
            ]
        )
    out = dg.materialize([energy_trends], resources={"storage": storage, "atlas": atlas})
    md = materialized(out)
    assert md["dacs_compared"] == 2 and md["rising_dacs"] == ["hot"]


def test_monthly_client_report_with_revenue_on_the_ledger(storage, tmp_path):
    import datetime as dt
    import hashlib

    from defs.operations.reports import client_report
    from iv_pipelines.ledger.revenue import read_attribution
    from iv_pipelines.ops.healing import HealingAction
    from resources.deploy import EnergyAtlasResource
    from resources.ledger import LedgerResource

    ledger = LedgerResource(state_dir=str(tmp_path / "ledger"))
    chain = ledger.get()
    t = int(dt.datetime(2026, 10, 10, tzinfo=dt.UTC).timestamp() * 1000)
    for dac, energy in (("acme-fall", 300.0), ("acme-presence", 100.0)):
        d = storage.root / "dacs" / dac
        (d / "lineage").mkdir(parents=True)
        (d / "adapter").mkdir()
        (d / "request.json").write_text(json.dumps({"client_id": "acme-healthcare", "dac_id": dac}))
        (d / "validated_hypothesis.json").write_text(json.dumps({"validation_score": 0.97}))
        (d / "adapter" / "evaluation.json").write_text(
            json.dumps({"evidence": {"validated_on": "simulation_only", "simulation": {"accuracy": 0.99}}})
        )
        reg = chain.register(dac, hashlib.sha256(dac.encode()).digest())
        (d / "lineage" / "registration.json").write_text(json.dumps(reg.to_json()))
        atlas = EnergyAtlasResource(root_dir=str(tmp_path / "atlas"))
        with atlas.open(storage.root) as g:
            g.record(
                [
                    EnergyState(f"dac:{dac}", t, energy, 0.1, 0.5, "energy_history", "2026-10-10"),
                    EnergyState(
                        f"dac:{dac}", t - 40 * 86_400_000, 999.0, 0.1, 0.5, "energy_history", "2026-08-31"
                    ),
                ]
            )
    with atlas.open(storage.root) as g:
        g.log_healing(HealingAction("acme-fall", "crashed", "restart", True, {}, None, None, t + 1000))
    res = {"storage": storage, "atlas": atlas, "ledger": ledger}
    cfg = {"ops": {"client_report": {"config": {"revenue_usd": {"acme-healthcare": "1000.00"}}}}}
    for _ in range(2):  # the second run reuses the month's ledger record: not written twice
        out = dg.materialize([client_report], partition_key="2026-10-01", resources=res, run_config=cfg)
    md = materialized(out)
    assert md["energy_J_by_client"] == {"acme-healthcare": 400.0}  # August's states left out
    page = (storage.root / "reports" / "2026-10" / "acme-healthcare.html").read_text()
    assert "acme-fall" in page and "acme-presence" in page and "400.0 J" in page
    assert "750.00" in page and "250.00" in page  # 1000 USD split 3:1 by energy
    assert "crashed → restart (healed)" in page and page.count("data:image/png;base64,") == 2
    tx = json.loads((storage.root / "reports" / "2026-10" / "acme-healthcare.revenue.json").read_text())[
        "tx_hash"
    ]
    assert sorted(read_attribution(chain, tx)["shares_cents"].values()) == [25000, 75000]


def test_base_model_update_promotes_only_a_better_candidate(storage):
    from defs.operations.base_model import base_model_update
    from iv_pipelines.sensing.model import save_model
    from iv_pipelines.sensing.pipeline import pretrain_base
    from resources.sensing import SensingResource
    from resources.training import GpuStepResource

    small = dict(n_rooms=8, per_activity=3, n_eval_rooms=3, eval_per_activity=3)
    weak = pretrain_base(epochs=1, seed=0, **small)  # the current model: one epoch
    cur = storage.layout.base_model_dir()
    save_model(weak.model, weak.cfg, cur)
    (cur / "evaluation.json").write_text(json.dumps({"heldout": weak.metrics}))
    storage.layout.adapter_dir("acme").mkdir(parents=True)
    (storage.layout.adapter_dir("acme") / "adapter_model.safetensors").write_bytes(b"x")
    # the candidate must be significantly better on the same held-out windows (paired test):
    # three times the homes, eight epochs, four held-out homes
    sensing = SensingResource(
        pretrain_rooms=24, pretrain_episodes_per_activity=4, pretrain_epochs=8, eval_rooms=4, sim_workers=1
    )
    cfg = {"ops": {"base_model_update": {"config": {"candidate_seed": 1}}}}
    out = dg.materialize(
        [base_model_update],
        resources={"sensing": sensing, "storage": storage, "gpu_steps": GpuStepResource()},
        run_config=cfg,
    )
    md = materialized(out)
    assert (
        md["candidate_accuracy"] > md["current_accuracy"]
        and md["promoted"]
        and md["dacs_to_retrain"] == ["acme"]
    )
    assert json.loads((cur / "evaluation.json").read_text())["seed"] == 1
    assert len(list((storage.root / "models" / "history").iterdir())) == 1
    # a one-epoch candidate against the promoted eight-epoch model: kept out
    sensing1 = SensingResource(
        pretrain_rooms=8, pretrain_episodes_per_activity=3, pretrain_epochs=1, eval_rooms=4, sim_workers=1
    )
    out = dg.materialize(
        [base_model_update],
        resources={"sensing": sensing1, "storage": storage, "gpu_steps": GpuStepResource()},
        run_config=cfg,
    )
    md2 = materialized(out)
    assert not md2["promoted"] and md2["dacs_to_retrain"] == []
    assert json.loads((cur / "evaluation.json").read_text())["seed"] == 1  # unchanged
    assert md["verdict"] == "better" and md2["verdict"] != "better" and "McNemar" in md2["why"]


def test_a_candidate_no_better_than_the_current_model_is_not_promoted(tmp_path):
    """The domain rule without Dagster: the same model on both sides is never 'better', and
    nothing under the storage root changes; with no current model there is nothing to judge."""
    import pytest

    from iv_pipelines.sensing.model import save_model
    from iv_pipelines.sensing.pipeline import pretrain_base
    from iv_pipelines.sensing.promotion import NoCurrentModel, judge, promote_base_model
    from iv_pipelines.storage import StorageLayout

    res = pretrain_base(n_rooms=4, per_activity=2, epochs=1, seed=0, n_eval_rooms=2, eval_per_activity=2)
    same = judge(res.model, res.model, res.heldout, seed=0)
    assert not same.promoted and same.accuracy.verdict == "non-inferior" and same.accuracy.diff == 0
    layout = StorageLayout(tmp_path)
    with pytest.raises(NoCurrentModel, match="materialize wifi_sensing_base_model"):
        promote_base_model(layout, res, seed=0)
    save_model(res.model, res.cfg, layout.base_model_dir())
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert not promote_base_model(layout, res, seed=0).promoted
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_base_model_promoted_sensor_reruns_listed_dacs():
    from defs.operations.base_model import base_model_promoted_sensor
    from iv_app.definitions import defs

    repo = defs.get_repository_def()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("dac", ["acme", "globex"])
        ctx = dg.build_sensor_context(instance=instance, repository_def=repo)
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "base_model_update",
                metadata={"promoted": False, "dacs_to_retrain": dg.MetadataValue.json([])},
            )
        )
        kept = _tick(base_model_promoted_sensor, ctx, instance)
        assert kept.run_requests == [] and "kept" in kept.skip_message
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "base_model_update",
                metadata={"promoted": True, "dacs_to_retrain": dg.MetadataValue.json(["acme", "globex"])},
            )
        )
        data = _tick(
            base_model_promoted_sensor,
            dg.build_sensor_context(instance=instance, cursor=kept.cursor, repository_def=repo),
            instance,
        )
        assert sorted(r.partition_key for r in data.run_requests) == ["acme", "globex"]


def test_rdr_deep_crawl_over_the_fixture_and_an_http_source(storage, tmp_path):
    import functools
    import http.server
    import threading

    from defs.operations.research import rdr_findings
    from iv_pipelines.ops.rdr import default_corpus
    from resources.discovery import EmbedderResource

    d = storage.root / "dacs" / "fall-detection-acme"
    d.mkdir(parents=True)
    (d / "request.json").write_text(json.dumps({"domain": "wifi-sensing", "client_id": "acme"}))
    res = {"storage": storage, "embedder": EmbedderResource()}
    out = dg.materialize([rdr_findings], resources=res)
    md = materialized(out)
    assert (
        md["documents_read"] == 40
        and md["documents_kept"] == 39
        and md["dropped"] == {"abstract too short": 1}
    )
    assert 2 <= md["clusters"] <= 8 and md["silhouette"] > 0
    [q] = md["experiments_queued"]
    assert q["dac_id"] == "fall-detection-acme" and q["domain"] == "wifi-sensing" and len(q["documents"]) == 3
    again = dg.materialize([rdr_findings], resources=res)  # same week: not queued twice
    md2 = materialized(again)
    assert (
        md2["experiments_queued"] == []
        and len((storage.root / "rdr" / "queue.jsonl").read_text().splitlines()) == 1
    )
    # the same corpus served over HTTP
    serve = tmp_path / "www"
    serve.mkdir()
    (serve / "corpus.jsonl").write_text(default_corpus().read_text())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(serve))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/corpus.jsonl"
        cfg = {"ops": {"rdr_findings": {"config": {"source": url, "since": "2026-08"}}}}
        out = dg.materialize([rdr_findings], resources=res, run_config=cfg)
    finally:
        httpd.shutdown()
    md3 = materialized(out)
    assert md3["source"] == url and md3["dropped"]["before the look-back window"] > 0
    bad = {"ops": {"rdr_findings": {"config": {"source": str(tmp_path / "missing.jsonl")}}}}
    failed = dg.materialize([rdr_findings], resources=res, run_config=bad, raise_on_error=False)
    assert not failed.success
