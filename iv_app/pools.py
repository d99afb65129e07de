"""Concurrency pools (issue #19): the pools the code location's steps name, and their limits
set explicitly on the instance.

Why explicitly: on PostgreSQL storage, Dagster 1.13 creates a pool's limit row lazily the first
time a step claims a slot, with an INSERT-then-UPDATE that aborts the transaction when two runs
race to create the same row (`InFailedSqlTransaction`; dagster-io/dagster#33552, open).
`bench/load.py --postgres` hit it: 2 of 5 concurrent runs failed on the `gpu` pool. Limits
set ahead (`iv pools init`, or `dagster instance concurrency set POOL N`) are rows that
already exist, and the race never happens. SQLite is not affected."""

from __future__ import annotations


def code_location_pools(defs) -> list[str]:
    """Every pool a step of the code location's jobs names, sorted."""
    return sorted(
        {n.definition.pool for job in defs.resolve_all_job_defs() for n in job.graph.node_dict.values()}
        - {None}
    )


def init_pool_limits(instance, defs, limit: int | None = None) -> dict[str, int]:
    """Set every pool's limit (default: the instance's `concurrency.pools.default_limit`, else
    1) unless it already has one; returns {pool: limit} as set or found."""
    if limit is None:
        limit = instance.get_concurrency_config().pool_config.default_pool_limit or 1
    storage = instance.event_log_storage
    have = set(storage.get_concurrency_keys())
    out = {}
    for pool in code_location_pools(defs):
        if pool in have:
            out[pool] = storage.get_concurrency_info(pool).slot_count
            continue
        storage.set_concurrency_slots(pool, limit)
        out[pool] = limit
    return out
