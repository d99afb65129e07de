"""The capsule's API, declared once: pydantic models + an operation table.

Three contracts are generated from this single source, never kept by hand:
- OpenAPI 3.1: FastAPI builds it from the app, whose request/response models are these;
- GraphQL SDL: `graphql_sdl()` maps each model to an input/output type and each operation to
  a Query / Mutation / Subscription field;
- gRPC `.proto` (proto3): `grpc_proto()` maps each model to a message and each operation to
  an rpc (the stream operation is a bidirectional stream).
A test parses each (graphql-core, grpcio-tools' protoc) and checks that every operation and
field appears in all three.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

API_VERSION = "v1"
# hard ceilings of the contract; each package's runtime.json sets tighter per-request limits
# from its measured cost (`runtime/limits.py`), and the capsule enforces those (413)
MAX_LINES = 60_000  # ten minutes of 100 Hz CSI in one request
MAX_FRAMES = 60_000
MAX_LINE_CHARS = 16_384  # an ESP32 CSI line (384 int8 values at most) is under 4 KB

CsiLine = Annotated[str, StringConstraints(max_length=MAX_LINE_CHARS)]
Int8 = Annotated[int, Field(ge=-128, le=127)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CsiFrame(_Model):
    """One CSI packet as arrays: receive time and the raw int8 buffer of 64 subcarrier entries
    as (imaginary, real) pairs, in the ESP32's FFT order unless `layout` says `centred`."""

    t_s: float = Field(allow_inf_nan=False, description="receive time, seconds (any origin, increasing)")
    iq: list[Int8] = Field(
        min_length=128, max_length=128, description="128 int8 values: imag, real per entry"
    )


# exactly one source of CSI per request or chunk, in the schema itself (a client, or a fuzzer
# such as schemathesis, learns it from the contract instead of from a 422)
def _exactly_one(*names: str) -> dict:
    return {"oneOf": [{"required": [n]} for n in names]}


class PredictRequest(_Model):
    """CSI to classify: ESP32 text lines (esp-csi or ESP32-CSI-Tool), frames as arrays, or
    amplitude-only CSV rows (64 amplitudes in FFT order, optional label column) at `rate_hz`.
    Exactly one of `lines`, `frames`, `amplitude_csv`."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra=_exactly_one("lines", "frames", "amplitude_csv")
    )

    lines: list[CsiLine] = Field(default=None, max_length=MAX_LINES, description="ESP32 CSI lines")
    frames: list[CsiFrame] = Field(default=None, max_length=MAX_FRAMES, description="CSI as arrays")
    amplitude_csv: list[CsiLine] = Field(
        default=None, max_length=MAX_LINES, description="amplitude-only CSV rows (no timestamps)"
    )
    rate_hz: float = Field(default=None, gt=0, le=1000, description="packet rate of `amplitude_csv`")
    layout: str = Field(default="fft", pattern=r"^(fft|centred)$", description="entry order of `frames`")
    hop_s: float = Field(default=1.0, ge=0.1, le=10.0, description="seconds between window starts")
    amplitude_only: bool = Field(default=False, description="ignore phase (amplitude-only firmwares)")
    device_id: str = Field(
        default=None,
        pattern=r"^[\x21-\x7e]{1,31}$",
        description="the device the CSI came from (kept with the windows in the inference log)",
    )


class WindowPrediction(_Model):
    start_s: float = Field(description="window start, seconds from the first frame")
    length_s: float = Field(description="window length: 2.0 s, or 1.0-2.0 s for a short capture")
    label: str = Field(
        description="the capsule's decision: fall when P(fall) >= fall_threshold and, where the DAC "
        "checks fall intensity, the window disturbs the channel at least its factor times the "
        "client's walking calibration; else the most probable other class"
    )
    confidence: float = Field(description="probability of `label`")
    probabilities: list[float] = Field(description="one per class, in the order of `classes`")
    window_id: str | None = Field(
        default=None,
        description="the window's id in the capsule's inference log, for POST /v1/feedback; "
        "null when the window was not sampled or the capsule keeps no log",
    )


class PredictResponse(_Model):
    dac_id: str
    model_version: str = Field(description="package version of the capsule")
    classes: list[str]
    frames: int = Field(description="CSI frames parsed")
    skipped_lines: int = Field(description="headers and non-CSI log lines")
    fall_threshold: float = Field(description="P(fall) from which this DAC decides fall")
    validated_on: str = Field(description="client_device | public_real | simulation_only")
    windows: list[WindowPrediction]
    notes: list[str] = Field(
        default_factory=list,
        description="what the capsule decided about the input: the subcarrier order read from the "
        "guard subcarriers, other transmitters' frames left out",
    )


class StreamChunk(_Model):
    """A chunk of a CSI stream (WebSocket text message or gRPC stream element): ESP32 CSI lines,
    or amplitude-only CSV rows at `rate_hz` (their times continue from the previous chunk).
    Exactly one of `lines`, `amplitude_csv`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one("lines", "amplitude_csv"))

    lines: list[CsiLine] = Field(default=None, max_length=MAX_LINES, description="ESP32 CSI lines, in order")
    amplitude_csv: list[CsiLine] = Field(default=None, max_length=MAX_LINES, description="amplitude CSV rows")
    rate_hz: float = Field(default=None, gt=0, le=1000, description="packet rate of `amplitude_csv`")


