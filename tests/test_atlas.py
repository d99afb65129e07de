"""Energy Atlas: ladybug results equal a pure-Python computation of each query; the same
query files pass Neo4j's own parser offline; Neo4j parameter building and result mapping."""

import json
import math
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from iv_pipelines.atlas.engine import (
    QUERIES,
    LadybugAtlas,
    Neo4jAtlas,
    load_query,
    statements,
    trajectory_params,
    window_params,
)
from iv_pipelines.energy.atlas import EnergyState

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """A random Atlas: 12 DACs, 8 services, 600 states; returned with its plain-Python twin."""
    rng = np.random.default_rng(3)
    atlas = LadybugAtlas(tmp_path_factory.mktemp("atlas") / "graph")
    states = []
    for d in range(12):
        base = rng.uniform(10, 100)
        for i in range(40):
            e = base + rng.normal(0, 3) + (80 if (d, i) in ((2, 7), (5, 30)) else 0)
            states.append(
                EnergyState(
                    f"dac:d{d}", 1_000 * i + d, e, rng.normal(0, 2), rng.random(), "lifecycle", f"r{i}"
                )
            )
    for s in range(8):
        for i in range(15):
            states.append(
                EnergyState(
                    f"service:s{s}",
                    2_000 * i,
                    rng.uniform(1, 50),
                    rng.normal(0, 3),
                    rng.random(),
                    "telemetry",
                    f"t{i}",
                )
            )
    caps = {
        f"s{s}": (["fall_detection"] if s % 2 else []) + (["zk_proof"] if s % 3 == 0 else [])
        for s in range(8)
    }
    uses = {f"d{d}": sorted({f"s{x}" for x in rng.choice(8, size=3, replace=False)}) for d in range(12)}
    assert atlas.record(states) == len(states)
    for s, c in caps.items():
        atlas.add_service(s, "aws", "inference", c)
    for d, ss in uses.items():
        for s in ss:
            atlas.uses_service(d, s)
    yield atlas, states, caps, uses
    atlas.close()


def test_trajectory_matches_python(graph):
    atlas, states, _, _ = graph
    got = atlas.trajectory("dac:d3", 5_000, 20_000)
    want = sorted(
        (s for s in states if s.entity == "dac:d3" and 5_000 <= s.ts_ms < 20_000), key=lambda s: s.ts_ms
    )
    assert got == want


def test_optimal_service_matches_python(graph):
    atlas, states, caps, _ = graph
    got = atlas.query("optimal_service", capability="fall_detection", limit=10, **window_params(0, 20_000))
    by = defaultdict(list)
    for s in states:
        if s.entity.startswith("service:") and s.ts_ms < 20_000 and "fall_detection" in caps[s.entity[8:]]:
            by[s.entity[8:]].append(s.E_state + 0.5 * s.dE_dt + 2 * s.S_state)
    want = sorted(((k, sum(v) / len(v)) for k, v in by.items()), key=lambda kv: (kv[1], kv[0]))
    assert [r["service"] for r in got] == [k for k, _ in want]
    np.testing.assert_allclose([r["cost"] for r in got], [c for _, c in want])


def test_anomalies_match_python(graph):
    atlas, states, _, _ = graph
    got = atlas.query("anomalies", k=3.0, min_states=10, source="lifecycle", **window_params())
    want = []
    for d in sorted({s.entity for s in states if s.entity.startswith("dac:")}):
        xs = [s for s in states if s.entity == d]
        e = np.array([s.E_state for s in xs])
        mean, sd = e.mean(), e.std()
        want += [(d[4:], s.ts_ms) for s in xs if abs(s.E_state - mean) > 3 * sd]
    assert sorted((r["dac"], r["ts"]) for r in got) == sorted(want)
    assert {d for d, _ in want} == {"d2", "d5"}  # the two planted spikes


def test_co_deployment_matches_python(graph):
    atlas, _, _, uses = graph
    got = atlas.query("co_deployment", limit=100)
    want = []
    for a in sorted(uses):
        for b in sorted(uses):
            if a < b and set(uses[a]) & set(uses[b]):
                want.append((a, b, len(set(uses[a]) & set(uses[b]))))
    want.sort(key=lambda t: (-t[2], t[0], t[1]))
    assert [(r["a"], r["b"], r["shared"]) for r in got] == want


