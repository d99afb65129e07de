"""Telemetry analytics (polars): totals, malformed lines named, and the cost-anomaly scan
that reads only the bytes after its cursor, checked against a plain-Python reference."""

import json
import random
import statistics

import pytest

from iv_pipelines.telemetry import cost_anomalies, daily_totals, usage


def line(s, t, c, w=100.0):
    return json.dumps({"service": s, "ts_ms": t, "cpu_seconds": c, "wall_seconds": w}) + "\n"


def test_usage_and_daily_totals_skip_and_name_bad_lines(tmp_path):
    f = tmp_path / "capsules.jsonl"
    f.write_text(
        line("a", 10, 1.0)
        + "{not json\n"
        + "\n"
        + line("a", 20, 2.0)
        + json.dumps({"service": "b", "ts_ms": "soon", "cpu_seconds": 1, "wall_seconds": 1})
        + "\n"
        + line("b", 30, -1.0)
        + json.dumps({"service": "b", "ts_ms": 40})
        + "\n"
        + line("b", 50, 3.0, 10.0)
    )
    assert usage(f, 15) == {
        "a": {"cpu_seconds": 2.0, "wall_seconds": 100.0, "samples": 1},
        "b": {"cpu_seconds": 3.0, "wall_seconds": 10.0, "samples": 1},
    }
    assert usage(tmp_path / "none.jsonl", 0) == {}
    totals, problems = daily_totals([f], 0, 45)
    assert totals == {"a": {"cpu_seconds": 3.0, "wall_seconds": 200.0, "samples": 2}}
    assert [p.split(":")[:2] for p in problems] == [["capsules.jsonl", str(n)] for n in (2, 5, 6, 7)]
    (tmp_path / "empty.jsonl").write_text("")
    assert daily_totals([tmp_path / "empty.jsonl"], 0, 45) == ({}, [])


def reference(lines: list[dict], start_line: int, jump, min_rate, min_samples, history):
    """The sensor's previous algorithm: per service, the median of its previous samples."""
    past, out = {}, []
    for n, r in enumerate(lines):
        rate = r["cpu_seconds"] / r["wall_seconds"]
        prev = past.setdefault(r["service"], [])
        if n >= start_line and len(prev) >= min_samples:
            med = statistics.median(prev[-history:])
            if rate > jump * max(med, 1e-6) and rate > min_rate:
                out.append((r["service"], r["ts_ms"], round(rate, 9), round(med, 9)))
        prev.append(rate)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cost_anomalies_match_the_reference_tick_by_tick(tmp_path, seed):
    rng = random.Random(seed)
    rows = [
        {
            "service": rng.choice("abc"),
            "ts_ms": t,
            "cpu_seconds": rng.choice([5, 10, 12, 60]),
            "wall_seconds": 100.0,
        }
        for t in range(400)
    ]
    f = tmp_path / "capsules.jsonl"
    f.write_text("")
    kw = dict(jump=3.0, min_rate=0.05, min_samples=3, history=50)
    offset, got, done = 0, [], 0
    for chunk in (37, 100, 1, 262):  # ticks over a growing file
        with open(f, "a") as fh:
            fh.writelines(line(r["service"], r["ts_ms"], r["cpu_seconds"]) for r in rows[done : done + chunk])
        done += chunk
        found, offset = cost_anomalies(f, offset, **kw)
        got += [(a.service, a.ts_ms, round(a.rate, 9), round(a.median, 9)) for a in found]
        assert offset == f.stat().st_size
    assert got == reference(rows, 0, **kw) and got


def test_cost_anomalies_read_a_bounded_window_not_the_history(tmp_path):
    f = tmp_path / "capsules.jsonl"
    old = "".join(line("a", t, 10.0) for t in range(20_000))
    f.write_text(old + "{garbage in the old history\n")
    offset = f.stat().st_size
    with open(f, "a") as fh:
        fh.write(line("a", 20_000, 50.0))
    # a look-back of ~2 KB holds ~20 earlier samples: enough for the median, far from the file
    found, end = cost_anomalies(
        f, offset, jump=3.0, min_rate=0.05, min_samples=3, history=1000, look_back_bytes=2048
    )
    assert [(a.service, a.ts_ms, a.median) for a in found] == [("a", 20_000, 0.1)]
    assert end == f.stat().st_size


def test_cost_anomalies_wait_for_a_whole_line_and_survive_rotation(tmp_path):
    f = tmp_path / "capsules.jsonl"
    f.write_text("".join(line("a", t, 10.0) for t in range(5)))
    size = f.stat().st_size
    with open(f, "a") as fh:
        fh.write(line("a", 5, 50.0)[:20])  # being written
    kw = dict(jump=3.0, min_rate=0.05, min_samples=3, history=100)
    assert cost_anomalies(f, size, **kw) == ([], size)
    with open(f, "a") as fh:
        fh.write(line("a", 5, 50.0)[20:])
    found, end = cost_anomalies(f, size, **kw)
    assert [a.ts_ms for a in found] == [5] and end == f.stat().st_size
    f.write_text(line("a", 0, 10.0))  # rotated: shorter than the cursor -> start over
    assert cost_anomalies(f, end, **kw) == ([], f.stat().st_size)
    assert cost_anomalies(tmp_path / "missing.jsonl", 0, **kw) == ([], 0)
