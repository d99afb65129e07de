"""Honest evaluation of CSI activity models: metrics on data the model never trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from iv_pipelines.sensing.twin import ACTIVITIES

FALL = ACTIVITIES.index("fall")
EMPTY = ACTIVITIES.index("empty")


def confusion(y: np.ndarray, pred: np.ndarray, k: int = len(ACTIVITIES)) -> np.ndarray:
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (y, pred), 1)
    return cm


def recall_at_false_alarm(scores: np.ndarray, positive: np.ndarray, max_fa: float) -> tuple[float, float]:
    """(recall, threshold) at the strictest threshold whose false-alarm rate is <= max_fa."""
    neg = np.sort(scores[~positive])
    if len(neg) == 0:
        return float("nan"), float("nan")
    allowed = int(np.floor(max_fa * len(neg)))
    thr = neg[len(neg) - allowed - 1] if allowed < len(neg) else -np.inf  # strictly above this
    return float((scores[positive] > thr).mean()), float(thr)


def classification_metrics(proba: np.ndarray, y: np.ndarray, prefix: str = "") -> dict:
    pred = proba.argmax(1)
    cm = confusion(y, pred)
    out = {f"{prefix}accuracy": float((pred == y).mean()), f"{prefix}n": int(len(y))}
    for i, name in enumerate(ACTIVITIES):
        tp = cm[i, i]
        out[f"{prefix}precision_{name}"] = float(tp / max(cm[:, i].sum(), 1))
        out[f"{prefix}recall_{name}"] = float(tp / max(cm[i, :].sum(), 1))
    not_fall = y != FALL
    out[f"{prefix}fall_false_alarm_rate"] = (
        float((pred[not_fall] == FALL).mean()) if not_fall.any() else float("nan")
    )
    rec, _ = recall_at_false_alarm(proba[:, FALL], y == FALL, 0.02)
    out[f"{prefix}fall_recall_at_2pct_fa"] = rec
    nll = -np.log(np.clip(proba[np.arange(len(y)), y], 1e-9, 1.0)).mean()
    out[f"{prefix}nll"] = float(nll)
    return out


def confusion_png(cm: np.ndarray, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3.4), dpi=110)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(ACTIVITIES)), ACTIVITIES)
    ax.set_yticks(range(len(ACTIVITIES)), ACTIVITIES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                color="black" if cm[i, j] < cm.max() / 2 else "white",
            )
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def presence_auroc(scores_by_file: dict[str, tuple[str, np.ndarray]]) -> dict:
    """AUROC of presence scores: windows of `movement` files positive, `baseline` negative."""
    # imported here: the capsule ships this module (for `decide`) without the scoring package
    from iv_pipelines.scoring.calibration import auroc

    pos = np.concatenate([s for lab, s in scores_by_file.values() if lab == "movement"] or [np.zeros(0)])
    neg = np.concatenate([s for lab, s in scores_by_file.values() if lab == "baseline"] or [np.zeros(0)])
    return {
        "presence_auroc": auroc(pos, neg),
        "n_movement_windows": int(len(pos)),
        "n_baseline_windows": int(len(neg)),
        "n_files": len(scores_by_file),
    }


# --- the capsule's decision -------------------------------------------------------------
DEFAULT_FALL_THRESHOLD = 0.5
THRESHOLD_BOUNDS = (0.2, 0.95)


def decide(
    proba: np.ndarray, fall_threshold: float = DEFAULT_FALL_THRESHOLD, allow_fall: np.ndarray | None = None
) -> np.ndarray:
    """The capsule's label per window: `fall` when P(fall) >= the DAC's fall threshold (and,
    where the DAC has an intensity check, `allow_fall` is true for the window:
    `intensity.py`), otherwise the most probable of the other classes; `empty` where
    `allow_fall` is -1 (the check's still windows: `IntensityCheck.allows_fall`)."""
    proba = np.asarray(proba)
    if len(proba) == 0:
        return np.zeros(0, int)
    others = proba.copy()
    others[:, FALL] = -1.0
    fall = proba[:, FALL] >= fall_threshold
    if allow_fall is None:
        return np.where(fall, FALL, others.argmax(1))
    allow = np.asarray(allow_fall).astype(np.int8)
    fall &= allow > 0
    return np.where(allow < 0, EMPTY, np.where(fall, FALL, others.argmax(1)))


def choose_fall_threshold(nonfall_p_fall: list[np.ndarray], target_fa: float) -> float:
    """The lowest threshold whose false-alarm rate is <= `target_fa` on every given set of
    non-fall windows (split-conformal quantile ceil((n+1)(1-a))/n of each set's P(fall)),
    clipped to THRESHOLD_BOUNDS. Lower thresholds catch more falls. A set with fewer than
    1/a - 1 windows cannot certify the rate: its largest P(fall) is used (no false alarm on
    it), which the DAC reports as the threshold set's measured false-alarm rate, and never
    below DEFAULT_FALL_THRESHOLD: evidence too thin to certify the target does not license
    calling falls the model itself finds less likely than not."""
    lo, hi = THRESHOLD_BOUNDS
    thr = lo
    for p in nonfall_p_fall:
        p = np.sort(np.asarray(p, float))
        if len(p) == 0:
            continue
        k = int(np.ceil((len(p) + 1) * (1 - target_fa))) - 1
        if k >= len(p):  # too few windows to certify the target
            q = max(p[-1] + 1e-6, DEFAULT_FALL_THRESHOLD)
        else:
            q = p[k] + 1e-6
        thr = max(thr, q)
    return float(min(max(thr, lo), hi))


def decision_metrics(
    proba: np.ndarray,
    y: np.ndarray,
    fall_threshold: float,
    prefix: str = "",
    allow_fall: np.ndarray | None = None,
) -> dict:
    """Metrics of the decisions the capsule returns (not of a ranking): accuracy, recall per
    class present, fall false-alarm rate on non-fall windows, and the presence shares (windows
    with a person called non-empty, empty windows called empty)."""
    y = np.asarray(y)
    pred = decide(proba, fall_threshold, allow_fall)
    out = {f"{prefix}n": int(len(y))}
    if len(y) == 0:
        return out
    out[f"{prefix}accuracy"] = float((pred == y).mean())
    for i, name in enumerate(ACTIVITIES):
        m = y == i
        if m.any():
            out[f"{prefix}recall_{name}"] = float((pred[m] == i).mean())
            out[f"{prefix}n_{name}"] = int(m.sum())
    nf = y != FALL
    if nf.any():
        out[f"{prefix}fall_false_alarm_rate"] = float((pred[nf] == FALL).mean())
    occ = y != EMPTY
    if occ.any():
        out[f"{prefix}occupied_called_nonempty"] = float((pred[occ] != EMPTY).mean())
    if (~occ).any():
        out[f"{prefix}empty_called_empty"] = float((pred[~occ] == EMPTY).mean())
    nll = -np.log(np.clip(np.asarray(proba)[np.arange(len(y)), y], 1e-9, 1.0)).mean()
    out[f"{prefix}nll"] = float(nll)
    return out
