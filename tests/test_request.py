"""DacRequest validation and the request store."""

import json

import pytest

from iv_pipelines.errors import InputError
from iv_pipelines.intake import RequestStore
from iv_pipelines.request import DacRequest, parse_request_text


def test_sample_request_parses(sample_request_text):
    req = parse_request_text(sample_request_text)
    assert req.dac_id == "fall-detection-acme"
    assert req.client_id == "acme-healthcare"
    assert req.environment.room is not None and req.environment.room.width_m == 5.0
    assert req.constraints.max_false_alarm_rate == 0.02


def test_dac_id_defaults_from_domain_and_client():
    req = DacRequest.model_validate(
        {
            "client_id": "globex-manufacturing",
            "domain": "manufacturing-defect-detection",
            "text": "Detect surface defects on stamped parts",
            "environment": {"description": "press line 3"},
        }
    )
    assert req.dac_id == "manufacturing-defect-detection-globex"


def test_digest_is_stable_and_content_sensitive(sample_request_text):
    a = parse_request_text(sample_request_text)
    b = parse_request_text(sample_request_text)
    c = parse_request_text(sample_request_text.replace("within\n  seconds", "within a minute"))
    assert a.digest() == b.digest()
    assert a.digest() != c.digest()


def test_the_inference_log_setting_reaches_the_capsule_environment(sample_request_text, monkeypatch):
    """The client's `inference_log` wins over the deployer's IV_INFERENCE_LOG_* defaults; a
    request without one keeps its digest (its DAC keeps its identity) and the defaults."""
    import yaml

    from iv_pipelines.deploy.targets import inference_log_env

    plain = parse_request_text(sample_request_text)
    data = yaml.safe_load(sample_request_text) | {"inference_log": {"retention": "raw", "sample": 0.5}}
    raw = parse_request_text(json.dumps(data))
    assert "inference_log" not in plain.canonical_dict() and raw.digest() != plain.digest()
    monkeypatch.setenv("IV_INFERENCE_LOG_RETENTION", "none")
    monkeypatch.setenv("IV_INFERENCE_LOG_MAX_MB", "8")
    assert inference_log_env(plain.model_dump(mode="json"), "/d") == {
        "IV_INFERENCE_LOG_DIR": "/d",
        "IV_INFERENCE_LOG_RETENTION": "none",
        "IV_INFERENCE_LOG_MAX_MB": "8",
    }
    assert inference_log_env(raw.model_dump(mode="json"), "/d") == {
        "IV_INFERENCE_LOG_DIR": "/d",
        "IV_INFERENCE_LOG_RETENTION": "raw",
        "IV_INFERENCE_LOG_SAMPLE": "0.5",
        "IV_INFERENCE_LOG_MAX_MB": "64",
    }


@pytest.mark.parametrize(
    "mutate, field, rule",
    [
        (lambda d: d.pop("client_id"), "client_id", "field required"),
        (lambda d: d.update(text="hi"), "text", "at least 10 characters"),
        (lambda d: d.update(text="1234567890 !!"), "text", "three words"),
        (lambda d: d.update(target="mainframe"), "target", "'local', 'docker' or 'kubernetes'"),
        (lambda d: d.update(dac_id="Bad Id"), "dac_id", "lowercase letters"),
        (
            lambda d: d["environment"]["room"].update(width_m=-2),
            "environment.room.width_m",
            "greater than 0.5",
        ),
        (
            lambda d: d["constraints"].update(min_accuracy=1.5),
            "constraints.min_accuracy",
            "less than or equal to 1",
        ),
        (lambda d: d.update(colour="blue"), "colour", "unknown field"),
        (lambda d: d.update(inference_log={"retention": "all"}), "inference_log.retention", "'none'"),
        (lambda d: d.update(inference_log={"sample": 2}), "inference_log.sample", "less than or equal to 1"),
        (
            lambda d: d.update(inference_log={"max_mb": 0}),
            "inference_log.max_mb",
            "greater than or equal to 1",
        ),
    ],
)
def test_invalid_requests_name_field_and_rule(sample_request_text, mutate, field, rule):
    import yaml

    data = yaml.safe_load(sample_request_text)
    mutate(data)
    with pytest.raises(InputError) as exc:
        parse_request_text(json.dumps(data), source="req.json")
    line = next((p for p in exc.value.problems if p.startswith(field + ":")), None)
    assert line is not None, exc.value.problems
    assert rule in line


def test_malformed_yaml_reports_position():
    with pytest.raises(InputError, match=r"line \d+, column \d+"):
        parse_request_text("a: 1\nb: [unclosed\n")


def test_non_mapping_document_rejected():
    with pytest.raises(InputError, match="must be a mapping"):
        parse_request_text("- just\n- a list\n")


def test_store_is_idempotent_and_refuses_conflicts(tmp_path, sample_request_text):
    store = RequestStore(tmp_path)
    req = parse_request_text(sample_request_text)
    path, created = store.put(req)
    assert created and path.exists()
    before = path.read_bytes()
    _, created_again = store.put(req)
    assert not created_again
    other = req.model_copy(update={"text": "A different request text for the same id"})
    with pytest.raises(InputError, match="already registered"):
        store.put(other)
    assert path.read_bytes() == before, "a refused write must not touch the stored request"
    assert store.get("fall-detection-acme") == req
    assert store.list_ids() == ["fall-detection-acme"]


def test_store_get_unknown_names_known_ids(tmp_path, sample_request_text):
    store = RequestStore(tmp_path)
    store.put(parse_request_text(sample_request_text))
    with pytest.raises(KeyError, match="fall-detection-acme"):
        store.get("nope")
