"""Energy metering, the signature, the file-backed Atlas, the shield decision engine, and
the lifecycle assets that use them (energy_signature, package gates before deployment)."""

import json
import math

import dagster as dg
import pytest

from iv_pipelines.energy.atlas import EnergyState, FileAtlas
from iv_pipelines.energy.meter import CPU_W_PER_CORE, Meter
from iv_pipelines.energy.signature import normalised_entropy, signature
from iv_pipelines.shield.decision import APPROVE_AT, WEIGHTS, Evidence, decide


def test_meter_charges_cpu_time_with_the_power_model():
    import time

    with Meter() as m:
        t0 = time.process_time()
        while time.process_time() - t0 < 0.2:
            sum(range(1000))
    r = m.result
    assert r.cpu_seconds >= 0.2 and r.wall_seconds >= 0.19
    assert r.energy_j == pytest.approx(r.cpu_seconds * CPU_W_PER_CORE)
    with Meter() as idle:
        time.sleep(0.2)
    assert idle.result.cpu_seconds < 0.05 and idle.result.energy_j < r.energy_j


def test_signature_units_and_entropy():
    steps = {
        "a": {"energy_j": 10.0, "cpu_seconds": 3.6, "wall_seconds": 4.0},
        "b": {"energy_j": 10.0, "cpu_seconds": 3.6, "wall_seconds": 1.0},
    }
    sig = signature(steps, "model")
    assert sig.E_state == 20.0 and sig.dE_dt == pytest.approx(4.0) and sig.S_state == pytest.approx(1.0)
    assert normalised_entropy([5.0, 0.0, 0.0]) == 0.0
    assert normalised_entropy([3.0, 1.0]) == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2)
    )
    with pytest.raises(ValueError, match="step 'b': energy_j must be a number >= 0"):
        signature({"b": {"energy_j": -1, "cpu_seconds": 0, "wall_seconds": 1}}, "m")
    with pytest.raises(ValueError, match="no metered steps"):
        signature({}, "m")


def test_file_atlas_is_idempotent_and_ordered(tmp_path):
    atlas = FileAtlas(tmp_path)
    s1 = EnergyState("dac:a", 2000, 5.0, 1.0, 0.5, "lifecycle", "r1")
    s2 = EnergyState("dac:a", 1000, 4.0, 1.0, 0.5, "lifecycle", "r0")
    assert atlas.record([s1, s2]) == 2
    assert atlas.record([s1]) == 0  # same entity, source and run: kept once
    assert [s.run_id for s in atlas.trajectory("dac:a")] == ["r0", "r1"]
    assert atlas.trajectory("dac:a", since_ms=1500) == [s1]
    (tmp_path / FileAtlas.FILE).write_text((tmp_path / FileAtlas.FILE).read_text() + "{oops\n")
    with pytest.raises(ValueError, match=r"energy_states.jsonl:3: not an energy state"):
        atlas.trajectory("dac:a")


def _evidence(**kw):
    base = dict(
        validation_score=0.97,
        validation_passed=True,
        adapter_accuracy=0.99,
        adapter_beats_base=True,
        provenance_ok=True,
        policies_passed={"no_secrets": True, "network_policy": True},
    )
    return Evidence(**(base | kw))


def test_decision_weights_and_gates():
    d = decide(_evidence())
    assert d.approved and d.score == pytest.approx(0.3 * 0.97 + 0.3 * 0.99 + 0.2 + 0.2)
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)
    # a high score never hides a failed gate
    d = decide(_evidence(provenance_ok=False))
    assert not d.approved and d.score >= APPROVE_AT - 0.2 and any("provenance" in r for r in d.reasons)
    d = decide(_evidence(constraints=[("max_latency_ms", 700.0, 500.0, "max")]))
    assert not d.approved and any("max_latency_ms: measured 700 <= 500 does not hold" in r for r in d.reasons)
    d = decide(_evidence(validation_score=0.2, adapter_accuracy=0.3))
    assert not d.approved and any("weighted score" in r for r in d.reasons)
    d = decide(_evidence(policies_passed={"no_secrets": False}, policy_findings=["[no_secrets] a.txt: x"]))
    assert not d.approved and "REJECT: policy no_secrets failed" in d.reasons


# --- assets -----------------------------------------------------------------------------


def _metered_stubs(storage):
    from defs.common import dac_partitions, metered
    from defs.packaging import METERED_STEPS

    def make(name):
        @dg.asset(name=name, partitions_def=dac_partitions)
        @metered
        def stub(context: dg.AssetExecutionContext):
            sum(range(200_000 * (1 + METERED_STEPS.index(name))))  # unequal work per step

        return stub

    return [make(n) for n in METERED_STEPS]


