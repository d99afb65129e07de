"""deploy/dagster.yaml against a real PostgreSQL: materialize `dac_request`, then read the rows.

`make test` / `.ci/run` start the machine's PostgreSQL with scripts/ensure_postgres.sh. Without
a server this test skips locally and fails under CI=true (it must not pass by not running).
"""

import shutil

import dagster as dg
from conftest import PG, REPO, pg_connect


def test_materialize_dac_request_with_postgres_storage(
    pg_database, tmp_path, monkeypatch, storage, sample_request_text
):
    from defs.discovery import dac_request
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

    conn = pg_connect(pg_database)
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
