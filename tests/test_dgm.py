"""DGM evolution with a deterministic stand-in evaluator (the real scorer is tested elsewhere)."""

import math

import numpy as np
import pytest

from iv_pipelines.discovery.dgm import evolve, parent_weight
from iv_pipelines.discovery.generator import TemplateGenerator
from iv_pipelines.request import parse_request_text


def test_parent_weight_formula():
    assert parent_weight(0.5, 0, 10) == pytest.approx(0.5)
    assert parent_weight(0.9, 0, 10) == pytest.approx(1 / (1 + math.exp(-4)))
    assert parent_weight(0.9, 3, 10) == pytest.approx(parent_weight(0.9, 0, 10) / 4)
    assert parent_weight(0.9, 0, 1) < parent_weight(0.9, 0, 10)  # pk_alpha = steepness


def _evaluator(target_word: str):
    """Score = share of structured fields mentioning `target_word` (a stand-in objective)."""

    def evaluate(hyps):
        s = np.array(
            [
                sum(target_word in getattr(h, f) for f in ("task", "approach", "data", "target_metric")) / 4
                for h in hyps
            ]
        )
        raw = np.stack([s] * 4, axis=1)
        return raw, raw, s, s

    return evaluate


@pytest.fixture
def req(sample_request_text):
    return parse_request_text(sample_request_text)


def test_evolution_reaches_threshold_and_records_iterations(req):
    g = TemplateGenerator()
    initial = g.propose(req, 2, seed=2)  # neither mentions CSI in a field: evolution has work to do
    res = evolve(g, req, _evaluator("CSI"), initial, threshold=0.75, budget=30, seed=0)
    assert res.passed and res.best.score >= 0.75 and res.iterations > 0
    assert res.iterations_to_threshold == res.iterations
    assert res.history == sorted(res.history)  # the best never gets worse
    assert len(res.archive) > len(initial)
    assert all(c.parent is not None for c in res.archive if c.iteration > 0)


def test_evolution_stops_at_budget(req):
    g = TemplateGenerator()
    res = evolve(g, req, _evaluator("no-such-word"), g.propose(req, 2, seed=0), threshold=0.5, budget=3)
    assert not res.passed and res.iterations == 3 and res.iterations_to_threshold is None


def test_evolution_is_deterministic(req):
    g = TemplateGenerator()
    a = evolve(g, req, _evaluator("CSI"), g.propose(req, 2, seed=1), threshold=0.99, budget=4, seed=7)
    b = evolve(g, req, _evaluator("CSI"), g.propose(req, 2, seed=1), threshold=0.99, budget=4, seed=7)
    assert [c.hypothesis.text for c in a.archive] == [c.hypothesis.text for c in b.archive]


def test_initial_pass_needs_no_iterations(req):
    g = TemplateGenerator()
    res = evolve(g, req, _evaluator(""), g.propose(req, 2, seed=0), threshold=0.5, budget=5)
    assert res.iterations == 0 and res.iterations_to_threshold == 0
