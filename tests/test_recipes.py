"""The logic that used to live in asset bodies, now domain operations tested without
Dagster (issue #15): the lifecycle's Atlas states, the RDR queue, revenue recorded once."""

import json
from decimal import Decimal

from iv_pipelines.energy.signature import lifecycle_states, signature
from iv_pipelines.ops.rdr import enqueue, trends_table


def test_lifecycle_states_one_per_dac_and_per_step():
    steps = {
        "a": {"started_at_ms": 10, "energy_j": 4.0, "wall_seconds": 2.0, "cpu_seconds": 2.0, "run_id": "r1"},
        "b": {"started_at_ms": 30, "energy_j": 6.0, "wall_seconds": 0.0, "cpu_seconds": 1.0, "run_id": "r2"},
    }
    sig = signature(steps, "test")
    states = lifecycle_states("acme", steps, sig, "run")
    assert [(s.entity, s.ts_ms) for s in states] == [
        ("dac:acme", 30),
        ("step:acme/a", 10),
        ("step:acme/b", 30),
    ]
    assert states[0].E_state == sig.E_state and states[0].run_id == "run"
    assert states[1].dE_dt == 2.0 and states[2].dE_dt == 0.0 and states[2].run_id == "r2"


def test_rdr_queue_appends_each_dac_once_a_week(tmp_path):
    q = tmp_path / "rdr" / "queue.jsonl"
    first = enqueue(q, [{"dac_id": "a"}, {"dac_id": "b"}], "2026-W49")
    assert [e["dac_id"] for e in first] == ["a", "b"] and all(e["status"] == "queued" for e in first)
    assert enqueue(q, [{"dac_id": "a"}], "2026-W49") == []  # same week: not queued twice
    assert [e["dac_id"] for e in enqueue(q, [{"dac_id": "a"}], "2026-W50")] == ["a"]
    assert len(q.read_text().splitlines()) == 3
    table = trends_table({"wifi": {"per_month": {"2026-10": 1, "2026-11": 3}, "growth": 3.0}})
    assert table.splitlines()[2] == "| wifi | 1 | 3 | x3.0 |"


def test_revenue_is_recorded_once_per_month_and_amount(tmp_path):
    from iv_pipelines.ledger import revenue

    sent = []

    def fake_record(chain, period, amount, energy):
        sent.append((period, amount))
        return {"tx_hash": f"0x{len(sent):02d}"}

    orig = revenue.record_attribution
    revenue.record_attribution = fake_record
    try:
        rec = tmp_path / "acme.revenue.json"
        energy = {"utid:a": Decimal("1.5"), "utid:b": Decimal("0.5")}
        assert revenue.attribute_once(None, rec, "2026-11", 1000, energy) == ("0x01", True)
        assert revenue.attribute_once(None, rec, "2026-11", 1000, energy) == ("0x01", False)
        assert revenue.attribute_once(None, rec, "2026-11", 1200, energy) == ("0x02", True)
        assert sent == [("2026-11", 1000), ("2026-11", 1200)]
        assert json.loads(rec.read_text())["tx_hash"] == "0x02"
    finally:
        revenue.record_attribution = orig
