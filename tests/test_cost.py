"""Cost optimiser rules (idle, reserved break-even, arbitrage > 15% and < 30 days), the
cost_recommendations asset and the cost_anomaly_sensor."""

import json

import dagster as dg
import pytest

from iv_pipelines.ops.cost import hourly_cost, load_prices, recommend
from tests.conftest import materialized


@pytest.fixture
def prices():
    return load_prices()


def test_shipped_price_table_is_sourced_and_dated(prices):
    assert prices["accessed"] == "2026-11-26" and prices["reserved"]["source"].startswith("https://")
    for cloud, row in prices["classes"]["general-4vcpu-16gb"]["prices"].items():
        assert row["on_demand"] > 0 and row["source"].startswith("https://") and row["as_of"], cloud
    # a quarter of the 4 vCPU / 16 GB class: 1 core or 4 GiB
    assert hourly_cost(1, 2, "aws", prices) == pytest.approx(0.192 / 4)
    assert hourly_cost(0.1, 8, "aws", prices) == pytest.approx(0.192 / 2)  # memory-bound share


def test_idle_and_reserved_rules(prices):
    use = {
        "cpu_seconds": 0.01 * 3600 * 700,
        "wall_seconds": 3600 * 700,
        "samples": 100,
    }  # 0.01 cores, 700 of 720 h
    recs = {r.kind: r for r in recommend("acme", "1", "512Mi", use, 720, prices, "aws", None)}
    assert recs["idle"].evidence["used_cores"] == pytest.approx(0.01)
    # right-sized to 0.05 cores, the 512 MiB memory limit (1/32 of the class) now sets the share
    assert recs["idle"].monthly_savings_usd == pytest.approx((0.192 / 4 - 0.192 / 32) * 730, rel=1e-3)
    assert recs["reserved"].evidence["uptime"] == pytest.approx(700 / 720, rel=1e-3)
    busy_part_time = {
        "cpu_seconds": 0.9 * 3600 * 300,
        "wall_seconds": 3600 * 300,
        "samples": 40,
    }  # 300 of 720 h, busy
    assert (
        recommend("acme", "1", "512Mi", busy_part_time, 720, prices, "aws", None) == []
    )  # under break-even, not idle
    assert recommend("acme", "1", "512Mi", use, 720, prices, None, None) == []  # local: not billed


def test_arbitrage_needs_more_than_15_percent_and_a_payback_under_30_days(prices):
    # the shipped table: GCP is 11% cheaper than AWS for this class -> never recommended
    assert [
        r for r in recommend("a", "4", "16Gi", None, 720, prices, "aws", 10.0) if r.kind == "arbitrage"
    ] == []
    cheap = json.loads(json.dumps(prices))
    cheap["classes"]["general-4vcpu-16gb"]["prices"]["gcp"]["on_demand"] = 0.120  # 37.5% cheaper
    [r] = [r for r in recommend("a", "4", "16Gi", None, 720, cheap, "aws", 20.0) if r.kind == "arbitrage"]
    assert r.action == "migrate from aws to gcp" and r.evidence["break_even_days"] == pytest.approx(
        20 / (0.072 * 24), abs=0.05
    )
    slow = [r for r in recommend("a", "4", "16Gi", None, 720, cheap, "aws", 60.0) if r.kind == "arbitrage"]
    assert slow == []  # 34.7 days to pay back
    assert [
        r for r in recommend("a", "4", "16Gi", None, 720, cheap, "aws", None) if r.kind == "arbitrage"
    ] == []


def test_cost_recommendations_asset(small_package, tmp_path):
    import shutil
    import time

    from defs.operations.reports import cost_recommendations
    from resources.storage import FactoryStorage

    _root, _key, pkg, _ = small_package
    work = tmp_path / "iv"
    dest = work / "packages" / pkg.dac_id
    shutil.copytree(pkg.directory, dest / pkg.version)
    (dest / "current.json").write_text(
        json.dumps({"version": pkg.version, "directory": str(dest / pkg.version)})
    )
    tel = work / "telemetry"
    tel.mkdir(parents=True)
    now = int(time.time() * 1000)
    (tel / "capsules.jsonl").write_text(
        "\n".join(
            json.dumps(
                {
                    "service": pkg.dac_id,
                    "ts_ms": now - i * 3_600_000,
                    "cpu_seconds": 0.0001,
                    "wall_seconds": 3600,
                }
            )
            for i in range(700)
        )
        + "\n"
    )
    res = {"storage": FactoryStorage(root_dir=str(work))}
    out = dg.materialize(
        [cost_recommendations],
        resources=res,
        run_config={"ops": {"cost_recommendations": {"config": {"default_cloud": "azure"}}}},
    )
    md = materialized(out)
    kinds = sorted(
        r["kind"] for r in json.loads((work / "operations" / "cost_recommendations.json").read_text())
    )
    assert md["prices_accessed"] == "2026-11-26" and "reserved" in kinds and md["monthly_savings_usd"] > 0
    out = dg.materialize([cost_recommendations], resources=res)  # no cloud configured: local, not billed
    assert materialized(out)["recommendations"] == 0


def test_cost_anomaly_sensor(storage):
    from defs.operations.health import cost_anomaly_sensor

    tel = storage.root / "telemetry"
    tel.mkdir(parents=True)
    path = tel / "capsules.jsonl"

    def write(rows):
        with open(path, "a") as fh:
            fh.writelines(
                json.dumps({"service": s, "ts_ms": t, "cpu_seconds": c, "wall_seconds": 100.0}) + "\n"
                for s, t, c in rows
            )

    res = {"storage": storage}
    write([("acme", t, 10.0) for t in range(5)])  # 0.1 cores, steady
    with dg.instance_for_test() as instance:
        tick = cost_anomaly_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=res))
        # the cursor is the byte offset after the 5 lines read (it was their count)
        five = str(path.stat().st_size)
        assert tick.run_requests == [] and tick.cursor == five
        write([("acme", 5, 45.0)])  # 0.45 cores: 4.5x the median
        tick = cost_anomaly_sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, resources=res, cursor=five)
        )
        [req] = tick.run_requests
        six = str(path.stat().st_size)
        assert req.run_config["ops"]["heal_dac"]["config"]["dac_id"] == "acme" and tick.cursor == six
        again = cost_anomaly_sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, resources=res, cursor=six)
        )
        assert again.run_requests == []
