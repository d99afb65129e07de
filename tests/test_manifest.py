"""DAC manifest schema: examples, invalid cases, JSON Schema drift."""

import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from iv_pipelines.errors import InputError
from iv_pipelines.manifest import DacManifest, load_manifest, schema_text

EXAMPLES = REPO / "examples" / "manifests"
INVALID = EXAMPLES / "invalid"
EXPECTED = yaml.safe_load((INVALID / "EXPECTED.yaml").read_text())


def test_enough_examples():
    assert len(list(EXAMPLES.glob("*.json"))) >= 10
    assert len(EXPECTED) >= 10
    # every invalid file has an expectation, and vice versa
    assert {p.stem for p in INVALID.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_examples_validate(path: Path):
    m = load_manifest(path)
    assert m.dac_id == path.stem
    # round trip: dump -> validate gives the same model
    assert DacManifest.model_validate_json(m.model_dump_json()) == m


def test_examples_cover_several_domains():
    domains = {load_manifest(p).hypothesis.domain for p in EXAMPLES.glob("*.json")}
    assert {
        "wifi-sensing",
        "manufacturing-defect-detection",
        "finance-fraud",
        "retail-inventory",
        "energy-grid",
    } <= domains


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=str)
def test_invalid_manifests_name_field_and_rule(name: str):
    exp = EXPECTED[name]
    with pytest.raises(InputError) as exc:
        load_manifest(INVALID / f"{name}.json")
    lines = [p for p in exc.value.problems if p.startswith(exp["field"] + ":")]
    assert lines, f"no error names {exp['field']}: {exc.value.problems}"
    assert any(exp["rule"] in line for line in lines), lines


def test_every_seed_field_exists():
    props = DacManifest.model_json_schema()
    top = set(props["properties"])
    assert {
        "schema_version",
        "dac_id",
        "utid",
        "version",
        "created_at",
        "hypothesis",
        "validation",
        "proof",
        "energy_signature",
        "intelligence",
        "deployment",
        "api",
        "whitelabel",
    } <= top
    defs = props["$defs"]
    assert set(defs["ObmiScores"]["properties"]) == {"AROE", "AESP", "QERO", "AIEO", "PRIN"}
    assert {"asal_consciousness", "ai_shield_approved", "obmi_scores"} <= set(
        defs["Validation"]["properties"]
    )
    assert {"E_state", "dE_dt", "S_state"} <= set(defs["EnergySignature"]["properties"])
    assert {"zk_snark", "blockchain_tx"} <= set(defs["Proof"]["properties"])


def test_committed_json_schema_matches_models():
    committed = (REPO / "schemas" / "dac_manifest.schema.json").read_text()
    assert committed == schema_text(), (
        "schemas/dac_manifest.schema.json drifted from iv_pipelines/manifest.py; "
        "run `make schema` and commit the result"
    )


def test_json_schema_accepts_examples_and_rejects_invalid():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "schemas" / "dac_manifest.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for p in EXAMPLES.glob("*.json"):
        assert not list(validator.iter_errors(json.loads(p.read_text()))), p
    # structural failures are caught by the exported schema too (value rules like the
    # supported major version live in the pydantic model only)
    for name in ("score-above-one", "missing-prin", "bad-semver", "unknown-field"):
        assert list(validator.iter_errors(json.loads((INVALID / f"{name}.json").read_text()))), name
