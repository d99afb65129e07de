"""Snapshot of the whole Dagster graph: a change to assets, checks, jobs, schedules or sensors
shows up as a diff of tests/snapshots/graph.json. Regenerate with IV_UPDATE_SNAPSHOTS=1."""

import json
import os

import dagster as dg
from conftest import REPO

SNAPSHOT = REPO / "tests" / "snapshots" / "graph.json"


def _partitions(pd) -> str | None:
    if pd is None:
        return None
    if isinstance(pd, dg.DynamicPartitionsDefinition):
        return f"dynamic:{pd.name}"
    if isinstance(pd, dg.TimeWindowPartitionsDefinition):
        return f"time:{pd.cron_schedule}:{pd.timezone}"
    return type(pd).__name__


def graph_snapshot() -> dict:
    from iv_app.definitions import defs

    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "partitions": _partitions(node.partitions_def),
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "has_description": bool(node.description),
        }
    checks = {}
    for ck in sorted(graph.asset_check_keys, key=lambda c: (c.asset_key.to_user_string(), c.name)):
        spec = graph.get_check_spec(ck)
        checks[f"{ck.asset_key.to_user_string()}:{ck.name}"] = {"blocking": bool(spec.blocking)}
    jobs = {}
    for job in defs.resolve_all_job_defs():
        if job.name.startswith("__"):
            continue
        jobs[job.name] = sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys)
    schedules = {
        s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone, "job": s.job_name}
        for s in defs.get_repository_def().schedule_defs
    }
    sensors = {
        s.name: {"jobs": sorted(t.job_name for t in s.targets), "type": s.sensor_type.value}
        for s in defs.get_repository_def().sensor_defs
    }
    return {"assets": assets, "checks": checks, "jobs": jobs, "schedules": schedules, "sensors": sensors}


def test_graph_matches_snapshot():
    snap = graph_snapshot()
    text = json.dumps(snap, indent=2, sort_keys=True) + "\n"
    if os.environ.get("IV_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(text)
    assert json.loads(SNAPSHOT.read_text()) == snap, (
        "the asset graph changed; review the diff and regenerate with IV_UPDATE_SNAPSHOTS=1"
    )


def test_every_asset_explains_itself():
    snap = graph_snapshot()
    for key, a in snap["assets"].items():
        assert a["group"] and a["group"] != "default", f"{key} has no group"
        assert a["owners"], f"{key} has no owners"
        assert a["kinds"], f"{key} has no kinds"
        assert a["has_description"], f"{key} has no description"


def test_lifecycle_job_covers_every_partitioned_asset():
    snap = graph_snapshot()
    partitioned = {k for k, a in snap["assets"].items() if a["partitions"] == "dynamic:dac"}
    # dac_feedback (steps 30-32) reads production, which a lifecycle run has not seen yet: it
    # runs on its own schedule, and its sensors launch the lifecycle (evolution) runs
    assert partitioned and partitioned - {"dac_feedback"} <= set(snap["jobs"]["dac_lifecycle_job"])
    assert "dac_request_drop_sensor" in snap["sensors"]
