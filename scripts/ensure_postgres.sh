#!/usr/bin/env bash
# Start the machine's PostgreSQL (Debian cluster 15/main) for the storage tests and make sure
# the local test role exists. Idempotent. Without PostgreSQL installed it says so and exits 0;
# the PostgreSQL tests then skip locally, and fail under CI=true.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "ensure_postgres: PostgreSQL is not installed (apt-get install postgresql); PG tests will skip" >&2
  exit 0
fi
ver=$(pg_lsclusters --no-header 2>/dev/null | awk 'NR==1{print $1}')
name=$(pg_lsclusters --no-header 2>/dev/null | awk 'NR==1{print $2}')
if [ -z "${ver}" ]; then
  echo "ensure_postgres: no PostgreSQL cluster found (pg_createcluster 15 main)" >&2
  exit 0
fi
if ! pg_lsclusters --no-header | awk 'NR==1{print $4}' | grep -q online; then
  pg_ctlcluster "$ver" "$name" start
fi
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi; }
for _ in $(seq 1 50); do as_pg "psql -qtAc 'select 1'" >/dev/null 2>&1 && break; sleep 0.1; done
if ! as_pg "psql -qtAc \"select 1 from pg_roles where rolname='iv_test'\"" | grep -q 1; then
  as_pg "psql -qc \"create role iv_test login password 'iv_test' createdb\""
fi
echo "ensure_postgres: PostgreSQL $ver/$name online; role iv_test ready"