def test_energy_signature_reads_metered_steps_and_writes_the_atlas(storage, tmp_path):
    from defs.common import dac_partitions
    from defs.packaging import METERED_STEPS, energy_signature
    from resources.deploy import EnergyAtlasResource

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(dac_partitions.name, ["acme"])
    res = {"storage": storage, "atlas": EnergyAtlasResource(engine="file", root_dir=str(tmp_path / "atlas"))}
    stubs = _metered_stubs(storage)
    with pytest.raises(Exception, match="steps never metered"):
        dg.materialize(
            [energy_signature],
            instance=instance,
            partition_key="acme",
            resources=res,
            selection=[energy_signature],
        )
    assert dg.materialize(stubs, instance=instance, partition_key="acme", resources=res).success
    out = dg.materialize(
        [*stubs, energy_signature],
        instance=instance,
        partition_key="acme",
        resources=res,
        selection=[energy_signature],
    )
    sig = out.output_for_node("energy_signature")
    assert set(sig["steps_j"]) == set(METERED_STEPS)
    assert sig["E_state"] == pytest.approx(sum(sig["steps_j"].values()), abs=0.01)
    assert 0 < sig["S_state"] < 1 and sig["dE_dt"] > 0
    traj = FileAtlas(tmp_path / "atlas").trajectory("dac:acme")
    assert len(traj) == 1 and traj[0].E_state == pytest.approx(sig["E_state"], abs=0.01)
    # re-running the signature in another run adds one DAC state, never duplicates step states
    dg.materialize(
        [*stubs, energy_signature],
        instance=instance,
        partition_key="acme",
        resources=res,
        selection=[energy_signature],
    )
    lines = (tmp_path / "atlas" / FileAtlas.FILE).read_text().splitlines()
    assert sum('"dac:acme"' in x for x in lines) == 2 and sum("step:acme/" in x for x in lines) == len(
        METERED_STEPS
    )


def test_rejected_package_blocks_deployment_and_tamper_fails_the_provenance_check(small_package, tmp_path):
    """The fixture's tiny model misses the client's accuracy constraint: shield_review's
    decision gate fails and dac_deployment never runs. Then a tampered file fails the
    package's provenance_verifies check run on its own."""
    import shutil

    from defs.common import dac_partitions
    from defs.deployment import dac_deployment
    from defs.packaging import dac_package, package_provenance_verifies, shield_review
    from iv_pipelines.request import parse_request_text
    from resources.deploy import DeployerResource, PackagingResource
    from resources.mesh import AsiRegistryResource
    from resources.proof import ProofResource
    from resources.sensing import SensingResource
    from resources.storage import FactoryStorage
    from tests.conftest import REPO

    root, key, _pkg, _ = small_package
    work = tmp_path / "iv"
    shutil.copytree(root, work, ignore=shutil.ignore_patterns("packages"))
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copyfile(root.parent / "keys" / "lineage-ed25519.pem", keys / "lineage-ed25519.pem")
    req = parse_request_text((REPO / "examples" / "requests" / "fall-detection-acme.yaml").read_text())

    @dg.asset(name="energy_signature", partitions_def=dac_partitions)
    def energy_stub():
        return {"E_state": 1.0, "dE_dt": 0.5, "S_state": 0.3, "method": "stub"}

    @dg.asset(name="dac_request", partitions_def=dac_partitions)
    def request_stub():
        return req

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(dac_partitions.name, ["fall-detection-acme"])
    res = {
        "storage": FactoryStorage(root_dir=str(work)),
        "proof": ProofResource(keys_dir=str(keys), zk=False),
        "packaging": PackagingResource(),
        "deployer": DeployerResource(state_dir=str(tmp_path / "dep")),
        "sensing": SensingResource(),
        "registry": AsiRegistryResource(url=f"sqlite:///{tmp_path / 'asi.sqlite'}"),
    }
    assets = [energy_stub, request_stub, dac_package, shield_review, dac_deployment]
    run_all = dg.define_asset_job("run_all", selection=dg.AssetSelection.all(), partitions_def=dac_partitions)
    check_job = dg.define_asset_job(
        "check_only",
        selection=dg.AssetSelection.checks(package_provenance_verifies),
        partitions_def=dac_partitions,
    )
    defs = dg.Definitions(
        assets=assets, asset_checks=[package_provenance_verifies], jobs=[run_all, check_job], resources=res
    )
    result = defs.resolve_job_def("run_all").execute_in_process(
        instance=instance, partition_key="fall-detection-acme", raise_on_error=False
    )
    assert not result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {
        "provenance_verifies": True,
        "shield_policies_pass": True,
        "shield_approves": False,
    }
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "dac_package" in done and "shield_review" in done and "dac_deployment" not in done
    review = result.output_for_node("shield_review")
    assert any("min_accuracy" in r and "does not hold" in r for r in review["decision"]["reasons"])

    current = json.loads((work / "packages" / "fall-detection-acme" / "current.json").read_text())
    manifest = json.loads(
        (work / "packages" / "fall-detection-acme" / current["version"] / "runtime.json").read_text()
    )
    (work / "packages" / "fall-detection-acme" / current["version"] / "runtime.json").write_text(
        json.dumps(manifest | {"classes": ["empty", "walk", "sit", "fall", "dance"]})
    )
    r2 = defs.resolve_job_def("check_only").execute_in_process(instance=instance, raise_on_error=False)
    ev = r2.get_asset_check_evaluations()
    assert len(ev) == 1 and not ev[0].passed
    assert "runtime.json: sha256 differs" in json.dumps(ev[0].metadata["problems"].value)
