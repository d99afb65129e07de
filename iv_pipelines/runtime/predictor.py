"""Loads a DAC package's model and classifies CSI: the capsule's inference core.

The package holds the base model with its LoRA adapter already merged (peft
`merge_and_unload` at packaging time), so serving needs torch + safetensors only, not peft.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iv_pipelines.runtime.limits import LimitExceeded, RequestLimits, expected_windows
from iv_pipelines.sensing.features import (
    MAX_GAP_S,
    MIN_WINDOW_S,
    capture_seconds,
    rate_fault,
    stretch_windows,
    stretches,
)
from iv_pipelines.sensing.formats import (
    CsiCapture,
    CsiFormatError,
    ParseReport,
    entries_to_centred,
    ordered_entries,
    parse_amplitude_csv,
    parse_lines,
)
from iv_pipelines.sensing.intensity import IntensityCheck

RUNTIME_FILE = "runtime.json"


class PayloadError(ValueError):
    """The request's CSI cannot be classified; the message says why (HTTP 422)."""


@dataclass(frozen=True)
class RuntimeConfig:
    dac_id: str
    version: str
    classes: list[str]
    weights_dir: Path
    fall_threshold: float = 0.5
    validated_on: str = "simulation_only"
    amplitude_only: bool = False  # the client's firmware logs amplitudes only
    context: tuple[float, ...] | None = None  # the calibrated device's context
    limits: RequestLimits = field(default_factory=RequestLimits)  # per request (runtime/limits.py)
    # fall only where the window disturbs the channel enough (sensing/intensity.py); None: no check
    intensity_check: IntensityCheck | None = None

    @classmethod
    def load(cls, package_dir: Path) -> RuntimeConfig:
        path = Path(package_dir) / RUNTIME_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not a DAC package (no {RUNTIME_FILE})")
        doc = json.loads(path.read_text())
        decision = doc.get("decision") or {}
        ctx = doc.get("context")
        return cls(
            doc["dac_id"],
            doc["version"],
            list(doc["classes"]),
            Path(package_dir) / doc["weights_dir"],
            float(decision.get("fall_threshold", 0.5)),
            str(doc.get("validated_on", "simulation_only")),
            bool(doc.get("amplitude_only", False)),
            tuple(float(v) for v in ctx) if ctx else None,
            RequestLimits.from_dict(doc.get("limits")),
            IntensityCheck.from_dict(decision.get("intensity_check")),
        )


REQUIRE_ATTESTATION_ENV = "IV_CAPSULE_REQUIRE_ATTESTATION"  # "1" in every deployed capsule


class Predictor:
    """Thread-safe wrapper around the packaged model (torch inference is serialised), with the
    DAC's device context and decision rule. With `verify` (the default) the package is checked
    against its attestation (`attest.py`) before the model is loaded: a mismatch always raises
    AttestationError naming the files. A *missing* attestation raises only where one is
    required (IV_CAPSULE_REQUIRE_ATTESTATION=1: the local deployer, the Docker image and the
    Kubernetes Deployment set it); a package opened as a library elsewhere (an evaluation
    script on an unpacked tarball) loads, marked unverified, with a warning."""

    def __init__(self, package_dir: Path, verify: bool = True):
        from iv_pipelines.runtime.attest import AttestationError, verify_package_files

        self.config = RuntimeConfig.load(package_dir)
        self.attestation: dict = {"verified": False, "reason": "not checked"}
        if verify:
            try:
                rep = verify_package_files(Path(package_dir), self.config.dac_id, self.config.version)
            except AttestationError as e:
                if os.environ.get(REQUIRE_ATTESTATION_ENV) == "1" or "no attestation" not in str(e):
                    raise
                import warnings

                warnings.warn(f"serving an unverified package: {e}", stacklevel=2)
                self.attestation = {"verified": False, "reason": str(e)}
            else:
                if rep.problems:
                    shown = "; ".join(rep.problems[:5])
                    more = f" (and {len(rep.problems) - 5} more)" if len(rep.problems) > 5 else ""
                    raise AttestationError(f"the package does not match its attestation: {shown}{more}")
                self.attestation = {"verified": True, "files": rep.files, "key": rep.key}
        from iv_pipelines.sensing.model import load_model

        self.model, _ = load_model(self.config.weights_dir)
        self._ctx = np.asarray(self.config.context, np.float32) if self.config.context else None
        self._lock = threading.Lock()

    def proba(self, windows: np.ndarray) -> np.ndarray:
        from iv_pipelines.sensing.model import predict_proba

        with self._lock:
            return predict_proba(self.model, windows, ctx=self._ctx)

    def decide(self, proba: np.ndarray, windows: np.ndarray | None) -> np.ndarray:
        """The DAC's decision for each window: its fall threshold and, where it has one, its
        fall-intensity check on the same `windows` (required then: the check reads them)."""
        from iv_pipelines.sensing.evaluate import decide
        from iv_pipelines.sensing.intensity import allowed

        chk = self.config.intensity_check
        if chk is not None and windows is None:
            raise ValueError("this DAC checks fall intensity: decide() needs the windows")
        return decide(proba, self.config.fall_threshold, allowed(chk, windows))


