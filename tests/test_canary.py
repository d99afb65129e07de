"""Canary and rollback (issue #18, item 6): the TTF router gives the candidate its share, the
decision is an unpaired interval with a stated margin, and the controller promotes or rolls
back real local capsules, each step in the deployment history (`iv dac history`)."""

import pytest

from iv_pipelines.deploy.canary import (
    CanaryController,
    CanaryRouter,
    DeploymentHistory,
    canary_decision,
    newcombe_difference,
)
from iv_pipelines.runtime.inference_log import InferenceLog
from iv_pipelines.storage import StorageLayout

CLASSES = ["empty", "walk", "sit", "fall"]


def test_the_router_gives_each_version_its_share():
    r = CanaryRouter(0.1)
    picks = [r.pick() for _ in range(1000)]
    assert r.served == [900, 100] and picks[:10].count(1) == 1  # spread, not bunched at the end
    costly = CanaryRouter(0.5)
    for _ in range(1000):
        costly.pick((1.0, 3.0))  # the candidate costs 3x the energy per window
    assert costly.served[1] == 250  # equal energy shares: a third of the windows... of 3x cost
    with pytest.raises(ValueError, match="share"):
        CanaryRouter(1.0)


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), example (a): 56/70 vs 48/80 -> difference 0.2, 95% CI 0.0575..0.3355
    d, lo, hi = newcombe_difference(56, 70, 48, 80)
    assert (
        d == pytest.approx(0.2)
        and lo == pytest.approx(0.0524, abs=2e-3)
        and hi == pytest.approx(0.3339, abs=2e-3)
    )


def test_the_decision_needs_evidence_and_states_its_margin():
    good, bad = [True] * 96 + [False] * 4, [True] * 20 + [False] * 30
    d = canary_decision(production=good, candidate=[True] * 98 + [False] * 2, started_at=0, now=10)
    assert d.decision == "promote" and "margin 0.05" in d.reason and d.evidence["ci95"][0] > -0.05
    # the same accuracies on 50 labels each: the interval is too wide to promote yet
    d = canary_decision(production=good[:50], candidate=[True] * 49 + [False], started_at=0, now=10)
    assert d.decision == "wait" and d.evidence["ci95"][0] < -0.05
    d = canary_decision(production=good, candidate=bad, started_at=0, now=10)
    assert d.decision == "rollback" and d.reason.startswith("significantly worse")
    d = canary_decision(production=good[:10], candidate=[True] * 10, started_at=0, now=10)
    assert d.decision == "wait"  # too few labels to promote
    d = canary_decision(production=good[:10], candidate=[True] * 10, started_at=0, now=8 * 86400)
    assert d.decision == "rollback" and "no decision after 7 days" in d.reason


def _label(log_dir, n_right, n_wrong, at0):
    log = InferenceLog(log_dir, CLASSES, sample=1.0)
    for i in range(n_right + n_wrong):
        wid = log.record("esp", "walk", [0, 1, 0, 0])
        log.add_feedback(wid, "walk" if i < n_right else "fall", "nurse", now=at0 + i)


@pytest.mark.parametrize("candidate_right,expected", [(148, "promote"), (40, "rollback")])
def test_a_canary_is_promoted_or_rolled_back_on_real_capsules(
    small_package, tmp_path, candidate_right, expected
):
    import time

    from click.testing import CliRunner

    from iv_app.cli import main
    from iv_pipelines.deploy.targets import LocalDeployer

    _root, _key, pkg, _ = small_package
    layout = StorageLayout(tmp_path / "iv")
    dep = LocalDeployer(layout.deployments_dir())
    hist = DeploymentHistory(layout, pkg.dac_id)
    rec = dep.deploy(
        pkg.directory,
        pkg.dac_id,
        "1.0.0",
        env={"IV_INFERENCE_LOG_DIR": str(layout.inference_log_dir(pkg.dac_id))},
    )
    layout.deployment_file(pkg.dac_id).write_text(f'{{"url": "{rec.url}", "version": "1.0.0"}}')
    hist.record("deployed", "1.0.0", "lifecycle run")
    ctl = CanaryController(layout, dep)
    try:
        st = ctl.start(pkg.dac_id, pkg.directory, "1.1.0", share=0.2, reason="drift")
        assert hist.aliases() == {"production": "1.0.0", "candidate": "1.1.0", "previous": None}
        assert dep.status(f"{pkg.dac_id}--candidate")["ready"]
        with pytest.raises(RuntimeError, match="already has a canary"):
            ctl.start(pkg.dac_id, pkg.directory, "1.2.0")
        # the edge forwarder's routing: a fifth of the windows go to the candidate
        urls = [ctl.route("esp", (rec.url, pkg.dac_id))[0] for _ in range(100)]
        assert urls.count(st["url"]) == 20 and urls.count(rec.url) == 80
        assert ctl.route("esp", ("http://x", "other-dac")) == ("http://x", "other-dac")
        now = time.time()
        _label(layout.inference_log_dir(pkg.dac_id), 147, 3, now)  # production: 147 of 150 right
        _label(st["log_dir"], candidate_right, 150 - candidate_right, now)
        d = ctl.evaluate(pkg.dac_id)
        assert d.decision == expected, d.reason
        assert not dep.status(f"{pkg.dac_id}--candidate").get("ready")  # the candidate instance is gone
        assert ctl.state(pkg.dac_id) is None
        a = hist.aliases()
        if expected == "promote":
            assert a == {"production": "1.1.0", "candidate": None, "previous": "1.0.0"}
            assert dep.status(pkg.dac_id)["ready"] and layout.deployment(pkg.dac_id)["version"] == "1.1.0"
        else:
            assert a == {"production": "1.0.0", "candidate": None, "previous": None}
            assert layout.deployment(pkg.dac_id)["url"] == rec.url  # production untouched
        r = CliRunner().invoke(
            main, ["dac", "history", pkg.dac_id], env={"IV_STORAGE_ROOT": str(layout.root)}
        )
        assert r.exit_code == 0, r.output
        assert [ln.split()[2] for ln in r.output.splitlines()[:3]] == [
            "deployed",
            "canary_started",
            "promoted" if expected == "promote" else "rolled_back",
        ]
        assert "aliases: production=" in r.output
    finally:
        dep.stop(pkg.dac_id)
        dep.stop(f"{pkg.dac_id}--candidate")
