"""What production says about a DAC (lifecycle steps 30-32: feedback, evolution, ACE update),
from its capsule's inference log and the labels people gave:

- production: windows decided, by class and device;
- drift: production window summaries against the DAC's reference windows (`drift.py`: MMD with
  a permutation p-value, PSI per feature), overall and per device, and the class-rate shift;
- feedback accuracy: on confirmed labels (a class, or `not_<class>`), with its count and a
  Wilson 95 % interval; the share of fall alerts people confirmed;
- RDR: the research experiments queued for this DAC;
- playbook bullets for ACE: what went wrong or right, in words a later DAC can use.

Every number names its data: production windows are whatever the devices sent (real or, for
the demo device, SIMULATED); the report says which devices they came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from iv_pipelines.storage import StorageLayout

HOLDOUT_SHARE = 0.3  # the newest labels, held out to test an evolved version against the deployed one
MIN_DRIFT_WINDOWS = 30  # fewer production windows than this: drift is not measured
DRIFT_ALPHA = 0.01  # the permutation test's false-alarm rate per DAC and tick


@dataclass(frozen=True)
class FeedbackAccuracy:
    n: int
    correct: int
    accuracy: float | None
    ci95: tuple[float, float] | None
    fall_alerts_answered: int
    fall_alerts_confirmed: int

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "ci95": list(self.ci95) if self.ci95 else None,
            "fall_alerts_answered": self.fall_alerts_answered,
            "fall_alerts_confirmed": self.fall_alerts_confirmed,
        }


def feedback_accuracy(labels: list[dict]) -> FeedbackAccuracy:
    """Accuracy of the capsule's decisions on the windows people labelled: a class label is
    correct when the decision equals it; `not_<class>` when the decision was not that class."""
    from iv_pipelines.deploy.canary import label_correct
    from iv_pipelines.sensing.gate import wilson

    correct = sum(label_correct(f) for f in labels)
    n = len(labels)
    alerts = [f for f in labels if f["predicted"] == "fall"]
    confirmed = sum(f["label"] == "fall" for f in alerts)
    lo, hi = wilson(correct, n) if n else (None, None)
    return FeedbackAccuracy(
        n,
        correct,
        round(correct / n, 4) if n else None,
        (round(lo, 4), round(hi, 4)) if n else None,
        len(alerts),
        confirmed,
    )


def feedback_report(
    layout: StorageLayout,
    dac_id: str,
    classes: list[str],
    min_accuracy: float | None = None,
    alpha: float = DRIFT_ALPHA,
    permutations: int = 200,
    seed: int = 0,
) -> dict:
    from iv_pipelines.runtime.inference_log import InferenceLog
    from iv_pipelines.sensing.drift import class_rate_shift, load_reference, measure

    log = InferenceLog(layout.inference_log_dir(dac_id), classes)
    recs = list(log.records())
    by_class: dict[str, int] = {}
    by_device: dict[str, list[dict]] = {}
    for r in recs:
        by_class[r["label"]] = by_class.get(r["label"], 0) + 1
        by_device.setdefault(r.get("device_id") or "(none)", []).append(r)
    out: dict = {
        "dac_id": dac_id,
        "production": {
            "windows": len(recs),
            "by_class": by_class,
            "devices": {d: len(v) for d, v in sorted(by_device.items())},
            "data": "the windows the capsule logged (sampled; every fall decision kept), from the devices above",
        },
        "drift": None,
        "class_rate_shift": None,
    }
    ref_path = layout.drift_reference_file(dac_id)
    with_features = [r for r in recs if r.get("features")]
    if not ref_path.is_file():
        out["drift_note"] = "no drift reference (the DAC's lora_adapter predates it): re-run its lifecycle"
    elif len(with_features) < MIN_DRIFT_WINDOWS:
        out["drift_note"] = (
            f"{len(with_features)} logged windows with features (< {MIN_DRIFT_WINDOWS}): drift not measured yet"
        )
    else:
        ref, ref_decisions = load_reference(ref_path)
        prod = np.array([r["features"] for r in with_features], dtype=np.float32)
        if prod.shape[1] != ref.shape[1]:
            out["drift_note"] = f"feature size {prod.shape[1]} vs reference {ref.shape[1]}: not comparable"
        else:
            overall = measure(ref, prod, permutations, seed)
            per_device = {}
            for dev, rows in sorted(by_device.items()):
                feats = [r["features"] for r in rows if r.get("features")]
                if len(feats) >= MIN_DRIFT_WINDOWS:
                    res = measure(ref, np.array(feats, dtype=np.float32), permutations, seed)
                    per_device[dev] = res.to_dict() | {"drifted": res.drifted(alpha)}
            out["drift"] = overall.to_dict() | {
                "alpha": alpha,
                "drifted": overall.drifted(alpha),
                "per_device": per_device,
                "statistic": "MMD^2 (RBF, median bandwidth) on per-window feature summaries, "
                f"permutation p-value ({permutations} permutations); PSI over the reference's deciles",
            }
            if by_class:
                out["class_rate_shift"] = class_rate_shift(ref_decisions, by_class)
    # accuracy of the version in production now: labels on windows it decided (logged since it
    # went live); earlier versions' labels still train evolution runs, they do not judge this one
    from iv_pipelines.deploy.canary import DeploymentHistory

    since = DeploymentHistory(layout, dac_id).production_since()
    when = {r["window_id"]: r.get("at", 0.0) for r in recs}
    labels = [f for f in log.feedback() if when.get(f["window_id"], 0.0) >= since]
    acc = feedback_accuracy(labels)
    out["feedback"] = acc.to_dict() | {
        "since": since,
        "min_accuracy": min_accuracy,
        "below_constraint": bool(
            min_accuracy is not None and acc.ci95 is not None and acc.ci95[1] < min_accuracy
        ),
        "rule": "below the client's min_accuracy when the Wilson 95 % upper bound is under it",
    }
    out["rdr_experiments"] = _rdr_for(layout, dac_id)
    out["playbook"] = playbook_bullets(dac_id, out)
    return out


def _rdr_for(layout: StorageLayout, dac_id: str) -> list[dict]:
    q = layout.rdr_file("queue.jsonl")
    if not q.is_file():
        return []
    out = []
    for ln in q.read_text().splitlines():
        try:
            rec = json.loads(ln)
        except ValueError:
            continue
        if rec.get("dac_id") == dac_id:
            out.append(rec)
    return out[-5:]


def playbook_bullets(dac_id: str, report: dict) -> list[str]:
    """Advice for later DACs of the domain, from what production showed (only what was measured)."""
    out = []
    drift = report.get("drift") or {}
    if drift.get("drifted"):
        top = ", ".join(f"#{j} (PSI {v})" for j, v in drift.get("psi_top", [])[:3])
        devices = [d for d, v in (drift.get("per_device") or {}).items() if v.get("drifted")]
        out.append(
            f"Production CSI drifted from the twin reference (MMD p={drift['p_value']:.3g}"
            f"{', devices ' + ', '.join(devices) if devices else ''}); features that moved most: {top}. "
            "Calibrate the twin on captures of those devices before training."
        )
    fb = report.get("feedback") or {}
    if fb.get("fall_alerts_answered", 0) >= 5:
        share = fb["fall_alerts_confirmed"] / fb["fall_alerts_answered"]
        if share < 0.5:
            out.append(
                f"Caregivers confirmed only {fb['fall_alerts_confirmed']} of {fb['fall_alerts_answered']} fall "
                "alerts: raise the fall threshold or add the rejected windows to training."
            )
        else:
            out.append(
                f"Caregivers confirmed {fb['fall_alerts_confirmed']} of {fb['fall_alerts_answered']} fall alerts: "
                "the fall threshold holds in production."
            )
    if fb.get("below_constraint"):
        out.append(
            f"Accuracy on {fb['n']} confirmed labels is {fb['accuracy']} (95 % CI {fb['ci95']}), under the "
            f"client's {fb['min_accuracy']}: retrain on the confirmed windows."
        )
    return out


def feedback_captures(
    layout: StorageLayout, dac_id: str, amplitude_only: bool, holdout_share: float = HOLDOUT_SHARE
):
    """The windows people labelled with a class, as real captures to train and test on:
    ([RealCapture], note). Split by time: the newest `holdout_share` of the labels are held out
    (`eval`: what an evolved version is tested on), the rest train. Only windows the capsule
    kept with `retention: raw` can be used (the others have no CSI); `not_<class>` labels say
    what a window was not, which no class can be trained on: both are counted in the note."""
    from iv_pipelines.runtime.inference_log import InferenceLog
    from iv_pipelines.sensing.client import REAL_HOP_S, RealCapture
    from iv_pipelines.sensing.features import windows_from_capture
    from iv_pipelines.sensing.twin import ACTIVITIES

    log_dir = layout.inference_log_dir(dac_id)
    if not log_dir.is_dir():
        return [], "no inference log"
    log = InferenceLog(log_dir, list(ACTIVITIES))
    labels = log.feedback()
    classed = sorted((f for f in labels if f["label"] in ACTIVITIES), key=lambda f: f["at"])
    if not classed:
        return [], f"{len(labels)} feedback label(s), none naming a class"
    index = {r["window_id"]: r for r in log.records()}
    usable = []
    for f in classed:
        raw = InferenceLog.raw_window(index.get(f["window_id"]) or {})
        if raw is None:
            continue
        w = windows_from_capture(raw[0], raw[1], hop_s=REAL_HOP_S, amplitude_only=amplitude_only)
        if len(w):
            usable.append((f, w[:1]))
    n_hold = int(round(holdout_share * len(usable)))
    groups: dict[tuple[str, str], list[np.ndarray]] = {}
    for i, (f, w) in enumerate(usable):
        split = "eval" if i >= len(usable) - n_hold else "train"
        groups.setdefault((f["label"], split), []).append(w)
    caps = [
        RealCapture(
            name=f"feedback-{act}-{split}",
            activity=act,
            origin="real",
            split=split,
            amplitude_only=amplitude_only,
            windows=np.concatenate(ws),
            seconds=2.0 * len(ws),
            independent=True,
        )
        for (act, split), ws in sorted(groups.items())
    ]
    note = (
        f"{len(usable)} labelled production windows ({len(usable) - n_hold} train, {n_hold} held out, the newest); "
        f"{len(classed) - len(usable)} labelled without kept CSI, {len(labels) - len(classed)} not_<class> labels unused"
    )
    return caps, note


def versus_deployed(
    layout: StorageLayout,
    dac_id: str,
    candidate_proba,
    held_out,
    threshold: float,
    seed: int = 0,
    intensity_check: dict | None = None,
):
    """The evolved candidate against the version deployed now, on the held-out (newest)
    labelled production windows: a paired comparison (`sensing/gate.compare`: exact McNemar,
    bootstrap interval of the accuracy difference, non-inferiority margin stated), each
    decided as it would ship (its threshold, and its fall-intensity check if any). Returns a
    dict (verdict, sentence, n) or None when there is nothing to compare (no deployed package,
    or no held-out labels)."""
    from pathlib import Path

    from iv_pipelines.runtime.predictor import Predictor
    from iv_pipelines.sensing.evaluate import decide
    from iv_pipelines.sensing.gate import compare
    from iv_pipelines.sensing.twin import ACTIVITIES

    if not held_out:
        return None
    cur = layout.current_package(dac_id)
    if cur is None or not Path(cur["directory"]).is_dir():
        return None
    x = np.concatenate([c.windows for c in held_out])
    y = np.concatenate([np.full(len(c.windows), ACTIVITIES.index(c.activity)) for c in held_out])
    deployed = Predictor(Path(cur["directory"]))
    p_dep = deployed.proba(x)
    p_new = candidate_proba(x)
    from iv_pipelines.sensing.intensity import IntensityCheck, allowed

    correct_new = decide(p_new, threshold, allowed(IntensityCheck.from_dict(intensity_check), x)) == y
    correct_dep = deployed.decide(p_dep, x) == y
    idx = np.arange(len(y))
    nll_new = -np.log(np.clip(p_new[idx, y], 1e-9, 1))
    nll_dep = -np.log(np.clip(p_dep[idx, y], 1e-9, 1))
    cmp = compare(correct_new, correct_dep, nll_new, nll_dep, seed=seed)
    return cmp.to_dict() | {
        "deployed_version": cur["version"],
        "sentence": cmp.sentence("candidate", f"deployed {cur['version']}"),
        "data": f"{len(y)} held-out production windows of the client's devices, labelled by people (the newest labels)",
    }
