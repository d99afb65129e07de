"""Client requests: the input of a DAC (lifecycle step 1).

A request names the client, the domain, the free-text ask, the environment the capsule will
live in, where it should be deployed and the constraints it must meet. Each accepted request
becomes one `dac` partition whose key is `dac_id`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from iv_pipelines.errors import InputError, describe_validation_error, register_pattern

# Dagster partition keys are free text, but these also become directory names, Kubernetes
# namespaces and labels: keep them DNS-label safe.
DAC_ID_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
# an edge device's id names its capture folder (`<storage>/edge/captures/<id>/`): no path parts
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,30}$"
_SLUG_RE = re.compile(r"[^a-z0-9]+")
register_pattern(DAC_ID_PATTERN, "lowercase letters, digits and '-' (1-63 chars, alphanumeric at both ends)")
DOMAIN_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
register_pattern(DOMAIN_PATTERN, "a lowercase slug of letters, digits and '-'")


# characters a UI must never render from a client's text: C0/C1 controls (tab and newline
# aside) and the bidirectional overrides/isolates that make text read differently than it is
_UNSAFE_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _displayable(v: str | None) -> str | None:
    """Refuse (never silently strip) text a UI would display misleadingly or not at all."""
    if v is None:
        return v
    m = _UNSAFE_CHARS.search(v)
    if m:
        raise ValueError(
            f"contains U+{ord(m.group()):04X} at position {m.start()} (control and bidirectional "
            "override characters are not accepted in text a UI displays)"
        )
    return v


def slugify(text: str, max_len: int = 63) -> str:
    slug = _SLUG_RE.sub("-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-")


class RoomSpec(BaseModel):
    """Geometry of the client's room, used by the Shadow Twin simulator (metres)."""

    model_config = ConfigDict(extra="forbid")
    width_m: float = Field(gt=0.5, le=100)
    depth_m: float = Field(gt=0.5, le=100)
    height_m: float = Field(default=2.6, gt=1.5, le=20)


class EnvironmentSpec(BaseModel):
    """Where the capsule will sense and run: a description plus optional room geometry."""

    model_config = ConfigDict(extra="forbid")
    description: str = Field(min_length=3, max_length=2000)
    room: RoomSpec | None = None

    _safe = field_validator("description")(classmethod(lambda cls, v: _displayable(v)))


class Constraints(BaseModel):
    """Limits the delivered capsule must respect; every field optional, units in the name."""

    model_config = ConfigDict(extra="forbid")
    max_latency_ms: float | None = Field(default=None, gt=0)
    max_power_w: float | None = Field(default=None, gt=0)
    max_memory_mb: int | None = Field(default=None, gt=0)
    budget_usd: float | None = Field(default=None, ge=0)
    min_accuracy: float | None = Field(default=None, ge=0, le=1)
    max_false_alarm_rate: float | None = Field(default=None, ge=0, le=1)
    min_fall_recall: float | None = Field(
        default=None, ge=0, le=1, description="on real falls when the request gives some to evaluate on"
    )
    data_residency: str | None = Field(default=None, min_length=2, max_length=32)

    _safe = field_validator("data_residency")(classmethod(lambda cls, v: _displayable(v)))


class InferenceLogSpec(BaseModel):
    """What the deployed capsule keeps of the windows it classifies (issue #18), in the
    client's own storage namespace: `none` (decisions only), `features` (also the per-window
    feature summary drift is measured on) or `raw` (also the CSI, so that windows people label
    can retrain the DAC). `sample`: share of non-fall windows kept (every fall decision is kept:
    those are the alerts people answer); `max_mb`: the log's size bound (oldest files go first)."""

    model_config = ConfigDict(extra="forbid")
    retention: Literal["none", "features", "raw"] = "features"
    sample: float = Field(default=0.25, ge=0, le=1)
    max_mb: int = Field(default=64, ge=1, le=16384)

    def env(self, directory: str) -> dict[str, str]:
        """The capsule's environment for this log (read by `InferenceLog.from_env`)."""
        return {
            "IV_INFERENCE_LOG_DIR": directory,
            "IV_INFERENCE_LOG_RETENTION": self.retention,
            "IV_INFERENCE_LOG_SAMPLE": repr(float(self.sample)),
            "IV_INFERENCE_LOG_MAX_MB": str(self.max_mb),
        }


def _rate_given(capture):
    """A capture file's check: amplitude CSV carries no timestamps, so its rate must be given."""
    if capture.format == "amplitude-csv" and capture.rate_hz is None:
        raise ValueError("rate_hz is required for amplitude-csv captures (they carry no timestamps)")
    return capture


