"""The capsule's inference log: a bounded, sampled record of the windows it classified, and
the labels people later gave them (feedback), for drift measurement and retraining.

One directory per DAC (the deployer points it inside the client's storage namespace,
`<storage>/inference/<dac>/`; nothing is sent anywhere). Records are JSON lines in
`log-<n>.jsonl` files rotated at `file_bytes`; the oldest files are deleted while the total is
over `max_bytes`, so the log never grows without bound. Every fall decision is kept (those
are the alerts people answer); other windows are kept with probability `sample`.

What a record holds depends on `retention`:
- `none`: time, device, window id, decision and class probabilities;
- `features` (default): also the window's model features summarised per feature (mean and
  standard deviation over time: 2 x F numbers), what drift is measured on;
- `raw`: also the window's CSI as the device sent it (int8 entries, base64, FFT order) and its
  packet times, to retrain on (`iv_pipelines/ops/feedback.py: feedback_captures`).

Feedback (`feedback.jsonl`): {window_id, label, predicted, device_id, source, at}; `label` is
a class, or `not_<class>` when a person can only say what it was not (a caregiver's "no, not
a fall"). Accepted only for a window the log holds (a window id is random, 16 hex digits: it names a window, it reveals nothing).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

RETENTIONS = ("none", "features", "raw")
WINDOW_ID = re.compile(r"^w-[0-9a-f]{16}$")


class FeedbackError(ValueError):
    """A feedback label that cannot be stored; the message says why."""


class UnknownWindow(FeedbackError):
    """The window is not in the log (never sampled, or rotated out)."""


class InferenceLog:
    def __init__(
        self,
        directory: Path,
        classes: list[str],
        retention: str = "features",
        sample: float = 0.25,
        file_bytes: int = 4 << 20,
        max_bytes: int = 64 << 20,
        seed: int | None = None,
    ):
        if retention not in RETENTIONS:
            raise ValueError(f"retention {retention!r}: one of {', '.join(RETENTIONS)}")
        if not 0.0 <= sample <= 1.0:
            raise ValueError(f"sample {sample}: a probability in [0, 1]")
        if file_bytes < 1024 or max_bytes < file_bytes:
            raise ValueError("need 1 KiB <= file_bytes <= max_bytes")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.classes = list(classes)
        self.retention = retention
        self.sample = sample
        self.file_bytes = file_bytes
        self.max_bytes = max_bytes
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.recorded = 0
        self.skipped = 0

    @classmethod
    def from_env(cls, classes: list[str]) -> InferenceLog | None:
        """The capsule's log as its deployment configured it (`IV_INFERENCE_LOG_DIR`, `_RETENTION`,
        `_SAMPLE`, `_MAX_MB`), or None when no directory is set."""
        d = os.environ.get("IV_INFERENCE_LOG_DIR")
        if not d:
            return None
        max_mb = float(os.environ.get("IV_INFERENCE_LOG_MAX_MB", "64"))
        return cls(
            Path(d),
            classes,
            retention=os.environ.get("IV_INFERENCE_LOG_RETENTION", "features"),
            sample=float(os.environ.get("IV_INFERENCE_LOG_SAMPLE", "0.25")),
            file_bytes=max(1024, int(max_mb * (1 << 20) / 16)),
            max_bytes=int(max_mb * (1 << 20)),
        )

    # --- writing ---------------------------------------------------------------------------
    def _files(self) -> list[Path]:
        return sorted(self.dir.glob("log-*.jsonl"), key=lambda p: int(p.stem[4:]))

    def _append(self, line: str) -> None:
        files = self._files()
        cur = files[-1] if files else self.dir / "log-1.jsonl"
        if cur.exists() and cur.stat().st_size + len(line) > self.file_bytes:
            cur = self.dir / f"log-{int(cur.stem[4:]) + 1}.jsonl"
            files.append(cur)
        with open(cur, "a") as fh:
            fh.write(line)
        total = sum(p.stat().st_size for p in files if p.exists())
        for old in files[:-1]:  # the oldest go first; the current file is never deleted
            if total <= self.max_bytes:
                break
            total -= old.stat().st_size
            old.unlink()

    def record(
        self,
        device_id: str | None,
        label: str,
        probabilities: list[float],
        features: np.ndarray | None = None,
        raw: np.ndarray | None = None,
        now: float | None = None,
        raw_t_s: np.ndarray | None = None,
    ) -> str | None:
        """Record one classified window (if sampled); returns its window id, or None."""
        with self._lock:
            if label != "fall" and self._rng.random() >= self.sample:
                self.skipped += 1
                return None
            wid = f"w-{secrets.token_hex(8)}"
            rec = {
                "window_id": wid,
                "at": round(now if now is not None else time.time(), 3),
                "device_id": device_id,
                "label": label,
                "probabilities": [round(float(p), 5) for p in probabilities],
            }
            if self.retention in ("features", "raw") and features is not None:
                from iv_pipelines.sensing.drift import summarise

                rec["features"] = [round(float(v), 4) for v in summarise(features)]  # (T, F) -> 2F
            if self.retention == "raw" and raw is not None:
                rec["raw_int8"] = base64.b64encode(np.asarray(raw, dtype=np.int8).tobytes()).decode()
                if raw_t_s is not None:  # packet times from the window's first, ms
                    t = np.asarray(raw_t_s, dtype=np.float64)
                    rec["raw_t_ms"] = [round(float(x), 2) for x in (t - t[0]) * 1000.0]
            self._append(json.dumps(rec, separators=(",", ":")) + "\n")
            self.recorded += 1
            return wid

    # --- reading ---------------------------------------------------------------------------
    def records(self) -> Iterator[dict]:
        """Every kept record, oldest first (a torn last line is skipped)."""
        for f in self._files():
            try:
                text = f.read_text()
            except FileNotFoundError:  # rotated away meanwhile
                continue
            for ln in text.splitlines():
                try:
                    yield json.loads(ln)
                except ValueError:
                    continue

    def find(self, window_id: str) -> dict | None:
        if not WINDOW_ID.match(window_id or ""):
            return None
        for f in reversed(self._files()):  # feedback usually answers a recent window
            try:
                text = f.read_text()
            except FileNotFoundError:
                continue
            if window_id not in text:
                continue
            for ln in text.splitlines():
                if window_id in ln:
                    try:
                        rec = json.loads(ln)
                    except ValueError:
                        continue
                    if rec.get("window_id") == window_id:
                        return rec
        return None

    def _checked(self, window_id: str, label: str, source: str, now: float | None, index=None) -> dict:
        if label not in self.classes and not (label.startswith("not_") and label[4:] in self.classes):
            raise FeedbackError(
                f"label {label!r}: one of {', '.join(self.classes)}, or not_<class> (e.g. not_fall: "
                '"it was not a fall", the true class unknown)'
            )
        if not re.fullmatch(r"[\w.@ -]{1,40}", source or ""):
            raise FeedbackError("source: 1-40 letters, digits, spaces or . _ @ -")
        rec = index.get(window_id) if index is not None else self.find(window_id)
        if rec is None:
            raise UnknownWindow(f"no logged window {window_id!r} (never sampled, or rotated out of the log)")
        return {
            "window_id": window_id,
            "label": label,
            "predicted": rec["label"],
            "device_id": rec.get("device_id"),
            "source": source,
            "at": round(now if now is not None else time.time(), 3),
        }

    def _write_feedback(self, recs: list[dict]) -> None:
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in recs)
        with self._lock, open(self.dir / "feedback.jsonl", "a") as fh:
            fh.write(text)  # one write: a batch lands whole

    def add_feedback(self, window_id: str, label: str, source: str = "api", now: float | None = None) -> dict:
        """Store a true label for a logged window; FeedbackError (bad label, bad source) or
        UnknownWindow (not in the log: never logged, or rotated away)."""
        out = self._checked(window_id, label, source, now)
        self._write_feedback([out])
        return out

    def add_feedback_many(self, rows: list[tuple[str, str, str]], now: float | None = None) -> list[dict]:
        """Bulk labels, all or nothing: every (window_id, label, source) is checked first; the
        first bad one raises FeedbackError naming its row (1-based) and nothing is stored."""
        index = {r["window_id"]: r for r in self.records()}
        out = []
        for i, (wid, label, source) in enumerate(rows, 1):
            try:
                out.append(self._checked(wid, label, source, now, index))
            except FeedbackError as e:
                raise type(e)(f"row {i}: {e}") from None
        self._write_feedback(out)
        return out

    @staticmethod
    def raw_window(rec: dict) -> tuple[np.ndarray, np.ndarray] | None:
        """(complex CSI (T, 64) centred, times s) of a record kept with `raw`, else None."""
        if not rec.get("raw_int8") or not rec.get("raw_t_ms"):
            return None
        from iv_pipelines.sensing.formats import entries_to_centred

        raw = np.frombuffer(base64.b64decode(rec["raw_int8"]), dtype=np.int8).reshape(-1, 128)
        t = np.asarray(rec["raw_t_ms"], dtype=np.float64) / 1000.0
        if len(t) != len(raw):
            return None
        return entries_to_centred(raw, "fft"), t

    def feedback(self) -> list[dict]:
        """Every stored label, oldest first; a window labelled twice keeps its newest label."""
        p = self.dir / "feedback.jsonl"
        if not p.is_file():
            return []
        latest: dict[str, dict] = {}
        for ln in p.read_text().splitlines():
            try:
                rec = json.loads(ln)
            except ValueError:
                continue
            latest.pop(rec["window_id"], None)
            latest[rec["window_id"]] = rec
        return list(latest.values())
