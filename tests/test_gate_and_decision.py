"""The adapter gate is a paired test; the capsule's decision uses a calibrated fall threshold;
simulated evidence never verifies a client's accuracy constraint."""

import numpy as np
import pytest

from iv_pipelines.sensing.evaluate import FALL, choose_fall_threshold, decide, decision_metrics
from iv_pipelines.sensing.gate import compare, mcnemar_exact


def test_mcnemar_matches_the_binomial_reference():
    from scipy.stats import binomtest

    for a, b in [(0, 0), (3, 0), (10, 2), (7, 9), (40, 25)]:
        ref = 1.0 if a + b == 0 else binomtest(min(a, b), a + b, 0.5).pvalue
        assert mcnemar_exact(a, b) == pytest.approx(ref, rel=1e-9)


def _pair(n, acc_a, acc_b, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random(n) < acc_a
    b = rng.random(n) < acc_b
    return a, b, np.where(a, 0.1, 2.0), np.where(b, 0.1, 2.0)


def test_a_noise_sized_difference_is_not_a_verdict():
    # the situation of the issue: 0.990 vs 0.993 on a few hundred windows
    a = np.ones(600, bool)
    a[:6] = False
    b = np.ones(600, bool)
    b[[10, 20, 30, 40]] = False
    c = compare(a, b, np.zeros(600), np.zeros(600))
    assert c.verdict in ("non-inferior", "inconclusive") and c.mcnemar_p > 0.05


def test_a_real_improvement_is_better_and_a_real_loss_is_worse():
    a, b, na, nb = _pair(800, 0.95, 0.80)
    assert compare(a, b, na, nb).verdict == "better"
    assert compare(b, a, nb, na).verdict == "worse"
    assert "McNemar" in compare(a, b, na, nb).sentence()


def test_compare_needs_the_same_windows():
    with pytest.raises(ValueError, match="same non-empty set"):
        compare(np.ones(3, bool), np.ones(4, bool), np.zeros(3), np.zeros(4))


def test_decision_uses_the_fall_threshold_then_the_other_classes():
    p = np.array([[0.5, 0.1, 0.1, 0.3], [0.1, 0.3, 0.2, 0.4], [0.1, 0.6, 0.05, 0.25]])
    assert list(decide(p, 0.35)) == [0, FALL, 1]
    assert list(decide(p, 0.5)) == [0, 1, 1]  # row 2: fall is not called; walk is the best other


def test_fall_threshold_meets_the_false_alarm_target_on_every_set():
    rng = np.random.default_rng(0)
    sim, real = rng.beta(1, 20, 500), rng.beta(2, 6, 60)  # the real device's walking looks fall-ier
    t = choose_fall_threshold([sim, real], 0.05)
    assert (sim >= t).mean() <= 0.05 and (real >= t).mean() <= 0.05
    assert t > choose_fall_threshold([sim], 0.05)


def test_a_set_too_small_to_certify_the_target_never_lowers_the_threshold_below_one_half():
    """8 real walking windows cannot vouch for a 2 % false-alarm rate: the threshold clears
    their largest P(fall) but does not drop below 0.5 on their word; a set large enough to
    certify the target may set it lower."""
    quiet_real = np.array([0.01, 0.02, 0.05, 0.03, 0.02, 0.04, 0.01, 0.06])
    assert choose_fall_threshold([quiet_real], 0.02) == pytest.approx(0.5, abs=1e-5)
    assert choose_fall_threshold([np.append(quiet_real, 0.7)], 0.02) == pytest.approx(0.7, abs=1e-5)
    big = np.random.default_rng(1).beta(1, 40, 400)
    assert choose_fall_threshold([big], 0.02) < 0.5


def test_decision_metrics_report_decisions_and_presence():
    y = np.array([0, 0, 1, 3])
    p = np.array(
        [[0.9, 0.05, 0.03, 0.02], [0.3, 0.6, 0.05, 0.05], [0.1, 0.8, 0.05, 0.05], [0.1, 0.2, 0.1, 0.6]]
    )
    m = decision_metrics(p, y, 0.5)
    assert m["accuracy"] == 0.75 and m["recall_fall"] == 1.0
    assert m["empty_called_empty"] == 0.5 and m["occupied_called_nonempty"] == 1.0
    assert m["fall_false_alarm_rate"] == 0.0


def _evidence(real: bool, n_real: int = 400):
    sim = {"data": "simulated", "accuracy": 0.97, "fall_false_alarm_rate": 0.01, "n": 600, "n_fall": 150}
    dev = (
        {"data": "real held-out", "accuracy": 0.91, "fall_false_alarm_rate": 0.05, "n": n_real}
        if real
        else None
    )
    return {
        "decision": {"fall_threshold": 0.6, "target_false_alarm_rate": 0.02},
        "simulation": sim,
        "client_device": dev,
        "public_real": None,
        "validated_on": "client_device" if real else "simulation_only",
    }


def test_simulation_only_dac_reports_min_accuracy_unverified_and_the_shield_blocks():
    from iv_pipelines.packaging.dac import measured_constraints
    from iv_pipelines.request import DacRequest
    from iv_pipelines.shield.decision import Evidence
    from iv_pipelines.shield.decision import decide as shield_decide

    base = {
        "client_id": "acme-healthcare",
        "domain": "wifi-sensing",
        "text": "Detect falls of elderly people living alone",
        "environment": {"description": "a flat"},
        "constraints": {"min_accuracy": 0.95, "max_false_alarm_rate": 0.02},
    }
    meas = {"peak_rss_mib": 200, "wall_seconds_per_window": 0.01}
    req = DacRequest.model_validate(base)
    constraints, unverified = measured_constraints(req, _evidence(False), meas)
    assert constraints == [] and len(unverified) == 2
    assert all("unverified" in u and "simulated" in u for u in unverified)

    def shield(constraints, unverified, validated_on):
        return shield_decide(
            Evidence(0.97, True, 0.97, True, True, {"p": True}, constraints, [], validated_on, unverified)
        )

    d = shield(constraints, unverified, "simulation_only")
    assert not d.approved and any("unverified" in r for r in d.reasons)
    # a request that accepts simulated evidence is judged on it, and says so
    ok_req = DacRequest.model_validate(base | {"accept_simulation_evidence": True})
    c2, u2 = measured_constraints(ok_req, _evidence(False), meas)
    assert not u2 and [c[0] for c in c2] == [
        "min_accuracy (simulated client room)",
        "max_false_alarm_rate (simulated client room)",
    ]
    assert shield(c2, u2, "simulation_only").approved
    # real held-out captures decide when they exist: 400 windows miss both constraints beyond
    # noise; 40 windows miss them by less than their 95 % interval, which is said, not hidden
    c3, u3 = measured_constraints(req, _evidence(True), meas)
    assert not u3 and c3[0][1] == 0.91
    d3 = shield(c3, u3, "client_device")
    assert not d3.approved and sum("REJECT: client constraint" in r for r in d3.reasons) == 2
    c4, _ = measured_constraints(req, _evidence(True, n_real=40), meas)
    d4 = shield(c4, [], "client_device")
    assert d4.approved and sum(r.startswith("uncertain") for r in d4.reasons) == 2


def test_constraint_violations_judge_the_decisive_evidence_with_its_noise():
    """The lora_adapter check's rule, without Dagster: a miss counts only when the whole 95 %
    interval is on the wrong side, on the evidence the DAC is validated on."""
    from types import SimpleNamespace

    from iv_pipelines.sensing.gate import accuracy_constraints, constraint_violations

    strict = SimpleNamespace(min_accuracy=0.99, max_false_alarm_rate=0.001)
    close = SimpleNamespace(min_accuracy=0.975, max_false_alarm_rate=None)
    # real captures decide: accuracy 0.91 of 400 misses 0.99 beyond noise; 0.05 FA of 400 misses 0.001
    missed = constraint_violations(strict, _evidence(True))
    assert [m.split(" ")[0] for m in missed] == ["min_accuracy", "max_false_alarm_rate"]
    assert "client_device" in missed[0]
    # simulation decides: 0.97 of 600 against 0.975 is within its noise -> not a violation
    assert constraint_violations(close, _evidence(False)) == []
    assert [r[0] for r in accuracy_constraints(close, _evidence(False))] == ["min_accuracy"]
    assert accuracy_constraints(strict, _evidence(False))[1][4] == 450  # false alarms over non-fall windows


def test_the_cluster_interval_widens_with_the_spread_between_clusters():
    from iv_pipelines.sensing.gate import cluster_interval

    same = [np.r_[np.ones(18), np.zeros(2)] for _ in range(6)]  # every lab 0.90
    spread = [np.ones(20)] * 3 + [np.r_[np.ones(16), np.zeros(4)]] * 2 + [np.r_[np.ones(8), np.zeros(12)]]
    lo_s, hi_s = cluster_interval(same)
    lo_d, hi_d = cluster_interval(spread)
    assert lo_s == hi_s == pytest.approx(0.9)  # no spread between labs: nothing to resample
    assert lo_d < 0.80 < 0.90 < hi_d <= 1.0  # pooled 0.833, one poor lab
    with pytest.raises(ValueError, match="non-empty cluster"):
        cluster_interval([np.zeros(0)])


def test_min_fall_recall_is_judged_on_real_falls_only_where_the_request_gave_some():
    """Fall recall comes from the client's device only when its evaluation captures hold real
    falls; otherwise it is the simulated room's, unverified for the Shield unless the request
    accepts simulated evidence — even when the DAC is validated on real non-fall captures."""
    from types import SimpleNamespace

    from iv_pipelines.packaging.dac import measured_constraints
    from iv_pipelines.request import DacRequest
    from iv_pipelines.sensing.gate import accuracy_constraints, constraint_violations

    c = SimpleNamespace(min_accuracy=None, max_false_alarm_rate=None, min_fall_recall=0.9)
    no_falls = _evidence(True) | {"simulation": _evidence(True)["simulation"] | {"recall_fall": 0.95}}
    [row] = accuracy_constraints(c, no_falls)
    assert row[5] == "simulation" and row[4] == 150  # the simulated room's 150 fall windows
    falls = no_falls | {"client_device": no_falls["client_device"] | {"recall_fall": 0.5, "n_fall": 40}}
    [row] = accuracy_constraints(c, falls)
    assert row[5] == "client_device" and row[4] == 40
    [miss] = constraint_violations(c, falls)  # 20 of 40 real falls: beyond noise under 0.9
    assert miss.startswith("min_fall_recall 0.9: measured 0.500") and "client_device" in miss
    assert constraint_violations(c, no_falls) == []  # 0.95 simulated meets it
    req = DacRequest.model_validate(
        {
            "client_id": "acme-healthcare",
            "domain": "wifi-sensing",
            "text": "Detect falls of elderly people living alone",
            "environment": {"description": "a flat"},
            "constraints": {"min_fall_recall": 0.9},
        }
    )
    meas = {"peak_rss_mib": 200, "wall_seconds_per_window": 0.01}
    constraints, unverified = measured_constraints(req, no_falls, meas)
    assert constraints == [] and "give evaluation captures of real falls" in unverified[0]
    constraints, unverified = measured_constraints(req, falls, meas)
    assert not unverified and constraints[0][:2] == (
        "min_fall_recall (client device, held-out captures)",
        0.5,
    )
    assert "min_fall_recall" in req.canonical_dict()["constraints"]
    assert (
        "min_fall_recall"
        not in DacRequest.model_validate(req.model_dump() | {"constraints": {}}).canonical_dict()[
            "constraints"
        ]
    )
