"""ACE memory: conflict-aware de-duplication, curator deltas, attempt log."""

import pytest

from iv_pipelines.memory.ace import AceMemory, Attempt, Delta, reflect
from iv_pipelines.memory.dedup import near_duplicate, negated, numbers


@pytest.fixture
def mem(db_url):
    m = AceMemory(db_url)  # SQLite and PostgreSQL (conftest.db_url)
    yield m
    m.engine.dispose()


def test_numbers_and_negation():
    assert numbers("raise batch to x100 at 2% loss") == ("2%", "x100")
    assert negated("do not use LoRA") and not negated("use LoRA")
    assert not negated("not without reason")  # double negation


@pytest.mark.parametrize(
    "a, b, same",
    [
        ("Scale the replay buffer x100 for stability", "Scale the replay buffer x1000 for stability", False),
        ("Use LoRA adapters per room", "Do not use LoRA adapters per room", False),
        ("Sample CSI at 100 Hz", "Sample CSI at 200 Hz", False),
        ("Use LoRA adapters per room", "use LoRA adapters per room.", True),
        (
            "Calibrate thresholds on empty-room captures",
            "Forecast feeder load with quantile regression",
            False,
        ),
    ],
)
def test_near_duplicate(a, b, same):
    assert near_duplicate(a, b) is same


def test_curator_merges_duplicates_but_not_conflicts(mem):
    counts = mem.curate(
        [
            Delta("add", "wifi-sensing", "Scale the replay buffer x100 for stability"),
            Delta("add", "wifi-sensing", "Scale the replay buffer x1000 for stability"),
            Delta("add", "wifi-sensing", "scale the replay buffer x100 for stability."),
            Delta("add", "energy-grid", "Scale the replay buffer x100 for stability"),
        ],
        source_dac="d1",
    )
    assert counts == {"added": 3, "merged": 1, "helpful": 0, "harmful": 0}
    wifi = {b.text: b for b in mem.bullets("wifi-sensing")}
    assert wifi["Scale the replay buffer x100 for stability"].helpful == 2
    assert wifi["Scale the replay buffer x1000 for stability"].helpful == 1


def test_counters_and_guidance_order(mem):
    mem.curate([Delta("add", "d", "Advice A"), Delta("add", "d", "Advice B about sensors")], source_dac="x")
    mem.curate(
        [
            Delta("harmful", "d", "Advice A"),
            Delta("harmful", "d", "Advice A"),
            Delta("helpful", "d", "Advice B about sensors"),
        ],
        source_dac="y",
    )
    assert mem.guidance("d") == ["Advice B about sensors"]  # A is net negative
    assert mem.guidance("d", exclude_dac="x") == []  # bullets learned from x are hidden from x
    with pytest.raises(ValueError, match="unknown delta op"):
        mem.curate([Delta("delete", "d", "Advice A")])


def test_record_attempts_is_idempotent_and_feeds_novelty_bank(mem):
    trace = [
        Attempt(0, "h1", "text one", {"percentiles": {}}, 0.97, True, ()),
        Attempt(0, "h2", "text two", {"percentiles": {}}, 0.20, False, ()),
    ]
    mem.record_attempts("dac-a", "wifi-sensing", trace, request_text="first wording")
    mem.record_attempts("dac-a", "wifi-sensing", trace, request_text="Detect falls in the bedroom")
    mem.record_attempts("dac-b", "wifi-sensing", trace)  # a DAC from before requests were kept
    mem.record_attempts("dac-c", "wifi-sensing", trace[1:], request_text="never validated")
    ranked = [
        Attempt(0, f"h{i}", f"t{i}", {"percentiles": {}}, v, True, ())
        for i, v in enumerate((0.96, 0.99, 0.97))
    ]
    mem.record_attempts("dac-d", "other-domain", ranked, request_text="ranked")
    assert mem.deliveries("other-domain")[0].validated == ("t1", "t2", "t0")  # best first
    assert len(mem.attempts_for("dac-a")) == 2
    got = mem.deliveries("wifi-sensing")
    assert [(d.dac_id, d.request_text, d.validated) for d in got] == [
        ("dac-a", "Detect falls in the bedroom", ("text one",)),  # the re-run replaced the text
        ("dac-b", None, ("text one",)),
    ]
    assert [d.dac_id for d in mem.deliveries("wifi-sensing", exclude_dac="dac-a")] == ["dac-b"]
    assert mem.deliveries("third-domain") == []


def test_reflector_deltas():
    trace = [
        Attempt(
            0,
            "a",
            "t",
            {"percentiles": {"AROE": 0.1, "AESP": 0.9, "QERO": 0.9, "AIEO": 0.9}},
            0.3,
            False,
            ("bad advice",),
            approach="x",
            task="y",
        ),
        Attempt(
            1, "b", "t2", {"percentiles": {}}, 0.99, True, ("good advice",), approach="LoRA", task="falls"
        ),
    ]
    deltas = reflect("wifi-sensing", trace, weakest=lambda a: "AROE")
    ops = [(d.op, d.text) for d in deltas]
    assert ("add", "For falls, LoRA passed validation") in ops
    assert ("harmful", "bad advice") in ops and ("helpful", "good advice") in ops
    assert any(op == "add" and "request" in text for op, text in ops)  # the AROE caution


def _write_many(url: str, worker: int, n: int) -> str:
    m = AceMemory(url)
    try:
        for i in range(n):
            m.record_attempts(
                f"dac-{worker}",
                "d",
                [Attempt(i, f"h{i}", f"worker {worker} try {i}", {}, 0.5, i % 2 == 0, ())],
            )
            m.curate(
                [Delta("add", "d", f"Worker {worker} lesson number {i} about sensor {worker * 100 + i}")],
                f"dac-{worker}",
            )
        return "ok"
    except Exception as e:
        return f"{type(e).__name__}: {e}"[:300]
    finally:
        m.engine.dispose()


def test_concurrent_runs_write_memory_without_errors_or_losses(db_url):
    """Lifecycle runs side by side (issue #19) write their attempt logs and playbook deltas at
    once: four processes, on SQLite and PostgreSQL — no error, every DAC's last attempt log
    intact, every distinct lesson kept."""
    import multiprocessing as mp

    AceMemory(db_url).engine.dispose()
    with mp.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(_write_many, [(db_url, w, 10) for w in range(4)])
    assert results == ["ok"] * 4, results
    m = AceMemory(db_url)
    try:
        for w in range(4):
            assert [a["text"] for a in m.attempts_for(f"dac-{w}")] == [f"worker {w} try 9"]
        assert len(m.bullets("d")) == 40
    finally:
        m.engine.dispose()
