"""M2N2 operators against hand-computed cases (issue #20)."""

import numpy as np
import pytest

from iv_pipelines.fleet import m2n2


def _blocks(*arrays):
    return {f"b{i}": np.asarray(a, np.float32) for i, a in enumerate(arrays)}


def test_w_one_with_the_split_at_the_end_returns_the_first_parent():
    a = _blocks([[1.0, 2.0], [3.0, 4.0]], [5.0, 6.0, 7.0])
    b = _blocks([[9.0, 9.0], [9.0, 9.0]], [0.0, 0.0, 0.0])
    child = m2n2.crossover(a, b, w=1.0, split={"b0": 4, "b1": 3})
    for k in a:
        np.testing.assert_array_equal(child[k], a[k])
    # the mirror case: w = 1 with the split at the start is the second parent
    child = m2n2.crossover(a, b, w=1.0, split={"b0": 0, "b1": 0})
    for k in b:
        np.testing.assert_array_equal(child[k], b[k])


def test_crossover_mixes_each_side_of_the_split_by_hand():
    a, b = _blocks([1.0, 2.0, 3.0, 4.0]), _blocks([0.0, 0.0, 0.0, 0.0])
    # before index 2: 0.75 a + 0.25 b; from 2 on: 0.25 a + 0.75 b
    child = m2n2.crossover(a, b, w=0.75, split={"b0": 2})
    np.testing.assert_allclose(child["b0"], [0.75, 1.5, 0.75, 1.0])
    with pytest.raises(ValueError, match="outside"):
        m2n2.crossover(a, b, w=1.5, split={"b0": 2})
    with pytest.raises(ValueError, match="differ in blocks"):
        m2n2.crossover(a, {"other": np.zeros(4)}, w=0.5, split={"b0": 1})


def test_truncate_and_factor_keep_a_rank_r_delta_and_drop_the_rest():
    rng = np.random.default_rng(0)
    low = rng.normal(size=(8, 2)) @ rng.normal(size=(2, 6))  # rank 2
    np.testing.assert_allclose(m2n2.truncate(low, 2), low, atol=1e-5)
    a, b = m2n2.factor(low, rank=4, scaling=2.0)
    assert a.shape == (4, 6) and b.shape == (8, 4)
    np.testing.assert_allclose(b @ a * 2.0, low, atol=1e-5)
    # a mix of two rank-2 deltas has rank 4; truncating to 2 keeps the two largest directions
    mix = low + 0.1 * (rng.normal(size=(8, 2)) @ rng.normal(size=(2, 6)))
    assert np.linalg.matrix_rank(m2n2.truncate(mix, 2), tol=1e-4) == 2


def test_a_model_that_alone_solves_some_windows_survives_replacement():
    # windows 0-9; m0 and m1 solve 0-5 (accuracy 0.6), m2 only 8 and 9 (0.2), the child 0-6
    s = np.zeros((3, 10))
    s[0, :6] = s[1, :6] = 1
    s[2, 8:] = 1
    child = np.zeros(10)
    child[:7] = 1
    # shared windows 0-5 are worth 1/3 each: fitness m0 = m1 = 2, m2 = 2 (its windows alone),
    # child = 2 + 1 (window 6 alone) = 3; the least fit is m0 (first of the tie), not m2
    ext = np.vstack([s, child])
    np.testing.assert_allclose(m2n2.fitness(ext), [2.0, 2.0, 2.0, 3.0])
    assert m2n2.update_archive(s, child) == 0
    assert s.mean(1).argmin() == 2  # by accuracy alone m2 would have gone
    # a child no better than the least fit member is not kept
    assert m2n2.update_archive(s, np.zeros(10)) is None


def test_attraction_picks_the_complementary_parent():
    s = np.zeros((3, 10))
    s[0, :5] = s[1, :5] = 1  # two models strong on the same windows
    s[2, 5:] = 1  # one strong exactly where they are weak
    att = m2n2.attraction(s, first=0)
    assert att[1] == 0 and att[2] > 0
    rng = np.random.default_rng(0)
    pairs = [m2n2.pick_parents(s, rng) for _ in range(200)]
    assert all(second == 2 for first, second in pairs if first in (0, 1))
    assert all(first != second for first, second in pairs)


def test_search_keeps_the_archive_size_and_only_improving_children():
    rng = np.random.default_rng(1)
    target = rng.normal(size=(6, 6)).astype(np.float32)
    members = [{"w": m2n2.truncate(target + rng.normal(size=(6, 6)), 2)} for _ in range(4)]

    def score(b):  # per-"window" score: closeness of each entry to the target
        return np.exp(-np.abs(b["w"] - target)).ravel()

    res = m2n2.search(members, ["a", "b", "c", "d"], score, rank=2, low_rank={"w"}, iterations=30, seed=0)
    assert len(res.archive) == 4 and res.scores.shape == (4, 36)
    assert 0 < res.children_kept <= 30
    # a kept child is only ever replaced by a later child: merges stay in the archive
    assert any(n.startswith("merge-") for n in res.names)
    for i, m in enumerate(res.archive):  # every member's scores are its own
        np.testing.assert_allclose(res.scores[i], score(m))
