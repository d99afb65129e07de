"""Five DAC requests dropped at once, on embedded defaults, taken by the real Dagster daemon
through the shipped instance config (issue #19 acceptance; `bench/load.py` with N = 5, the
bench's checks plus this test's own look at what the runs left behind):

- every request's run finishes: deployed (at least 3 of 5), or stopped by a blocking gate
  that names why (a product decision, not a load failure); every deployed DAC's package
  exists, its UTID registration re-verifies on the ledger, its energy state is in the Atlas;
- the queue really ran DACs side by side (at least one pair of runs overlapped) yet never two
  runs of one partition, and never two steps of one pool (`gpu`, `cpu`, `atlas`, `ledger`);
- no "database is locked" anywhere in the runs' logs.

About 4-6 minutes on 2 cores (5 lifecycle runs, 2 at a time). SIMULATED training data only."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, lifecycle_home


def _load(tmp_path, default_base_model, calibrated, n: int, extra=(), env_extra=None):
    """bench/load.py with N requests on a home prepared from the session's base model and
    calibration, kept under tmp_path/run; returns (the process, its JSON result)."""
    src, _ = lifecycle_home(tmp_path / "src", default_base_model, calibrated)
    out = tmp_path / "load.json"
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "IV_STORAGE_ROOT")} | (
        env_extra or {}
    )
    args = ["--n", str(n), *extra, "--from-home", str(src.root), "--keep", str(tmp_path / "run")]
    r = subprocess.run(
        [sys.executable, str(REPO / "bench" / "load.py"), *args, "--json", str(out), "--timeout", "1200"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1500,
    )
    assert out.is_file(), r.stdout[-3000:] + r.stderr[-3000:]
    [res] = json.loads(out.read_text())
    return r, res


def test_five_dacs_dropped_at_once_all_deploy(default_base_model, calibrated, tmp_path):
    r, res = _load(tmp_path, default_base_model, calibrated, 5)
    assert res["problems"] == [], res["problems"]
    # the example clients' requests all pass their gates when run one by one
    # (bench/new_clients.py); here ACE memory is shared by runs in flight, so a hypothesis gate
    # may judge differently — a gate stop is the product deciding, named, never silent
    assert len(res["dacs"]) == 5 and res["completed"] + len(res["stopped_at_gate"]) == 5, res
    assert res["completed"] >= 3, res["stopped_at_gate"]
    assert res["overlapping_run_pairs"] >= 1, res["runs"]  # the queue ran DACs side by side
    assert res["pool_steps"]["cpu"] == 5 and res["pool_steps"]["gpu"] >= res["completed"]
    assert r.returncode == 0, r.stdout[-2000:]

    # what the runs left behind, read here independently of the bench
    from iv_pipelines.ledger.chain import EmbeddedLedger
    from iv_pipelines.ledger.sync import sync_all
    from iv_pipelines.proof.dsse import load_or_create_signing_key
    from iv_pipelines.storage import StorageLayout

    home = tmp_path / "run" / "n5"
    layout = StorageLayout(home / "iv")
    key = load_or_create_signing_key(home / "keys").public
    synced = sync_all(layout.root, EmbeddedLedger(home / "ledger"), key)
    assert sorted(s.dac_id for s in synced if s.ok) == res["deployed"], [s.problems for s in synced]
    for dac in res["deployed"]:
        pkg = layout.current_package(dac)
        assert pkg is not None and (Path(pkg["directory"]) / "manifest.json").is_file(), dac
        assert layout.deployment(dac)["url"].startswith("http://127.0.0.1:")


def test_the_shipped_instance_config_queues_runs_and_limits_pools(tmp_path):
    """deploy/dagster.local.yaml as `make demo` installs it: Dagster's queue with 2 runs at
    once and one per partition, pools of one slot; every pool the code location names has
    that limit (a typo'd pool name would silently get its own)."""
    import shutil

    import dagster as dg
    from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator

    from iv_app.definitions import defs

    shutil.copy(REPO / "deploy" / "dagster.local.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        cc = instance.get_concurrency_config()  # what the queue daemon reads
        assert cc.run_queue_config.max_concurrent_runs == 2
        [limit] = cc.run_queue_config.tag_concurrency_limits
        assert limit["key"] == "dagster/partition" and limit["limit"] == 1
        assert cc.pool_config.default_pool_limit == 1
    from iv_app.pools import code_location_pools

    assert code_location_pools(defs) == ["atlas", "cpu", "gpu", "ledger"]


def test_three_dacs_at_once_with_postgres_storage(default_base_model, calibrated, pg_database, tmp_path):
    """The same, with Dagster's run, event-log and schedule storage in the PostgreSQL `make test`
    starts (issue #19 item 4: the concurrency of item 1 on the production storage); three
    requests to keep `make test` short (bench/load_postgres.py runs more)."""
    from tests.conftest import PG

    _r, res = _load(tmp_path, default_base_model, calibrated, 3, ["--postgres", "--pg-db", pg_database], PG)
    assert res["problems"] == [], res["problems"]
    assert res["completed"] + len(res["stopped_at_gate"]) == 3 and res["completed"] >= 2, res
    assert res["overlapping_run_pairs"] >= 1 and res["ledger_verified"] == res["completed"]
    # the runs are in PostgreSQL, not in a SQLite file under the home
    from tests.conftest import pg_connect

    con = pg_connect(pg_database)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT count(*) FROM runs WHERE pipeline_name = 'dac_lifecycle_job'")
            assert cur.fetchone()[0] == 3
    finally:
        con.close()
    assert not (tmp_path / "run" / "n3" / "history" / "runs.db").exists()


def test_pool_limits_are_set_once_and_kept(tmp_path):
    """`iv pools init`: every pool the code location names gets the instance's default limit
    as an explicit row (what PostgreSQL storage needs, iv_app/pools.py); a limit someone set
    is kept; a limit under 1 is refused."""
    import shutil

    import dagster as dg
    from click.testing import CliRunner

    from iv_app.cli import main

    shutil.copy(REPO / "deploy" / "dagster.local.yaml", tmp_path / "dagster.yaml")
    env = {"DAGSTER_HOME": str(tmp_path)}
    r = CliRunner().invoke(main, ["pools", "init"], env=env)
    assert r.exit_code == 0, r.output
    assert sorted(r.output.split()) == sorted(
        "atlas: 1 slot(s) cpu: 1 slot(s) gpu: 1 slot(s) ledger: 1 slot(s)".split()
    )
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        instance.event_log_storage.set_concurrency_slots("cpu", 2)
    r = CliRunner().invoke(main, ["pools", "init", "--limit", "3"], env=env)
    assert "cpu: 2 slot(s)" in r.output and "gpu: 1 slot(s)" in r.output  # kept, both
    r = CliRunner().invoke(main, ["pools", "init", "--limit", "0"], env=env)
    assert r.exit_code != 0 and "at least 1 slot" in r.output
