"""Labelled captures through a DAC package's own decision, offline (`iv dac evaluate`).

Each capture is read as the request intake reads captures (`formats.read_capture`), cut into
windows as `/v1/predict` cuts them (`predictor.windows`: none across a silence, one shorter
window for a 1.0-2.0 s stretch) and decided by the package's `Predictor` (its fall threshold
and fall-intensity check, its device context): what the capsule would have answered. A
window's true label is the capture's (given by the caller or by the folder it sits in), or,
for an amplitude CSV with a label column, the label most of its rows carry.

The summary counts windows *and* captures: windows of one capture share the person, the
moment and the room, so they are not independent; a fall capture counts as detected when
any of its windows is called fall, any other capture as a false alarm likewise. A capture the
capsule would refuse (under 1.0 s, slower than 55 packets/s, no 1.0 s stretch without a gap)
is kept with the reason: it has no window, and at the capture level no fall was called on it
(a fall capture refused is a fall missed).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from iv_pipelines.runtime.predictor import PayloadError, Predictor, windows
from iv_pipelines.sensing.formats import CsiFormatError, read_capture

CAPTURE_SUFFIXES = (".csv", ".txt", ".log", ".npz")


class CaptureError(ValueError):
    """A capture cannot be evaluated; the message names it and says why."""


@dataclass
class CaptureResult:
    path: str
    label: str  # the capture's label, or "mixed" for row-labelled captures holding several
    seconds: float
    window_labels: list[str]
    decisions: list[str]
    starts_s: list[float]
    fall_probability: list[float]
    refused: str | None = None  # why the capsule would answer no window (then the lists are empty)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Evaluation:
    dac_id: str
    version: str
    fall_threshold: float
    validated_on: str  # what the DAC's own evidence rests on (not these captures)
    classes: list[str]
    captures: list[CaptureResult] = field(default_factory=list)

    def summary(self) -> dict:
        from iv_pipelines.sensing.gate import wilson

        y = [lab for c in self.captures for lab in c.window_labels]
        d = [dec for c in self.captures for dec in c.decisions]
        y_arr, d_arr = np.asarray(y), np.asarray(d)
        out: dict = {"windows": len(y), "captures": len(self.captures)}
        if not self.captures:
            return out
        refused = [c for c in self.captures if c.refused]
        out["refused_captures"] = len(refused)
        if y:
            out["accuracy"] = float((y_arr == d_arr).mean())
        per: dict[str, dict] = {}
        for act in self.classes:
            m = y_arr == act if y else np.zeros(0, bool)
            caps = [c for c in self.captures if c.label == act]
            if not m.any() and not caps:
                continue
            row: dict = {"windows": int(m.sum())}
            if m.any():
                n = int(m.sum())
                called = Counter(d_arr[m].tolist())
                k = int(called.get("fall", 0))
                row |= {
                    "called": {c: int(called.get(c, 0)) for c in self.classes},
                    "called_fall": k / n,
                    "called_fall_interval95": list(wilson(k, n)),
                }
            if caps:
                # a refused capture got no window: no fall was called on it (a fall missed)
                hit = sum("fall" in c.decisions for c in caps)
                row["captures"] = len(caps)
                row["captures_refused"] = sum(bool(c.refused) for c in caps)
                row["captures_with_a_window_called_fall"] = hit
                row["captures_interval95"] = list(wilson(hit, len(caps)))
            per[act] = row
        out["per_label"] = per
        nonfall = y_arr != "fall"
        if nonfall.any():
            k = int((d_arr[nonfall] == "fall").sum())
            out["fall_false_alarm_rate"] = k / int(nonfall.sum())
            out["fall_false_alarm_rate_interval95"] = list(wilson(k, int(nonfall.sum())))
        if "called_fall" in per.get("fall", {}):
            out["fall_recall"] = per["fall"]["called_fall"]
            out["fall_recall_interval95"] = per["fall"]["called_fall_interval95"]
        return out

    def to_dict(self) -> dict:
        return {
            "dac_id": self.dac_id,
            "version": self.version,
            "fall_threshold": self.fall_threshold,
            "validated_on": self.validated_on,
            "data": "captures given to `iv dac evaluate`, labelled by the caller",
            "summary": self.summary(),
            "captures": [c.to_dict() for c in self.captures],
        }


def capture_files(paths: list[Path]) -> list[Path]:
    """The files among `paths`, folders searched recursively for capture files, in order."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in CAPTURE_SUFFIXES)
        elif p.is_file():
            out.append(p)
        else:
            raise CaptureError(f"{p}: no such file or folder")
    return out


