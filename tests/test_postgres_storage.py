"""deploy/dagster.yaml against a real PostgreSQL: materialize `dac_request`, then read the rows.

`make test` / `.ci/run` start the machine's PostgreSQL with scripts/ensure_postgres.sh. Without
a server this test skips locally and fails under CI=true (it must not pass by not running).
"""

import os
import shutil
import uuid

import dagster as dg
import pytest
from conftest import REPO

PG = {
    "DAGSTER_PG_USERNAME": os.environ.get("IV_TEST_PG_USER", "iv_test"),
    "DAGSTER_PG_PASSWORD": os.environ.get("IV_TEST_PG_PASSWORD", "iv_test"),
    "DAGSTER_PG_HOST": os.environ.get("IV_TEST_PG_HOST", "127.0.0.1"),
    "DAGSTER_PG_PORT": os.environ.get("IV_TEST_PG_PORT", "5432"),
}


def _connect(db: str):
    import psycopg2

    return psycopg2.connect(
        dbname=db,
        user=PG["DAGSTER_PG_USERNAME"],
        password=PG["DAGSTER_PG_PASSWORD"],
        host=PG["DAGSTER_PG_HOST"],
        port=int(PG["DAGSTER_PG_PORT"]),
        connect_timeout=3,
    )


@pytest.fixture
def pg_database():
    try:
        admin = _connect("postgres")
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required under CI and is not reachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable ({exc}); run scripts/ensure_postgres.sh")
    admin.autocommit = True
    name = f"iv_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_materialize_dac_request_with_postgres_storage(
    pg_database, tmp_path, monkeypatch, storage, sample_request_text
):
    from assets.discovery import dac_request
    from iv_pipelines.request import parse_request_text

    for k, v in PG.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("DAGSTER_PG_DB", pg_database)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")

    storage.requests().put(parse_request_text(sample_request_text))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.run_storage.postgres_url.startswith("postgresql+psycopg2://")
        instance.add_dynamic_partitions("dac", ["fall-detection-acme"])
        result = dg.materialize(
            [dac_request],
            partition_key="fall-detection-acme",
            resources={"storage": storage},
            instance=instance,
        )
        assert result.success
        run_id = result.run_id

    conn = _connect(pg_database)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cur.fetchone() == ("SUCCESS",)
        cur.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION' "
            "AND asset_key = %s AND partition = %s",
            (run_id, '["dac_request"]', "fall-detection-acme"),
        )
        assert cur.fetchone() == (1,)
        cur.execute("SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'dac'")
        assert cur.fetchall() == [("fall-detection-acme",)]
    conn.close()
