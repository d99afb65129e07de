"""Drift statistics (issue #18, item 3): the permutation test keeps its false-alarm rate on
samples of one distribution and finds a shift; PSI points at the feature that moved; the
class-rate shift compares decision rates."""

import numpy as np
import pytest

from iv_pipelines.sensing.drift import class_rate_shift, measure, mmd_test, psi


def test_same_distribution_fires_at_about_alpha_and_a_shift_is_found():
    rng = np.random.default_rng(0)
    p_null = []
    for s in range(40):
        a = rng.normal(size=(60, 4))
        b = rng.normal(size=(60, 4))
        p_null.append(mmd_test(a, b, permutations=99, seed=s)[1])
    # exchangeable samples: p is (discretely) uniform, so p < 0.05 in about 5% of 40 tests
    assert sum(p < 0.05 for p in p_null) <= 6
    assert 0.3 < float(np.mean(p_null)) < 0.7
    a = rng.normal(size=(60, 4))
    b = rng.normal(size=(60, 4))
    b[:, 2] += 1.0  # one feature moves by one standard deviation
    mmd2, p, _ = mmd_test(a, b, permutations=199)
    assert p < 0.01 and mmd2 > 0


def test_psi_points_at_the_feature_that_moved():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 3))
    b = rng.normal(size=(500, 3))
    b[:, 1] = b[:, 1] * 2 + 1
    per = psi(a, b)
    assert int(np.argmax(per)) == 1 and per[1] > 0.25 and per[0] < 0.1 and per[2] < 0.1
    res = measure(a, b, permutations=49)
    assert res.psi_top[0][0] == 1 and res.drifted(0.05)


def test_bad_samples_are_refused():
    with pytest.raises(ValueError, match="same d"):
        mmd_test(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(ValueError, match="at least 5"):
        mmd_test(np.zeros((3, 2)), np.zeros((10, 2)))


def test_class_rate_shift():
    same = class_rate_shift({"walk": 50, "fall": 50}, {"walk": 48, "fall": 52})
    assert same["total_variation"] == pytest.approx(0.02) and same["p_value"] > 0.5
    moved = class_rate_shift({"walk": 90, "fall": 10}, {"walk": 50, "fall": 50})
    assert moved["total_variation"] == pytest.approx(0.4) and moved["p_value"] < 1e-6