def _row_labels(labels: list[str], t_s: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> list[str]:
    rel = t_s - t_s[0]
    lab = np.asarray(labels)
    out = []
    for s, n in zip(starts, lengths, strict=True):
        inside = (rel >= s - 1e-9) & (rel <= s + n + 1e-9)
        out.append(Counter(lab[inside].tolist()).most_common(1)[0][0])
    return out


def evaluate_capture(
    predictor: Predictor,
    path: Path,
    label: str | None,
    fmt: str = "auto",
    rate_hz: float | None = None,
    hop_s: float = 1.0,
) -> CaptureResult:
    """One capture through the package's decision. `label` None: the capture's own row labels
    (amplitude CSV with a label column); a capture with neither is a CaptureError."""
    classes = predictor.config.classes
    if label is not None and label not in classes:
        raise CaptureError(f"{path}: label {label!r} is not one of {', '.join(classes)}")
    try:
        cap, rep, _ = read_capture(path, fmt, rate_hz)
    except CsiFormatError as e:
        raise CaptureError(f"{path}: {e}") from None
    if rep.rejected:
        n, why = rep.rejected[0]
        raise CaptureError(f"{path}: {len(rep.rejected)} malformed line(s); line {n}: {why}")
    if len(cap.t_s) == 0:
        raise CaptureError(f"{path}: no CSI in it")
    seconds = round(float(cap.t_s[-1] - cap.t_s[0]), 3)
    try:
        x, starts, lengths = windows(cap, hop_s, predictor.config.amplitude_only)
    except PayloadError as e:
        # what the capsule answers to this capture: a refusal, no window (too short, too slow,
        # no stretch without a gap); kept and counted, never dropped from the evaluation
        rows = cap.meta.get("labels")
        lab = label or (Counter(rows).most_common(1)[0][0] if rows else None)
        if lab is None:
            raise CaptureError(f"{path}: no label, and the capsule refuses it: {e}") from None
        return CaptureResult(str(path), lab, seconds, [], [], [], [], refused=str(e))
    if label is not None:
        wl = [label] * len(x)
        cap_label = label
    elif cap.meta.get("labels"):
        wl = _row_labels(cap.meta["labels"], cap.t_s, starts, lengths)
        cap_label = wl[0] if len(set(wl)) == 1 else "mixed"
    else:
        raise CaptureError(
            f"{path}: no label: give --label, put the file in a folder named after its activity "
            f"({', '.join(classes)}), or add a label column (amplitude CSV)"
        )
    p = predictor.proba(x)
    dec = predictor.decide(p, x)
    fall = classes.index("fall") if "fall" in classes else None
    return CaptureResult(
        str(path),
        cap_label,
        seconds,
        wl,
        [classes[k] for k in dec],
        [round(float(s), 6) for s in starts],  # as /v1/predict reports them
        [round(float(v), 4) for v in (p[:, fall] if fall is not None else np.zeros(len(p)))],
    )


def folder_label(path: Path, classes: list[str]) -> str | None:
    """The activity a capture's folder names (`captures/fall/f01.csv` -> fall), or None."""
    for part in reversed(Path(path).parent.parts):
        if part.lower() in classes:
            return part.lower()
    return None
