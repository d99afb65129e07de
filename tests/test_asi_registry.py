"""ASI registry: registration, AND/OR discovery ranked by TTF cost, health after N probes."""

import pytest

from iv_pipelines.mesh.registry import AsiRegistry, QueryError, parse_query


@pytest.fixture
def reg(db_url):
    r = AsiRegistry(db_url)  # SQLite and PostgreSQL (conftest.db_url)
    r.register_service(
        "acme-fall",
        "edge",
        "inference",
        ["wifi_sensing", "fall_detection", "zk_proof"],
        ["http://127.0.0.1:9001"],
        E_state=40.0,
        dE_dt=1.0,
        S_state=0.5,
    )
    r.register_service(
        "globex-fall",
        "aws",
        "inference",
        ["wifi_sensing", "fall_detection"],
        ["http://10.0.0.2"],
        E_state=10.0,
    )
    r.register_service(
        "hooli-presence",
        "gcp",
        "sensing",
        ["wifi_sensing", "presence", "zk_proof"],
        ["http://10.0.0.3"],
        E_state=5.0,
        dE_dt=-20.0,
    )
    yield r
    r.engine.dispose()


def test_and_or_queries_and_ranking(reg):
    names = lambda q: [m.name for m in reg.discover(q)]  # noqa: E731
    assert names("wifi_sensing AND fall_detection AND zk_proof") == ["acme-fall"]
    assert names("wifi_sensing AND fall_detection") == ["globex-fall", "acme-fall"]  # cheaper first
    # hooli's trend is negative: its cost is floored, not negative, and it ranks first
    assert names("zk_proof AND (fall_detection OR presence)") == ["hooli-presence", "acme-fall"]
    assert names("presence OR fall_detection AND zk_proof") == [
        "hooli-presence",
        "acme-fall",
    ]  # AND binds tighter
    assert names("breathing") == []


@pytest.mark.parametrize(
    "q, msg",
    [
        ("", "empty"),
        ("a AND", "at the end"),
        ("(a OR b", "missing ')'"),
        ("a b", "unexpected 'b' at position 2"),
        ("a AND OR b", "position 6"),
    ],
)
def test_bad_queries_name_the_problem(q, msg):
    with pytest.raises(QueryError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        parse_query(q)


def test_registration_is_idempotent_and_validated(reg):
    sid = reg.register_service(
        "acme-fall",
        "edge",
        "inference",
        ["wifi_sensing", "fall_detection", "zk_proof"],
        ["http://127.0.0.1:9001"],
        E_state=40.0,
    )
    assert sid == reg.register_service("acme-fall", "edge", "inference", ["wifi_sensing"], [])
    [m] = reg.discover("fall_detection AND zk_proof")
    assert m.healthy_instances == ["http://127.0.0.1:9001"]
    with pytest.raises(ValueError, match="capability names"):
        reg.register_service("x", "aws", "inference", ["Bad Name"])


def test_instance_unhealthy_after_n_failed_probes_and_recovers(reg):
    url = "http://10.0.0.2"
    assert reg.record_probe(url, False) == [] and reg.record_probe(url, False) == []
    assert reg.record_probe(url, False) == [url]  # third failure: replace it
    assert reg.record_probe(url, False) == []  # reported once
    assert [m.name for m in reg.discover("fall_detection")] == ["acme-fall"]  # no healthy instance left
    reg.record_probe(url, True)
    assert [m.name for m in reg.discover("fall_detection")] == ["globex-fall", "acme-fall"]


def test_health_monitor_hands_unhealthy_instances_to_healing(reg):
    from iv_pipelines.mesh.registry import probe_all

    down = {"http://10.0.0.2"}
    healed = []
    for _ in range(3):
        out = probe_all(reg, lambda name, url: healed.append((name, url)), probe=lambda url: url not in down)
    assert out["probed"] == 3 and out["failed"] == 1  # three http instances, one down
    assert healed == [("globex-fall", "http://10.0.0.2")]  # handed over once, after the third failure


def test_http_probe_of_a_closed_port_is_a_failure():
    from iv_pipelines.deploy.targets import free_port
    from iv_pipelines.mesh.registry import http_probe

    assert http_probe(f"http://127.0.0.1:{free_port()}", timeout=0.5) is False


def _register_many(url: str, worker: int, n: int) -> str:
    """One process's writes: its own services, and the one every worker registers."""
    r = AsiRegistry(url)
    try:
        for i in range(n):
            r.register_service(
                f"w{worker}-svc{i}", "edge", "inference", ["fall_detection"], [f"http://w{worker}/{i}"]
            )
            r.register_service(
                "shared-ledger",
                "edge",
                "ledger",
                ["ledger", f"w{worker}"],
                [f"http://w{worker}", "http://all"],
            )
        return "ok"
    except Exception as e:  # reported back: the assertion names it
        return f"{type(e).__name__}: {e}"[:300]
    finally:
        r.engine.dispose()


def test_concurrent_registrations_from_several_processes_lose_nothing(db_url):
    """Lifecycle runs register their capsules at the same time (issue #19): four processes
    writing at once, each its own services plus one shared name, on SQLite and PostgreSQL —
    no error ("database is locked", a duplicate name), no write lost, the shared service once."""
    import multiprocessing as mp

    AsiRegistry(db_url).engine.dispose()  # the schema, before the writers race to create it
    with mp.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(_register_many, [(db_url, w, 15) for w in range(4)])
    assert results == ["ok"] * 4, results
    r = AsiRegistry(db_url)
    try:
        assert r.count_services() == 4 * 15 + 1
        [shared] = [m for m in r.discover("ledger") if m.name == "shared-ledger"]
        # every worker's capability and instance once, the one they all add once
        assert sorted(shared.healthy_instances) == ["http://all"] + [f"http://w{w}" for w in range(4)]
        assert shared.capabilities == ["ledger", "w0", "w1", "w2", "w3"]
    finally:
        r.engine.dispose()
