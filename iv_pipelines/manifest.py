"""The DAC manifest: the signed description of a Deploy Anywhere Capsule (seed §2.3).

Every field of the seed's example manifest exists here, plus `schema_version`. Scores are
calibrated percentiles in [0, 1] (see DESIGN §5): `validation.obmi_scores.*` are the OBMI
operators, `validation.asal_consciousness` is the Open-ended Discovery Score (ODS).
Energy fields carry their units: `E_state` joules, `dE_dt` watts, `S_state` a normalised
entropy in [0, 1].

`python -m iv_pipelines.manifest --write-schema` regenerates `schemas/dac_manifest.schema.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from iv_pipelines.errors import InputError, describe_validation_error, register_pattern
from iv_pipelines.request import DAC_ID_PATTERN

MANIFEST_SCHEMA_VERSION = "1.1.0"

# Semantic Versioning 2.0.0, the official regular expression (semver.org).
SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
SemVer = Annotated[str, Field(pattern=SEMVER_PATTERN, description="semantic version (semver 2.0)")]
UnitScore = Annotated[float, Field(ge=0.0, le=1.0, description="calibrated percentile in [0, 1]")]
SHA256_PATTERN = r"^[0-9a-f]{64}$"
TX_HASH_PATTERN = r"^0x[0-9a-fA-F]{64}$"
CPU_PATTERN = r"^\d+(\.\d+)?m?$"
MEMORY_PATTERN = r"^\d+(Ki|Mi|Gi|Ti|K|M|G|T)?$"
UTID_PATTERN = r"^UTID-[0-9a-f]{8,64}$"
Sha256Hex = Annotated[str, Field(pattern=SHA256_PATTERN, description="sha256, lowercase hex")]
TxHash = Annotated[str, Field(pattern=TX_HASH_PATTERN, description="EVM transaction hash")]

register_pattern(SEMVER_PATTERN, "a semantic version such as 1.2.3 (semver 2.0)")
register_pattern(SHA256_PATTERN, "a sha256 digest: 64 lowercase hex characters")
register_pattern(TX_HASH_PATTERN, "a transaction hash: 0x followed by 64 hex characters")
register_pattern(CPU_PATTERN, "a Kubernetes CPU quantity such as 500m or 2")
register_pattern(MEMORY_PATTERN, "a Kubernetes memory quantity such as 512Mi or 2Gi")
register_pattern(UTID_PATTERN, "a UTID: 'UTID-' followed by 8-64 lowercase hex characters")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Hypothesis(_Strict):
    """The hypothesis the DAC embodies, as validated in discovery."""

    text: str = Field(min_length=10, max_length=4000)
    domain: str = Field(min_length=2, max_length=63)
    task: str = Field(min_length=2, max_length=200)
    approach: str | None = Field(default=None, max_length=1000)
    target_metric: str | None = Field(default=None, max_length=200)
    generator: str | None = Field(default=None, description="backend that proposed it, e.g. template")


class ObmiScores(_Strict):
    """OBMI operators, each a calibrated percentile against the declared null set."""

    AROE: UnitScore = Field(description="request alignment + resonance percentile")
    AESP: UnitScore = Field(description="spectral-entropy (non-degeneracy) percentile")
    QERO: UnitScore = Field(description="hypothesis-context grounding (soft-alignment NMI) percentile")
    AIEO: UnitScore = Field(description="novelty against ACE memory percentile")
    PRIN: UnitScore = Field(description="weighted geometric mean of the four percentiles")


class Validation(_Strict):
    obmi_scores: ObmiScores
    asal_consciousness: UnitScore = Field(
        description="Open-ended Discovery Score (ASAL target/open-endedness/illumination), calibrated"
    )
    threshold: UnitScore = Field(default=0.95, description="gate on asal_consciousness / PRIN")
    null_set: str | None = Field(default=None, description="name/digest of the calibration null set")
    ai_shield_approved: bool
    iterations: int | None = Field(default=None, ge=0, description="DGM iterations used")


class ZkSnark(_Strict):
    system: Literal["groth16", "plonk"] = "groth16"
    curve: Literal["bn254", "bls12-381"] = "bn254"
    proof_digest: Sha256Hex
    public_inputs_digest: Sha256Hex
    verified: bool


class Proof(_Strict):
    lineage_merkle_root: Sha256Hex
    zk_snark: ZkSnark | None = None
    blockchain_tx: TxHash | None = None
    chain_id: int | None = Field(default=None, ge=1)
    provenance: str | None = Field(default=None, description="path of the DSSE-signed SLSA statement")


class EnergySignature(_Strict):
    """Measured energy of producing/running the DAC (never estimated from scores)."""

    E_state: float = Field(ge=0, description="energy, joules")
    dE_dt: float = Field(description="rate of energy use, watts (may be negative as a trend)")
    S_state: UnitScore = Field(description="normalised entropy of energy across steps, 0..1")
    method: str | None = Field(default=None, description="how it was measured, e.g. cpu-time x power model")


class FallIntensityCheck(_Strict):
    reference: float = Field(ge=0, description="median intensity of the walking calibration windows")
    factor: float = Field(ge=0, description="a window is called fall only at >= factor x reference (0: off)")
    still_factor: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="a window whose still score, max(stillness by the intake's motion test, intensity / "
        "reference), is below this is called empty (absent: off)",
    )


class Intelligence(_Strict):
    base_model: str = Field(min_length=2)
    adapter: str | None = Field(default=None, description="adapter file or id (LoRA)")
    adapter_digest: Sha256Hex | None = None
    trainable_params: int | None = Field(default=None, ge=0)
    metrics: dict[str, float] = Field(
        default_factory=dict, description="held-out metrics at the capsule's decision, name -> value"
    )
    evaluated_on: str | None = Field(default=None, description="which held-out data the metrics used")
    validated_on: Literal["client_device", "public_real", "simulation_only"] | None = Field(
        default=None,
        description="the evidence `metrics` rest on: the client's own held-out captures, real public "
        "captures, or the simulated client room only",
    )
    evidence: dict[str, dict | None] | None = Field(
        default=None, description="metrics per evidence kind: simulation, client_device, public_real"
    )
    fall_threshold: float | None = Field(
        default=None, ge=0, le=1, description="P(fall) at which the capsule says fall"
    )
    fall_intensity_check: FallIntensityCheck | None = Field(
        default=None,
        description="fall only where a window disturbs the channel at least `factor` times the "
        "client's walking calibration (`reference`); absent: no check",
    )


class Resources(_Strict):
    cpu: str = Field(pattern=CPU_PATTERN, description="Kubernetes CPU quantity")
    memory: str = Field(pattern=MEMORY_PATTERN, description="Kubernetes memory quantity")
    gpu: int = Field(default=0, ge=0)


class Deployment(_Strict):
    target: Literal["local", "docker", "kubernetes"]
    image: str | None = Field(default=None, min_length=3)
    namespace: str | None = Field(default=None, pattern=DAC_ID_PATTERN)
    replicas: int = Field(default=1, ge=0, le=1000)
    resources: Resources | None = None
    endpoint: str | None = None


class Api(_Strict):
    openapi: str | None = None
    graphql: str | None = None
    grpc: str | None = None
    endpoints: list[str] = Field(default_factory=list, description="'METHOD /path' entries")

    @field_validator("endpoints")
    @classmethod
    def _paths_start_with_slash(cls, v: list[str]) -> list[str]:
        for i, ep in enumerate(v):
            path = ep.split(" ", 1)[-1]
            if not path.startswith("/"):
                raise ValueError(f"entry [{i}] {ep!r} must be a path starting with '/'")
        return v


class Whitelabel(_Strict):
    client_name: str = Field(min_length=1, max_length=120)
    brand_color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")
    logo: str | None = None
    domain: str | None = None
    theme: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]{1,62}$",
        description="id of the client's theme (iv_pipelines.whitelabel.theme; examples/themes/)",
    )
    pin_config: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]{1,62}$",
        description="id of the client's Capsule Pin configuration",
    )


class DacManifest(_Strict):
    """The DAC manifest. Invalid manifests fail naming the field and the rule."""

    schema_version: SemVer = MANIFEST_SCHEMA_VERSION
    dac_id: str = Field(pattern=DAC_ID_PATTERN)
    utid: str | None = Field(default=None, pattern=UTID_PATTERN, description="ledger id")
    version: SemVer
    created_at: AwareDatetime
    hypothesis: Hypothesis
    validation: Validation
    proof: Proof
    energy_signature: EnergySignature
    intelligence: Intelligence
    deployment: Deployment
    api: Api
    whitelabel: Whitelabel

    @field_validator("schema_version")
    @classmethod
    def _schema_major_supported(cls, v: str) -> str:
        major, supported = v.split(".")[0], MANIFEST_SCHEMA_VERSION.split(".")[0]
        if major != supported:
            raise ValueError(f"major version {major} is not supported; this code reads {supported}.x")
        return v


def validate_manifest(data: Any, source: str = "manifest") -> DacManifest:
    """Validate a manifest mapping, raising InputError whose lines name field and rule."""
    if not isinstance(data, dict):
        raise InputError(source, [f"(document): must be a JSON object, got {type(data).__name__}"])
    try:
        return DacManifest.model_validate(data)
    except ValidationError as exc:
        raise InputError(source, describe_validation_error(exc)) from None


def load_manifest(path: Path) -> DacManifest:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(
            str(path), [f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]
        ) from None
    return validate_manifest(data, source=str(path))


def manifest_json_schema() -> dict[str, Any]:
    schema = DacManifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://industriverse.dev/schemas/dac_manifest/{MANIFEST_SCHEMA_VERSION}.json"
    return schema


def schema_text() -> str:
    return json.dumps(manifest_json_schema(), indent=2, sort_keys=True) + "\n"


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-schema", type=Path, nargs="?", const=Path("schemas/dac_manifest.schema.json"))
    ap.add_argument("validate", nargs="*", type=Path, help="manifest files to validate")
    args = ap.parse_args(argv)
    if args.write_schema:
        args.write_schema.parent.mkdir(parents=True, exist_ok=True)
        args.write_schema.write_text(schema_text())
        print(f"wrote {args.write_schema}")
    rc = 0
    for p in args.validate:
        try:
            load_manifest(p)
            print(f"{p}: valid")
        except InputError as e:
            print(e, file=sys.stderr)
            rc = 1
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
