"""Template generator, requester simulator, knowledge base."""

import random

import pytest

from iv_pipelines.discovery.generator import RequesterSimulator, TemplateGenerator, crossover, resolve_domain
from iv_pipelines.discovery.knowledge import knowledge_base
from iv_pipelines.request import parse_request_text


def test_knowledge_base_has_fifteen_domains_with_material():
    kb = knowledge_base()
    assert len(kb) >= 15
    for d in kb.values():
        assert len(d.tasks) >= 2 and len(d.approaches) >= 2 and len(d.facts) >= 2, d.name


def test_deterministic_per_seed_and_varied(sample_request_text):
    req = parse_request_text(sample_request_text)
    g = TemplateGenerator()
    a = g.propose(req, 6, seed=1)
    b = g.propose(req, 6, seed=1)
    c = g.propose(req, 6, seed=2)
    assert [h.text for h in a] == [h.text for h in b]
    assert [h.text for h in a] != [h.text for h in c]
    assert len({h.text for h in a}) == 6
    assert all(h.domain == "wifi-sensing" for h in a)


def test_guidance_is_woven_in(sample_request_text):
    req = parse_request_text(sample_request_text)
    hyps = TemplateGenerator().propose(req, 12, seed=0, guidance=["Calibrate on empty-room captures first"])
    assert any("Playbook: Calibrate on empty-room captures first" in h.text for h in hyps)


def test_mutation_and_crossover_change_fields(sample_request_text):
    req = parse_request_text(sample_request_text)
    g = TemplateGenerator()
    p, q = g.propose(req, 2, seed=0)
    rng = random.Random(0)
    child = g.mutate(p, req, rng)
    assert child.text != p.text and child.origin == "mutation"
    x = crossover(p, q, rng)
    for f in ("task", "approach", "data"):
        assert getattr(x, f) in (getattr(p, f), getattr(q, f))


def test_unknown_domain_resolves_by_words():
    req = parse_request_text(
        "client_id: acme\ndomain: fall-sensing\ntext: detect falls from wifi channel state information\n"
        "environment: {description: flat}\n"
    )
    assert resolve_domain(req).name == "wifi-sensing"


def test_requester_simulator_covers_domains():
    reqs = RequesterSimulator().requests(2, seed=0)
    assert {r.domain for r in reqs} == set(knowledge_base())
    assert len({r.text for r in reqs}) > len(reqs) * 0.8


def test_request_tasks_are_the_tasks_a_request_asks_for(sample_request_text, embedder):
    """The sample asks for fall detection: that task (and the activity recognition that includes
    falling) are asked for, breathing-rate estimation is not; a request for presence gets presence."""
    from iv_pipelines.discovery.generator import request_tasks

    req = parse_request_text(sample_request_text)
    dom = resolve_domain(req)
    asked = request_tasks(dom, req.text, embedder)
    assert "fall detection from CSI windows" in asked and "breathing-rate estimation" not in asked
    presence = request_tasks(
        dom, "Tell us whether anyone is present in the meeting room, from WiFi CSI", embedder
    )
    assert "presence detection in a room" in presence
    assert "breathing-rate estimation" not in presence
    # a request naming its task gets that task, even where the sentence cosine cannot tell (the
    # bathroom client's request is as close to presence detection as to fall detection)
    bathroom = (
        "Our grandmother lives alone: detect if she falls in the bathroom using WiFi sensing from an ESP32"
    )
    assert "presence detection in a room" not in request_tasks(dom, bathroom, embedder)
    from dataclasses import replace  # the cosine rule alone (no task words) lets presence in

    assert "presence detection in a room" in request_tasks(replace(dom, task_words=()), bathroom, embedder)
    assert "fall detection from CSI windows" in request_tasks(dom, bathroom, embedder)
    # a word must start with the task's word ("windfall" does not name a fall)
    assert request_tasks(dom, "Breathing monitoring of a sleeper", embedder) == ["breathing-rate estimation"]
    # naming no task: the cosine rule decides
    vague = request_tasks(
        dom, "Use the WiFi in the flat to keep an eye on grandma, windfall budget", embedder
    )
    assert vague and set(vague) <= set(dom.tasks)


def test_task_words_must_name_tasks_of_their_domain(monkeypatch):
    from iv_pipelines.discovery import knowledge

    raw = knowledge._read("domains.yaml")
    raw["domains"]["wifi-sensing"]["task_words"]["gait speed"] = ["gait"]
    monkeypatch.setattr(knowledge, "_read", lambda name: raw)
    knowledge.knowledge_base.cache_clear()
    try:
        with pytest.raises(ValueError, match="wifi-sensing: task_words names tasks it does not list"):
            knowledge.knowledge_base()
    finally:
        knowledge.knowledge_base.cache_clear()


def test_proposals_and_mutations_keep_to_the_tasks_asked_for(sample_request_text):
    """The template generator proposes (and mutates into) only the tasks the request asks for:
    before, it drew from every task of the domain and a fall-detection factory validated
    breathing-rate hypotheses (docs/lifecycle.md, Discovery)."""
    import random

    from iv_pipelines.discovery.generator import asked_tasks

    req = parse_request_text(sample_request_text)
    dom = resolve_domain(req)
    asked = set(asked_tasks(dom.name, req.text))
    assert asked and asked < set(dom.tasks)
    g = TemplateGenerator()
    hyps = g.propose(req, 40, seed=0)
    assert {h.task for h in hyps} <= asked and len(hyps) == 40
    rng = random.Random(0)
    children = [g.mutate(hyps[i % 40], req, rng) for i in range(200)]
    assert {c.task for c in children} <= asked
    parents = [hyps[i % 40] for i in range(200)]
    assert len(asked) == 1 or any(c.task != p.task for c, p in zip(children, parents, strict=True))
    # a null with no request still ranges over every task of its domain
    nulls = {g.unconditioned(random.Random(s)).task for s in range(300)}
    assert nulls - asked
