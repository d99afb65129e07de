"""The operations issue's acceptance: the daily and monthly jobs, run once in-process over a
deployed DAC, produce their outputs (re-verified ledger, optimised routes, health table,
client report HTML with the DAC and its numbers, cost recommendations, security audit)."""

import json

import dagster as dg

from tests.conftest import materialized


def test_daily_and_monthly_jobs_over_a_deployed_dac(tmp_path):
    from iv_app import definitions as code
    from iv_app.sample import make_small_dac
    from iv_pipelines.deploy.targets import LocalDeployer
    from iv_pipelines.ledger.chain import dac_digest
    from iv_pipelines.mesh.snapshot import register_capsule
    from iv_pipelines.packaging.dac import build_dac_package
    from iv_pipelines.proof.dsse import load_or_create_signing_key
    from resources.deploy import DeployerResource, EnergyAtlasResource
    from resources.ledger import LedgerResource
    from resources.mesh import AsiRegistryResource
    from resources.proof import ProofResource
    from resources.selection import resources_for
    from resources.storage import FactoryStorage

    root = tmp_path / "iv"
    root.mkdir()
    key = load_or_create_signing_key(tmp_path / "keys")
    dac = "fall-detection-acme"
    make_small_dac(root, key, dac)
    ledger = LedgerResource(state_dir=str(tmp_path / "ledger"))
    lineage = json.loads((root / "dacs" / dac / "lineage" / "lineage.json").read_text())
    reg = ledger.get().register(dac, dac_digest(dac, lineage["merkle"]["root"]))
    (root / "dacs" / dac / "lineage" / "registration.json").write_text(
        json.dumps(reg.to_json() | {"backend": "embedded"})
    )
    energy = {"E_state": 20.0, "dE_dt": 2.0, "S_state": 0.5, "method": "test"}
    pkg, _, _ = build_dac_package(root, dac, key, key.public, energy, "run", [])
    (root / "packages" / dac / "current.json").write_text(
        json.dumps({"version": pkg.version, "digest": pkg.digest, "directory": str(pkg.directory)})
    )
    deployer = LocalDeployer(root / "deployments")
    rec = deployer.deploy(pkg.directory, dac, pkg.version)
    registry = AsiRegistryResource(url=f"sqlite:///{root / 'asi.sqlite'}")
    register_capsule(registry.get(root), dac, "local", rec.url, ["wifi_sensing", "fall_detection"], energy)
    (root / "deployments" / dac / "deployment.json").write_text(
        json.dumps(
            {"target": "local", "version": pkg.version, "url": rec.url, "capabilities": ["wifi_sensing"]}
        )
    )
    res = resources_for("local") | {
        "storage": FactoryStorage(root_dir=str(root)),
        "proof": ProofResource(keys_dir=str(tmp_path / "keys")),
        "ledger": ledger,
        "deployer": DeployerResource(),
        "atlas": EnergyAtlasResource(root_dir=str(tmp_path / "atlas")),
        "registry": registry,
    }
    defs = dg.Definitions(
        assets=code.defs.assets, asset_checks=code.defs.asset_checks, jobs=code.defs.jobs, resources=res
    )
    instance = dg.DagsterInstance.ephemeral()

    def run(job, **kw):
        result = defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False, **kw)
        assert result.success, job
        return result

    try:
        # daily
        sync = run("ledger_in_sync_job")
        [check] = sync.get_asset_check_evaluations()
        assert check.passed and check.metadata["verified"].value == 1
        opt = run("energy_trends_job")
        routes = json.loads((root / "mesh" / "routes.json").read_text())
        assert {f"{dac} -> ledger", f"{dac} -> storage", f"{dac} -> energy"} <= set(routes)
        assert materialized(opt, "service_mesh")["rerouted"] == 3
        pins = run("service_mesh_job")  # what dac_deployed_sensor launches: routes + Capsule Pin records
        assert materialized(pins, "capsule_pins")["status"] == {dac: "serving"}
        from iv_pipelines.ops.pins import CapsulePin

        pin = CapsulePin.model_validate_json((root / "pins" / f"{dac}.json").read_text())
        assert pin.endpoint == rec.url and pin.utid and pin.energy.E_state == 20.0
        health = materialized(run("dac_health_job"), "dac_health")
        assert health["dacs"] == 1 and health["issues"] == {dac: None} and 0 <= health["scores"][dac] <= 1
        assert dac in health["health"]
        # monthly
        run("client_report_job", partition_key="2026-10-01")
        page = (root / "reports" / "2026-10" / "acme-healthcare.html").read_text()
        ev = json.loads((root / "dacs" / dac / "adapter" / "evaluation.json").read_text())
        vh = json.loads((root / "dacs" / dac / "validated_hypothesis.json").read_text())
        score = f"{vh['validation_score']:.3f}"  # the stored score, not the fixture's constant
        assert dac in page and score in page and f"{ev['evidence']['simulation']['accuracy']:.3f}" in page
        assert "SIMULATED room only" in page  # the report says what the accuracy rests on
        assert f"{health['scores'][dac]:.3f}" in page
        cost = run(
            "cost_recommendations_job",
            run_config={"ops": {"cost_recommendations": {"config": {"default_cloud": "aws"}}}},
        )
        assert materialized(cost, "cost_recommendations")["prices_accessed"] == "2026-11-26"
        audit = materialized(run("security_audit_report_job"), "security_audit_report")
        assert audit["packages_reviewed"] == 1 and audit["unpinned_requirements"] == []
    finally:
        deployer.stop(dac)