class CalibrationCapture(BaseModel):
    """A capture from the client's own device with a declared activity (falls are never asked
    of anyone). `path` is relative to the request file when the request is added; the request
    store copies the file into `<storage>/calibration/` and records its sha256, so the DAC's
    identity covers the capture's content. `origin: simulated` marks a twin-generated stand-in
    (such as the sample request's): it calibrates, but never counts as real evidence."""

    model_config = ConfigDict(extra="forbid")
    activity: str = Field(description="empty | walk | sit")
    path: str | None = Field(default=None, min_length=1, max_length=500)
    from_device: str | None = Field(
        default=None,
        min_length=1,
        max_length=31,
        pattern=DEVICE_ID_PATTERN,
        description="instead of `path`: a device registered with the edge ingest service; the "
        "request store takes `seconds` of its stored frames (from `start_us`, device time, or "
        "the newest) as this capture",
    )
    seconds: float | None = Field(default=None, ge=8, le=600, description="with from_device (default 20)")
    start_us: int | None = Field(default=None, ge=0, description="with from_device: device time to start at")
    format: Literal["auto", "esp-csi", "esp32-csi-tool", "espectre-npz", "amplitude-csv"] = "auto"
    rate_hz: float | None = Field(default=None, gt=0, le=1000, description="packet rate (amplitude CSV)")
    origin: Literal["real", "simulated"] = "real"
    device: str | None = Field(default=None, max_length=64, description="chip or board, e.g. ESP32-S3")
    sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="set by the request store"
    )

    _safe = field_validator("path", "device", "from_device")(
        classmethod(lambda cls, v: v if v is None else _displayable(v))
    )

    @field_validator("activity")
    @classmethod
    def _activity(cls, v: str) -> str:
        if v == "fall":
            raise ValueError(
                "falls are never required for calibration (nobody can ask a resident to fall); use empty, walk or sit"
            )
        if v not in ("empty", "walk", "sit"):
            raise ValueError(f"{v!r} is not a calibration activity; use empty, walk or sit")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> CalibrationCapture:
        if (self.path is None) == (self.from_device is None):
            raise ValueError("a calibration capture needs exactly one of path or from_device")
        if self.from_device is None and (self.seconds is not None or self.start_us is not None):
            raise ValueError("seconds and start_us go with from_device")
        return self

    @model_validator(mode="after")
    def _rate_for_amplitude_csv(self) -> CalibrationCapture:
        return _rate_given(self)


EVALUATION_ACTIVITIES = ("empty", "walk", "sit", "fall")
MAX_EVALUATION_CAPTURES = 500


class EvaluationCapture(BaseModel):
    """A labelled real capture of the client's own device kept for evaluation only: it never
    fits the device, trains the adapter, sets the fall threshold or chooses between the adapter
    and the base model; the DAC's `client_device` evidence reports its decisions on it. Unlike
    calibration, it may hold a fall (one a caregiver confirmed, or a staged fall onto a mat)
    and may be as short as one window (1.0 s). Stored like a calibration capture: under its
    sha256, which the DAC's digest covers."""

    model_config = ConfigDict(extra="forbid")
    activity: str = Field(description="empty | walk | sit | fall")
    path: str = Field(min_length=1, max_length=500)
    format: Literal["auto", "esp-csi", "esp32-csi-tool", "espectre-npz", "amplitude-csv"] = "auto"
    rate_hz: float | None = Field(default=None, gt=0, le=1000, description="packet rate (amplitude CSV)")
    device: str | None = Field(default=None, max_length=64, description="chip or board, e.g. ESP32-S3")
    sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="set by the request store"
    )

    _safe = field_validator("path", "device")(classmethod(lambda cls, v: v if v is None else _displayable(v)))

    @field_validator("activity")
    @classmethod
    def _activity(cls, v: str) -> str:
        if v not in EVALUATION_ACTIVITIES:
            raise ValueError(f"{v!r} is not an activity; use {', '.join(EVALUATION_ACTIVITIES)}")
        return v

    @model_validator(mode="after")
    def _rate_for_amplitude_csv(self) -> EvaluationCapture:
        return _rate_given(self)