def test_recording_is_idempotent_and_windows_delete(tmp_path):
    atlas = LadybugAtlas(tmp_path / "g")
    s = [EnergyState("dac:x", t, 1.0, 0.0, 0.5, "energy_history", "day") for t in (10, 20, 30)]
    assert atlas.record(s) == 3 and atlas.record(s + s) == 0
    assert atlas.delete_window(15, 31, source="energy_history") == 2
    assert [x.ts_ms for x in atlas.trajectory("dac:x")] == [10]
    # per-step states hang off the same DAC but never enter its trajectory
    assert atlas.record([EnergyState("step:x/lora_adapter", 12, 9.0, 0.0, 0.0, "lifecycle", "r")]) == 1
    assert [x.ts_ms for x in atlas.trajectory("dac:x")] == [10]
    assert atlas.run("MATCH (:DAC {id: 'x'})-[:HAS_STEP_STATE]->(e) RETURN e.E AS E") == [{"E": 9.0}]
    with pytest.raises(ValueError, match="expected dac:<id>"):
        atlas.record([EnergyState("pod:y", 1, 1.0, 0.0, 0.0, "x", "r")])
    atlas.close()


def _lint(items):
    node = shutil.which("node")
    script = REPO / "tools" / "cypher" / "lint.mjs"
    if not node or not (REPO / "tools" / "node_modules" / "@neo4j-cypher").exists():
        pytest.fail("node and tools/node_modules are needed (make install sets them up)")
    r = subprocess.run(
        [node, str(script)],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO / "tools",
    )
    assert r.returncode == 0, r.stderr
    return {x["name"]: x["diagnostics"] for x in json.loads(r.stdout)}


def test_every_query_file_passes_neo4j_parser_offline():
    params = {
        "trajectory": trajectory_params("dac:a"),
        "optimal_service": {"capability": "x", "limit": 5} | window_params(),
        "anomalies": {"k": 3.0, "min_states": 5, "source": "lifecycle"} | window_params(),
        "co_deployment": {"limit": 5},
        "record_dac_states": {"rows": []},
        "record_service_states": {"rows": []},
        "record_step_states": {"rows": []},
        "log_healing": {
            "dac_id": "a",
            "id": "x",
            "issue": "i",
            "strategy": "s",
            "ok": True,
            "ts": 1,
            "details": "{}",
        },
        "healing_actions": {"dac_id": "a"},
    }
    items = [{"name": q, "query": load_query(q, "neo4j"), "parameters": p} for q, p in params.items()]
    items += [
        {"name": f"schema{i}", "query": s, "parameters": {}}
        for i, s in enumerate(statements(load_query("schema", "neo4j")))
    ]
    result = _lint(items)
    errors = {k: v for k, v in result.items() if any(d["severity"] == 1 for d in v)}
    assert errors == {}
    assert set(QUERIES) <= set(result)
    # the checker does catch mistakes: a typo and a parameter our code does not send
    bad = _lint(
        [
            {"name": "typo", "query": "MATCH (d:DAC RETURN d", "parameters": {}},
            {"name": "param", "query": load_query("trajectory", "neo4j"), "parameters": {"dac_id": "a"}},
        ]
    )
    assert any(d["severity"] == 1 for d in bad["typo"])
    assert any("$since_ms" in d["message"] for d in bad["param"])


class _FakeDriver:
    def __init__(self, answers):
        self.calls, self.answers = [], list(answers)

    def execute_query(self, query, params, database_=None):
        self.calls.append((query, params, database_))
        return self.answers.pop(0), None, None


def test_neo4j_parameters_and_result_mapping():
    rows = [{"ts": 5, "E": 2.0, "dE_dt": 0.5, "S": 0.1, "source": "lifecycle", "run_id": "r"}]
    drv = _FakeDriver([rows, [{"created": 1}], [{"created": 1}], [{"created": 1}]])
    atlas = Neo4jAtlas("bolt://x", "u", "p", database="atlas", driver=drv)
    assert atlas.trajectory("dac:a", 1, 10) == [EnergyState("dac:a", 5, 2.0, 0.5, 0.1, "lifecycle", "r")]
    q, p, db = drv.calls[0]
    assert q == load_query("trajectory", "neo4j") and db == "atlas"
    assert p == {"dac_id": "a", "since_ms": 1, "until_ms": 10}
    n = atlas.record(
        [
            EnergyState("dac:a", 1, 1.0, 0.0, 0.0, "s", "r"),
            EnergyState("step:a/lora", 2, 1.0, 0.0, 0.0, "s", "r"),
            EnergyState("service:k", 3, 1.0, 0.0, 0.0, "s", "r"),
        ]
    )
    assert n == 3
    (q1, p1, _), (q2, p2, _), (q3, p3, _) = drv.calls[1:]
    assert "HAS_STATE" in q1 and "HAS_STEP_STATE" in q2 and "(d:Service" in q3
    assert [r["owner"] for r in p1["rows"] + p2["rows"] + p3["rows"]] == ["a", "a", "k"]
    assert p2["rows"][0]["id"] == "step:a/lora|s|r|2" and math.isclose(p3["rows"][0]["E"], 1.0)
