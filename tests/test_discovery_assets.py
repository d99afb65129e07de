"""Discovery assets in-process: request -> hypotheses -> validated_hypothesis with its gate."""

import json

import dagster as dg
import pytest

from defs.discovery import SCORE_CHECK, dac_request, hypotheses, shadow_twin_context, validated_hypothesis
from iv_pipelines.request import parse_request_text
from resources.discovery import (
    AceMemoryResource,
    EmbedderResource,
    HypothesisGeneratorResource,
    ScoringResource,
)


@pytest.fixture
def resources(storage, tmp_path):
    return {
        "storage": storage,
        "embedder": EmbedderResource(),
        "generator": HypothesisGeneratorResource(),
        "scoring": ScoringResource(),
        "ace": AceMemoryResource(url=f"sqlite:///{tmp_path / 'ace.sqlite'}"),
    }


def _calibration_asset(cal):
    @dg.asset(name="score_calibration", group_name="discovery")
    def score_calibration():
        return cal

    return score_calibration


def _run(resources, calibrated, sample_request_text, instance, run_config=None):
    cal, _ = calibrated
    resources["storage"].requests().put(parse_request_text(sample_request_text))
    if not instance.has_dynamic_partition("dac", "fall-detection-acme"):
        instance.add_dynamic_partitions("dac", ["fall-detection-acme"])
    cal_asset = _calibration_asset(cal)
    dg.materialize([cal_asset], instance=instance)
    return dg.materialize(
        [dac_request, shadow_twin_context, hypotheses, validated_hypothesis, cal_asset],
        selection=[dac_request, shadow_twin_context, hypotheses, validated_hypothesis],
        partition_key="fall-detection-acme",
        resources=resources,
        instance=instance,
        run_config=run_config,
        raise_on_error=False,
    )


def test_validated_hypothesis_passes_gate_and_records_ace(resources, calibrated, sample_request_text):
    instance = dg.DagsterInstance.ephemeral()
    result = _run(resources, calibrated, sample_request_text, instance)
    assert result.success
    outcome = result.output_for_node("validated_hypothesis")
    assert outcome.passed and outcome.validation_score >= 0.95
    assert set(outcome.percentiles) == {"AROE", "AESP", "QERO", "AIEO"}
    assert 0.0 <= outcome.ods <= 1.0
    md = result.asset_materializations_for_node("validated_hypothesis")[0].metadata
    assert md["validation_score"].value == pytest.approx(
        outcome.validation_score, abs=5e-5
    )  # shown to 4 decimals
    assert "| operator | raw | percentile |" in md["operators"].value
    checks = result.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [(SCORE_CHECK, True)]
    # what the UI shows (issue #15): the result first, floats rounded, tables not raw JSON,
    # the check naming its DAC, the metering observation logged before the materialization
    assert list(md)[:3] == ["validated_hypothesis_path", "hypothesis", "validation_score"]
    assert not {"cpu_seconds", "wall_seconds", "energy_j"} & set(md)
    assert all(len(repr(v.value).split(".")[-1]) <= 4 for v in md.values() if isinstance(v.value, float))
    assert md["ods_metrics"].value.startswith("| ASAL metric | raw | percentile vs the null set |")
    assert checks[0].metadata["dac_id"].value == "fall-detection-acme"
    assert checks[0].description.startswith("DAC fall-detection-acme: validation score")
    events = [e.event_type_value for e in result.all_events if e.step_key == "validated_hypothesis"]
    assert events.index("ASSET_OBSERVATION") < events.index("ASSET_MATERIALIZATION")
    stored = json.loads(
        (resources["storage"].root / "dacs" / "fall-detection-acme" / "validated_hypothesis.json").read_text()
    )
    assert stored["hypothesis"]["text"] == outcome.hypothesis.text
    # a new home: novelty against the request alone, and the request is kept for later DACs
    assert stored["novelty_memory"] == {"dacs": [], "request_cosine": None, "hypotheses": 0}
    assert "against the request only" in md["novelty_memory"].value
    # whether the hypothesis answers the task asked for is reported; the generator proposes only
    # those tasks, so it does
    check = stored["task_check"]
    assert check["matches"] == (check["task"] in check["request_tasks"]) == md["task_matches_request"].value
    assert check["matches"] is True
    # the proposals keep to those tasks, and the hypotheses asset shows them
    hmd = result.asset_materializations_for_node("hypotheses")[0].metadata
    assert hmd["request_tasks"].value == check["request_tasks"]
    assert all(h.task in check["request_tasks"] for h in result.output_for_node("hypotheses"))
    assert "fall detection from CSI windows" in check["request_tasks"]
    mem = resources["ace"].get()
    assert [d.dac_id for d in mem.deliveries("wifi-sensing") if d.request_text] == ["fall-detection-acme"]
    assert len(mem.attempts_for("fall-detection-acme")) == outcome.candidates_scored
    assert mem.bullets("wifi-sensing"), "the reflector/curator wrote playbook advice"

    # idempotent: the same inputs give the same hypothesis and the attempt log is replaced
    again = _run(resources, calibrated, sample_request_text, instance)
    assert again.output_for_node("validated_hypothesis").hypothesis.text == outcome.hypothesis.text
    assert len(mem.attempts_for("fall-detection-acme")) == outcome.candidates_scored


def test_failed_gate_blocks_and_says_why(resources, calibrated, sample_request_text):
    instance = dg.DagsterInstance.ephemeral()
    cal, _ = calibrated
    cal.threshold, saved = 0.9999, cal.threshold  # unreachable: every candidate must fail
    try:
        result = _run(
            resources,
            calibrated,
            sample_request_text,
            instance,
            run_config={"ops": {"validated_hypothesis": {"config": {"budget": 2}}}},
        )
    finally:
        cal.threshold = saved
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == SCORE_CHECK and not check.passed
    assert "< 0.9999" in check.metadata["why"].value
    outcome = result.output_for_node("validated_hypothesis")
    assert outcome.iterations == 2 and outcome.iterations_to_threshold is None


def test_stale_calibration_is_refused(resources, calibrated, sample_request_text):
    instance = dg.DagsterInstance.ephemeral()
    resources["scoring"] = ScoringResource(precision="bf16")  # calibration was built at fp32
    result = _run(resources, calibrated, sample_request_text, instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "re-materialize score_calibration" in failure.step_failure_data.user_failure_data.description