def capture_from_lines(lines: list[str]) -> tuple[CsiCapture, int]:
    """Parse CSI lines; any malformed line is a PayloadError naming its line number(s)."""
    cap, report = parse_lines(lines, source="request")
    if report.rejected:
        shown = "; ".join(f"line {n}: {why}" for n, why in report.rejected[:5])
        more = f" (and {len(report.rejected) - 5} more)" if len(report.rejected) > 5 else ""
        raise PayloadError(f"{len(report.rejected)} malformed CSI line(s): {shown}{more}")
    cap.meta["notes"] = list(report.notes)
    return cap, report.skipped


def capture_from_frames(t_s: list[float], iq: list[list[int]], layout: str) -> CsiCapture:
    raw = np.asarray(iq, dtype=np.int64)
    if raw.size and (raw.min() < -128 or raw.max() > 127):
        bad = int(np.argwhere((raw < -128) | (raw > 127))[0][0])
        raise PayloadError(f"frames[{bad}].iq: values must be int8 (-128..127)")
    try:
        entries_to_centred(raw[:0].astype(np.int8), layout)  # an unknown layout is named
        report = ParseReport()
        csi = ordered_entries(raw.astype(np.int8), [layout] * len(raw), report, "`layout`")
    except CsiFormatError as e:
        raise PayloadError(f"frames: {e}") from None
    t = np.asarray(t_s, dtype=np.float64)
    return CsiCapture(csi, t, np.zeros(len(t), np.int16), "request", {"notes": list(report.notes)})


def capture_from_amplitude_csv(rows: list[str], rate_hz: float | None) -> tuple[CsiCapture, int]:
    """Parse amplitude-only CSV rows; any bad row is a PayloadError naming its line number(s)."""
    if rate_hz is None:
        raise PayloadError("rate_hz: required with amplitude_csv (the rows carry no timestamps)")
    try:
        cap, report = parse_amplitude_csv(rows, rate_hz, source="request")
    except CsiFormatError as e:
        raise PayloadError(str(e)) from None
    if report.rejected:
        shown = "; ".join(f"line {n}: {why}" for n, why in report.rejected[:5])
        more = f" (and {len(report.rejected) - 5} more)" if len(report.rejected) > 5 else ""
        raise PayloadError(f"{len(report.rejected)} malformed amplitude CSV row(s): {shown}{more}")
    cap.meta["notes"] = list(report.notes)
    return cap, report.skipped


def check_limits(cap: CsiCapture, hop_s: float, limits: RequestLimits) -> None:
    """LimitExceeded (HTTP 413) when the capture is larger than one request may be: too many
    frames, or times that would make too many windows at `hop_s` (counted before any work)."""
    n = len(cap.t_s)
    if n > limits.max_frames:
        raise LimitExceeded(
            f"{n} frames: this capsule takes at most {limits.max_frames} per request "
            "(split the capture, or stream it over /v1/stream)"
        )
    t = cap.t_s
    if n > 1 and np.all(np.isfinite(t)) and np.all(np.diff(t) > 0):
        w = expected_windows(t, hop_s, MAX_GAP_S)
        if w > limits.max_windows:
            raise LimitExceeded(
                f"{w} windows at hop_s {hop_s:g}: this capsule makes at most {limits.max_windows} per "
                "request (raise hop_s, or send less CSI)"
            )


def windows(cap: CsiCapture, hop_s: float, amplitude_only: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, T, F) feature windows, their start times (s from the first frame) and lengths (s).

    Each stretch of the capture between gaps of more than MAX_GAP_S gives 2 s windows every
    `hop_s` (and one ending at the stretch's end); a stretch of 1.0-2.0 s gives one shorter
    window (padded and masked by the model): a fall lasts about 1-1.5 s. Shorter stretches are
    left out; a capture with none of at least 1.0 s is refused."""
    t = cap.t_s
    amplitude_only = amplitude_only or bool(cap.meta.get("amplitude_only"))
    if len(t) < 2:
        raise PayloadError(f"need at least {MIN_WINDOW_S:.1f} s of CSI; got {len(t)} frame(s)")
    if not np.all(np.isfinite(t)):
        i = int(np.argmax(~np.isfinite(t)))
        raise PayloadError(f"frame {i}: time is not a finite number")
    if np.any(np.diff(t) <= 0):
        i = int(np.argmax(np.diff(t) <= 0)) + 1
        raise PayloadError(f"frame times must increase; frame {i} is not after frame {i - 1}")
    span = capture_seconds(t)
    if span + 1e-9 < MIN_WINDOW_S:
        raise PayloadError(
            f"need at least {MIN_WINDOW_S:.1f} s of CSI for one window; got {span:.2f} s ({len(t)} frames)"
        )
    fault = rate_fault(t)
    if fault:
        raise PayloadError(fault)
    # windows never straddle a gap in the capture (a dropped link, or separate recordings)
    x, starts, lengths = stretch_windows(cap.csi, t, hop_s, amplitude_only)
    if not len(x):
        raise PayloadError(
            f"no {MIN_WINDOW_S:.1f} s stretch of CSI without a gap over {MAX_GAP_S} s "
            f"({len(t)} frames, {len(stretches(t)) - 1} gaps)"
        )
    return x, starts, lengths