class Detection(_Model):
    """One window's classification on a stream; `error` set (and the rest empty) for a bad chunk."""

    start_s: float
    label: str
    confidence: float
    probabilities: list[float]
    error: str | None = None
    length_s: float = 0.0
    window_id: str | None = None


class FeedbackRequest(_Model):
    """A person's answer about one logged window, e.g. a caregiver's "yes, a fall"."""

    window_id: str = Field(pattern=r"^w-[0-9a-f]{16}$", description="`window_id` from a prediction")
    label: str = Field(
        pattern=r"^[a-z_]{1,20}$",
        description="the true class, one of the DAC's classes, or not_<class> (e.g. not_fall)",
    )
    source: str = Field(default="api", pattern=r"^[\w.@ -]{1,40}$", description="who or what says so")


class FeedbackResponse(_Model):
    window_id: str
    label: str
    predicted: str = Field(description="what the capsule decided for that window")
    stored: bool


class ErrorResponse(_Model):
    """Why a request was refused: one line per problem, naming the field or the limit."""

    detail: list[str]


class HealthRequest(_Model):
    pass


class HealthStatus(_Model):
    status: str = Field(description="ok | loading | failed")
    ready: bool
    dac_id: str
    model_version: str
    attestation: str = Field(
        default="", description="whether the served package matched its signed attestation at load"
    )
    error: str = Field(default="", description="why the capsule is not ready (failed)")


@dataclass(frozen=True)
class Operation:
    name: str  # lower camel case (GraphQL field); rpc name is its PascalCase
    kind: str  # "query" | "mutation" | "stream"
    request: type[BaseModel]
    response: type[BaseModel]
    http: str  # the REST route of the same operation
    doc: str


OPERATIONS = (
    Operation(
        "predict", "mutation", PredictRequest, PredictResponse, "POST /v1/predict", "Classify CSI windows."
    ),
    Operation("stream", "stream", StreamChunk, Detection, "WS /v1/stream", "Detections for a CSI stream."),
    Operation("health", "query", HealthRequest, HealthStatus, "GET /readyz", "Liveness and readiness."),
    Operation(
        "feedback",
        "mutation",
        FeedbackRequest,
        FeedbackResponse,
        "POST /v1/feedback",
        "The true label of a logged window.",
    ),
)


def _models() -> list[type[BaseModel]]:
    """Every model reachable from the operations, dependencies first, each once."""
    seen: list[type[BaseModel]] = []

    def visit(m: type[BaseModel]) -> None:
        if m in seen:
            return
        for f in m.model_fields.values():
            for t in _leaf_types(f.annotation):
                if isinstance(t, type) and issubclass(t, BaseModel):
                    visit(t)
        seen.append(m)

    for op in OPERATIONS:
        visit(op.request)
        visit(op.response)
    return seen


def _leaf_types(t) -> list:
    args = typing.get_args(t)
    return [x for a in args for x in _leaf_types(a)] if args else [t]


def _unwrap(t) -> tuple[object, bool, bool]:
    """annotation -> (scalar or model type, optional, list)"""
    optional = False
    if typing.get_origin(t) is typing.Annotated:
        t = typing.get_args(t)[0]
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        optional, t = True, args[0]
        origin = typing.get_origin(t)
    if origin is list:
        item = typing.get_args(t)[0]
        if typing.get_origin(item) is typing.Annotated:
            item = typing.get_args(item)[0]
        return item, optional, True
    return t, optional, False


_GQL_SCALAR = {str: "String", float: "Float", int: "Int", bool: "Boolean"}
_PROTO_SCALAR = {str: "string", float: "double", int: "sint32", bool: "bool"}


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _gql_type(t, input_side: bool, optional: bool, is_list: bool) -> str:
    if isinstance(t, type) and issubclass(t, BaseModel):
        base = t.__name__ + ("Input" if input_side else "")
    else:
        base = _GQL_SCALAR[t]
    if is_list:
        base = f"[{base}!]"
    return base if optional else base + "!"