class DacRequest(BaseModel):
    """A validated client request. `dac_id` defaults to `<domain>-<client_id>`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    dac_id: str = Field(default="", description="partition key; DNS-label safe")
    client_id: str = Field(min_length=2, max_length=63, pattern=DAC_ID_PATTERN)
    domain: str = Field(min_length=2, max_length=63, pattern=DOMAIN_PATTERN)
    text: str = Field(min_length=10, max_length=4000, description="the client's ask, free text")
    environment: EnvironmentSpec
    target: Literal["local", "docker", "kubernetes"] = "local"
    constraints: Constraints = Field(default_factory=Constraints)
    calibration: list[CalibrationCapture] = Field(default_factory=list, max_length=16)
    evaluation: list[EvaluationCapture] = Field(
        default_factory=list,
        max_length=MAX_EVALUATION_CAPTURES,
        description="labelled real captures of the client's device, falls included, for evaluation only",
    )
    accept_simulation_evidence: bool = Field(
        default=False,
        description="accuracy constraints may be judged on simulated evidence when no real labelled captures exist",
    )
    inference_log: InferenceLogSpec | None = Field(
        default=None,
        description="what the capsule keeps of production windows; absent: the deployment's "
        "defaults (IV_INFERENCE_LOG_* of the deployer, else features, 25% sampled, 64 MB)",
    )

    @field_validator("text")
    @classmethod
    def _text_has_words(cls, v: str) -> str:
        _displayable(v)
        if len(re.findall(r"[A-Za-z]{2,}", v)) < 3:
            raise ValueError("must contain at least three words describing the request")
        return v

    @field_validator("dac_id")
    @classmethod
    def _dac_id_is_a_label(cls, v: str) -> str:
        if v and not re.match(DAC_ID_PATTERN, v):
            raise ValueError(
                "must be lowercase letters, digits and '-' (1-63 chars, alphanumeric at both ends)"
            )
        return v

    @model_validator(mode="after")
    def _default_dac_id(self) -> DacRequest:
        if not self.dac_id:
            short_client = self.client_id.split("-")[0]
            self.dac_id = slugify(f"{self.domain}-{short_client}")
        return self

    def canonical_dict(self) -> dict:
        """The request as stored and hashed. Fields added after requests were first stored
        (`calibration`, `evaluation`, `accept_simulation_evidence`, `inference_log`, a capture's
        `from_device`, `seconds`, `start_us`) are left out while at their defaults, so a request that does not use them
        keeps its digest (and its DAC its identity)."""
        doc = self.model_dump(mode="json")
        for name, default in (
            ("calibration", []),
            ("evaluation", []),
            ("accept_simulation_evidence", False),
            ("inference_log", None),
        ):
            if doc.get(name) == default:
                doc.pop(name)
        if doc["constraints"].get("min_fall_recall") is None:  # added with evaluation captures
            doc["constraints"].pop("min_fall_recall", None)
        for cap in doc.get("calibration", []):  # added with the edge (`from_device`): same rule
            for name in ("from_device", "seconds", "start_us"):
                if cap.get(name) is None:
                    cap.pop(name, None)
        return doc

    def digest(self) -> str:
        """sha256 of the canonical JSON form (sorted keys, no whitespace)."""
        return hashlib.sha256(canonical_json(self.canonical_dict())).hexdigest()


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


MAX_REQUEST_NODES = 20_000  # a request has a few dozen values; aliases may not multiply them


class _BoundedLoader(yaml.SafeLoader):
    """YAML's safe loader with aliases bounded: the document's size *after* alias expansion is
    counted on the composed graph (shared nodes counted once per reference) before anything is
    constructed, and a document over MAX_REQUEST_NODES is refused. A 797-byte "billion laughs"
    request otherwise expands to gigabytes."""

    def construct_document(self, node):
        sizes: dict[int, int] = {}

        def size(n) -> int:
            key = id(n)
            if key not in sizes:
                sizes[key] = 1  # a cycle (recursive alias) counts once instead of forever
                if isinstance(n, yaml.SequenceNode):
                    sizes[key] = 1 + sum(size(c) for c in n.value)
                elif isinstance(n, yaml.MappingNode):
                    sizes[key] = 1 + sum(size(k) + size(v) for k, v in n.value)
                if sizes[key] > MAX_REQUEST_NODES:
                    raise yaml.YAMLError(
                        f"the document expands to more than {MAX_REQUEST_NODES} values through its aliases "
                        "(a request needs a few dozen)"
                    )
            return sizes[key]

        size(node)
        return super().construct_document(node)


def parse_request_text(text: str, source: str = "request") -> DacRequest:
    """Parse JSON or YAML text into a DacRequest, raising InputError naming each fault."""
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(source, [f"not valid JSON/YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    if not isinstance(data, dict):
        raise InputError(source, [f"(document): must be a mapping of fields, got {type(data).__name__}"])
    try:
        return DacRequest.model_validate(data)
    except ValidationError as exc:
        raise InputError(source, describe_validation_error(exc)) from None


def load_request_file(path: Path) -> DacRequest:
    path = Path(path)
    if path.suffix.lower() not in (".json", ".yaml", ".yml"):
        raise InputError(str(path), [f"file: extension {path.suffix!r} is not .json, .yaml or .yml"])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(str(path), ["file: not UTF-8 text"]) from None
    return parse_request_text(text, source=str(path))
