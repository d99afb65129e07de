"""bench/load.py with Dagster's run, event-log and schedule storage in PostgreSQL (issue #19):
the same N requests dropped at once, the same checks, next to the single-DAC time of the same
run. Needs the PostgreSQL `make test` starts (scripts/ensure_postgres.sh) and its test role
(DAGSTER_PG_USERNAME / DAGSTER_PG_PASSWORD, default iv_test / iv_test).

    .venv/bin/python bench/load_postgres.py [--n 1,5]
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

if __name__ == "__main__":
    for k, v in {
        "DAGSTER_PG_USERNAME": "iv_test",
        "DAGSTER_PG_PASSWORD": "iv_test",
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": "5432",
    }.items():
        os.environ.setdefault(k, v)
    import load

    args = sys.argv[1:]
    if "--n" not in args:
        args = ["--n", "1,5", *args]
    sys.argv = [sys.argv[0], "--postgres", *args]
    raise SystemExit(load.main())