def graphql_sdl() -> str:
    models = _models()

    def closure(roots: set) -> set:  # nested models take the side of the model holding them
        out, todo = set(), list(roots)
        while todo:
            m = todo.pop()
            if m not in out:
                out.add(m)
                todo += [t for f in m.model_fields.values() for t in _leaf_types(f.annotation) if t in models]
        return out

    inputs = closure({op.request for op in OPERATIONS})
    outputs = closure({op.response for op in OPERATIONS})
    out = [f"# Capsule API {API_VERSION}: generated from iv_pipelines/runtime/contracts.py"]
    for m in _models():
        for side in (True, False):
            if (side and m not in inputs) or (not side and m not in outputs):
                continue
            fields = m.model_fields
            kw = "input" if side else "type"
            name = m.__name__ + ("Input" if side else "")
            out.append(f'"""{(m.__doc__ or m.__name__).strip().splitlines()[0]}"""')
            if not fields:  # an operation without arguments: no input type
                out.pop()
                continue
            lines = []
            for fname, f in fields.items():
                t, opt, lst = _unwrap(f.annotation)
                opt = opt or (not f.is_required() and f.default is None)  # absent = not given
                lines.append(
                    f"  {_camel(fname)}: {_gql_type(t, side, opt or f.default is not None and not f.is_required(), lst)}"
                )
            out.append(f"{kw} {name} {{\n" + "\n".join(lines) + "\n}")
    roots = {"query": "Query", "mutation": "Mutation", "stream": "Subscription"}
    for kind, root in roots.items():
        ops = [o for o in OPERATIONS if o.kind == kind]
        if not ops:
            continue
        body = "\n".join(
            f'  """{o.doc} (REST: {o.http})"""\n  {o.name}'
            + ("" if not o.request.model_fields else f"(input: {o.request.__name__}Input!)")
            + f": {o.response.__name__}!"
            for o in ops
        )
        out.append(f"type {root} {{\n{body}\n}}")
    out.append(
        "schema {\n"
        + "\n".join(
            f"  {k}: {v}"
            for k, v in (("query", "Query"), ("mutation", "Mutation"), ("subscription", "Subscription"))
        )
        + "\n}"
    )
    return "\n\n".join(out) + "\n"


def grpc_proto(package: str = "industriverse.capsule.v1") -> str:
    out = [
        "// Capsule API: generated from iv_pipelines/runtime/contracts.py",
        'syntax = "proto3";',
        f"package {package};",
    ]
    for m in _models():
        lines = []
        for i, (fname, f) in enumerate(m.model_fields.items(), start=1):
            t, opt, lst = _unwrap(f.annotation)
            opt = opt or (not f.is_required() and f.default is None)  # absent = not given
            ptype = t.__name__ if isinstance(t, type) and issubclass(t, BaseModel) else _PROTO_SCALAR[t]
            label = "repeated " if lst else ("optional " if opt else "")
            lines.append(f"  {label}{ptype} {fname} = {i};")
        doc = (m.__doc__ or m.__name__).strip().splitlines()[0]
        out.append(f"// {doc}\nmessage {m.__name__} {{\n" + "\n".join(lines) + ("\n" if lines else "") + "}")
    rpcs = []
    for o in OPERATIONS:
        stream = "stream " if o.kind == "stream" else ""
        rpcs.append(
            f"  // {o.doc} (REST: {o.http})\n  rpc {_pascal(o.name)}({stream}{o.request.__name__}) "
            f"returns ({stream}{o.response.__name__});"
        )
    out.append("service Capsule {\n" + "\n".join(rpcs) + "\n}")
    return "\n\n".join(out) + "\n"


def endpoints() -> list[str]:
    """Every route of the app, 'METHOD /path' (the manifest's `api.endpoints`)."""
    return [o.http for o in OPERATIONS] + ["GET /healthz", "GET /metrics"]


def snake_fields(sdl: str) -> set[str]:
    """Field names of an SDL, back in snake case (for the cross-contract test)."""
    return {
        re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), n)
        for n in re.findall(r"^\s+(\w+)[:(]", sdl, re.M)
    }


def generated_contracts() -> dict[str, str]:
    """file name -> text of the three contracts (OpenAPI from the FastAPI app)."""
    import json

    from iv_pipelines.runtime.app import create_app

    return {
        "openapi.json": json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n",
        "capsule.graphql": graphql_sdl(),
        "capsule.proto": grpc_proto(),
    }


if __name__ == "__main__":  # python -m iv_pipelines.runtime.contracts [DIR]: write them
    import sys
    from pathlib import Path

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "contracts")
    out.mkdir(parents=True, exist_ok=True)
    for _name, _text in generated_contracts().items():
        (out / _name).write_text(_text)
        print(f"wrote {out / _name}")
