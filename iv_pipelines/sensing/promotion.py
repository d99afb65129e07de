"""Base-model promotion: a candidate replaces the shared base model only when it is
significantly better on the same held-out windows, and the replaced model is kept.

The rule (a paired test, never two point estimates): both models decide the candidate's
held-out simulated homes (the current model's own held-out set when the candidate was
pretrained with the same `eval_seed`) at the default decision the capsule uses (argmax, fall
threshold 0.5). The candidate is promoted iff
  - its accuracy is *better* by `gate.compare` (exact McNemar p < 0.05 and the bootstrap
    95 % interval of the difference above 0), and
  - its fall alarms are not *worse* by the same test, judged on every window (an alarm is
    right when raised on a fall and silent otherwise: misses and false alarms both count).
Promotion stages the candidate beside the current model, then moves the current one to
`models/history/` and the candidate into place (two renames on one filesystem): a reader
sees the old model or the new one, never half of either.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from iv_pipelines.paths import atomic_write_text
from iv_pipelines.sensing.gate import Comparison, compare
from iv_pipelines.storage import StorageLayout


class NoCurrentModel(FileNotFoundError):
    """There is no base model to compare a candidate with."""


@dataclass
class Promotion:
    promoted: bool
    why: str
    seed: int
    accuracy: Comparison  # candidate (a) vs current (b), all held-out windows
    fall: Comparison  # candidate vs current on the fall alarm (raised iff a fall), all windows
    history_dir: Path | None = None  # where the replaced model went
    dacs_to_retrain: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["history_dir"] = str(self.history_dir) if self.history_dir else None
        return d


def _decisions(model, heldout) -> dict[str, np.ndarray]:
    """Per window, at the capsule's default decision: the activity decided right?, the fall
    alarm right (raised on a fall, silent otherwise)?, and the negative log-likelihoods of the
    true class and of the true alarm state."""
    from iv_pipelines.sensing.evaluate import DEFAULT_FALL_THRESHOLD, FALL, decide
    from iv_pipelines.sensing.model import predict_proba

    x, y, ctx = heldout
    y = np.asarray(y)
    p = predict_proba(model, x, ctx=ctx)
    pred = decide(p, DEFAULT_FALL_THRESHOLD)
    is_fall = y == FALL
    p_alarm = np.where(is_fall, p[:, FALL], 1.0 - p[:, FALL])
    return {
        "right": pred == y,
        "nll": -np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)),
        "alarm_right": (pred == FALL) == is_fall,
        "alarm_nll": -np.log(np.clip(p_alarm, 1e-12, None)),
    }


def judge(candidate_model, current_model, heldout, seed: int) -> Promotion:
    """The promotion rule on `heldout` = (windows, labels, contexts); nothing is written."""
    a, b = _decisions(candidate_model, heldout), _decisions(current_model, heldout)
    acc = compare(a["right"], b["right"], a["nll"], b["nll"])
    fall = compare(a["alarm_right"], b["alarm_right"], a["alarm_nll"], b["alarm_nll"])
    promoted = acc.verdict == "better" and fall.verdict != "worse"
    why = (
        f"candidate (seed {seed}) vs current, activity decisions: {acc.sentence('candidate', 'current')}; "
        f"fall alarms (misses and false alarms): {fall.sentence('candidate', 'current')}"
    )
    if not promoted:
        why += "; kept the current model: " + (
            "its fall alarms are significantly worse"
            if acc.verdict == "better"
            else f"the candidate is not significantly better ({acc.verdict})"
        )
    return Promotion(promoted, why, seed, acc, fall)


def promote_base_model(layout: StorageLayout, candidate, seed: int, log=lambda _m: None) -> Promotion:
    """Judge `candidate` (a `pretrain_base` result with its held-out windows) against the
    base model in `layout`, and install it if it wins. Raises NoCurrentModel when there is
    no base model yet (materialize `wifi_sensing_base_model` first)."""
    from iv_pipelines.sensing.model import load_model

    current = layout.base_model_dir()
    if not (current / "model.safetensors").is_file():
        raise NoCurrentModel(f"no current base model at {current}: materialize wifi_sensing_base_model first")
    if candidate.heldout is None:
        raise ValueError("the candidate carries no held-out windows to compare on")
    current_model, _ = load_model(current)
    result = judge(candidate.model, current_model, candidate.heldout, seed)
    log(result.why)
    if not result.promoted:
        return result
    result.history_dir, result.dacs_to_retrain = install_base_model(
        layout,
        candidate.model,
        candidate.cfg,
        {"metrics": candidate.metrics, "seed": seed},
        {"heldout": candidate.metrics, "real": {}, "seed": seed, "promotion": result.to_dict()},
        log,
    )
    return result


def install_base_model(layout: StorageLayout, model, cfg, extra: dict, evaluation: dict, log=lambda _m: None):
    """Stage `model` beside the current base, then move the current one to history and the new
    one into place (two renames on one filesystem). Returns (history dir, DACs to retrain)."""
    from iv_pipelines.sensing.model import save_model

    current = layout.base_model_dir()
    staged = layout.base_model_candidate_dir()
    shutil.rmtree(staged, ignore_errors=True)
    save_model(model, cfg, staged, extra=extra)
    atomic_write_text(staged / "evaluation.json", json.dumps(evaluation, indent=2, default=str) + "\n")
    history = layout.base_model_history(int(time.time()))
    while history.exists():  # two promotions within a second
        history = history.with_name(history.name + "-1")
    history.parent.mkdir(parents=True, exist_ok=True)
    os.replace(current, history)
    os.replace(staged, current)
    dacs = layout.adapted_dacs()
    log(f"promoted; previous model kept at {history}; {len(dacs)} adapter(s) to retrain")
    return history, dacs
