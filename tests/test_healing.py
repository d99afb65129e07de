"""Fault injection: every injected fault ends healed by the expected strategy, and the
healing actions are queryable in the Energy Atlas."""

import json
import os
import shutil
import signal
import time
from contextlib import contextmanager

import pytest

from iv_pipelines.deploy.targets import LocalDeployer
from iv_pipelines.ops.healing import Healer, diagnose, previous_version


@pytest.fixture
def env(small_package, tmp_path):
    from iv_pipelines.atlas.engine import LadybugAtlas

    _root, _key, pkg, _ = small_package
    dep = LocalDeployer(tmp_path / "deployments", ready_timeout_s=60)
    path = tmp_path / "atlas"

    @contextmanager
    def atlas_open():
        a = LadybugAtlas(path)
        try:
            yield a
        finally:
            a.close()

    yield dep, Healer(dep, atlas_open), pkg, atlas_open
    dep.stop(pkg.dac_id)


def _actions(atlas_open, dac_id):
    with atlas_open() as a:
        return a.query("healing_actions", dac_id=dac_id)


def test_killed_capsule_and_supervisor_are_restarted(env):
    dep, healer, pkg, atlas_open = env
    dep.deploy(pkg.directory, pkg.dac_id, pkg.version)
    st = dep.status(pkg.dac_id)
    os.kill(st["supervisor_pid"], signal.SIGKILL)
    os.kill(st["capsule_pid"], signal.SIGKILL)
    time.sleep(0.3)
    diag = diagnose(dep, pkg.dac_id)
    assert diag.issue == "crashed"
    action = healer.heal(diag)
    assert action.strategy == "restart" and action.ok and dep.status(pkg.dac_id)["ready"]
    assert "restartedAt" in json.dumps(action.k8s_patch)
    assert [(r["issue"], r["strategy"], r["ok"]) for r in _actions(atlas_open, pkg.dac_id)] == [
        ("crashed", "restart", True)
    ]


def test_frozen_capsule_is_migrated_to_a_new_process(env):
    dep, healer, pkg, _ = env
    rec = dep.deploy(pkg.directory, pkg.dac_id, pkg.version)
    pid = dep.status(pkg.dac_id)["capsule_pid"]
    os.kill(pid, signal.SIGSTOP)  # alive, holding its port, answering nothing
    try:
        diag = diagnose(dep, pkg.dac_id)
        assert diag.issue == "unresponsive"
        action = healer.heal(diag)
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert action.strategy == "migrate" and action.ok and action.details["url"] != rec.url
    assert "podAntiAffinity" in json.dumps(action.k8s_patch)


def test_capsule_answering_500_is_replaced(env):
    dep, healer, pkg, _ = env
    dep.deploy(pkg.directory, pkg.dac_id, pkg.version, env={"IV_CAPSULE_FAULT": "http500"}, wait=False)
    deadline = time.monotonic() + 30
    while (diag := diagnose(dep, pkg.dac_id)).issue != "http_errors" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert diag.issue == "http_errors"
    action = healer.heal(diag)
    expected = "rollback" if previous_version(pkg.directory) else "replace"
    assert action.strategy == expected and action.ok, action.details
    assert diagnose(dep, pkg.dac_id).issue is None


def test_regression_in_a_new_version_is_rolled_back(env, tmp_path, monkeypatch):
    dep, healer, pkg, _ = env
    # the two versions are copies made here, without attestations: served only on opt-out
    monkeypatch.setenv("IV_CAPSULE_REQUIRE_ATTESTATION", "0")
    root = tmp_path / "packages" / pkg.dac_id
    shutil.copytree(pkg.directory, root / "1.0.0")
    shutil.copytree(pkg.directory, root / "1.1.0")
    dep.deploy(root / "1.1.0", pkg.dac_id, "1.1.0", env={"IV_CAPSULE_FAULT": "http500"}, wait=False)
    deadline = time.monotonic() + 30
    while (diag := diagnose(dep, pkg.dac_id)).issue != "http_errors" and time.monotonic() < deadline:
        time.sleep(0.2)
    action = healer.heal(diag)
    assert action.strategy == "rollback" and action.ok
    assert (action.details["from_version"], action.details["to_version"]) == ("1.1.0", "1.0.0")
    assert dep.status(pkg.dac_id)["version"] == "1.0.0"
    assert action.k8s_patch["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.0.0")


def test_capsule_over_its_memory_limit_is_scaled(env):
    dep, healer, pkg, atlas_open = env
    dep.deploy(
        pkg.directory, pkg.dac_id, pkg.version, env={"IV_CAPSULE_FAULT": "leak:300"}, memory_limit_mib=400
    )
    diag = diagnose(dep, pkg.dac_id)
    assert diag.issue == "memory_exceeded", diag.details
    action = healer.heal(diag)
    assert action.strategy == "scale" and action.ok, action.details
    assert action.details["new_limit_mib"] >= 1.5 * diag.details["rss_mib"] - 16
    st = dep.status(pkg.dac_id)
    assert st["rss_mib"] < st["memory_limit_mib"] == action.details["new_limit_mib"]
    assert st["rss_mib"] > 300 and dep.meta(pkg.dac_id)["env"] == {
        "IV_CAPSULE_FAULT": "leak:300"
    }  # same workload
    assert action.k8s_patch["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][
        "memory"
    ].endswith("Mi")
    assert _actions(atlas_open, pkg.dac_id)[-1]["strategy"] == "scale"


def test_score_drop_requests_an_evolution_run(env):
    dep, healer, pkg, atlas_open = env
    dep.deploy(pkg.directory, pkg.dac_id, pkg.version)
    assert diagnose(dep, pkg.dac_id, score=0.97, threshold=0.95).issue is None
    diag = diagnose(dep, pkg.dac_id, score=0.81, threshold=0.95)
    action = healer.heal(diag)
    assert action.strategy == "evolve" and action.run_request["partition_key"] == pkg.dac_id
    assert action.run_request["job_name"] == "dac_lifecycle_job"
    assert _actions(atlas_open, pkg.dac_id)[-1]["issue"] == "score_drop"


def test_a_capsule_stopped_on_purpose_is_not_a_crash(env):
    dep, healer, pkg, _ = env
    dep.deploy(pkg.directory, pkg.dac_id, pkg.version)
    assert dep.stop(pkg.dac_id)
    diag = diagnose(dep, pkg.dac_id)
    assert diag.issue is None and diag.details["reason"] == "stopped on purpose"
    assert healer.heal(diag) is None
