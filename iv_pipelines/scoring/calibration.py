"""Split-conformal calibration of the OBMI operators against the declared null set.

A calibrated score is a conformal percentile: for a raw score x and n null scores,
percentile(x) = #{null < x} / (n + 1). If a candidate were exchangeable with the nulls,
P(percentile >= 1 - alpha) <= alpha, so a threshold of 0.95 lets at most ~5% of nulls
through. Three disjoint splits of the null set (by simulated request, so no request leaks
between them):
- `fit`: per-operator null distributions -> the four operator percentiles;
- `calib`: PRIN of null items (weighted geometric mean of their operator percentiles) ->
  the final calibrated validation score, percentile of PRIN against these;
- `test`: held out, to measure the null pass rate the threshold really gives.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iv_pipelines.discovery.context import context_text
from iv_pipelines.discovery.generator import RequesterSimulator, TemplateGenerator
from iv_pipelines.discovery.nulls import null_texts
from iv_pipelines.scoring import reference
from iv_pipelines.scoring.conformal import conformal_percentile
from iv_pipelines.scoring.obmi import OPERATORS
from iv_pipelines.scoring.ods import OdsCalibration, trajectory_metrics

TRAJECTORY_LEN = 6  # ODS compares trajectories of equal length: 6 hypotheses

# PRIN weights (AROE, AESP, QERO, AIEO), declared up front, not fitted to positives.
DEFAULT_WEIGHTS = (0.3, 0.2, 0.3, 0.2)
DEFAULT_THRESHOLD = 0.95
# each null request's novelty memory: this many hypotheses of one other request of its domain
# (the live novelty bank keeps as many of the nearest delivery's, `novelty.py`)
MEMORY_PER_REQUEST = 3


@dataclass
class Calibration:
    fit_null: np.ndarray  # (N1, 4) raw operator scores of the fit split
    calib_prin: np.ndarray  # (N2,) PRIN of the calib split
    weights: np.ndarray = field(default_factory=lambda: np.array(DEFAULT_WEIGHTS))
    threshold: float = DEFAULT_THRESHOLD
    info: dict = field(default_factory=dict)
    ods_fit: np.ndarray = field(default_factory=lambda: np.zeros((1, 3)))  # null trajectory metrics
    ods_calib: np.ndarray = field(default_factory=lambda: np.zeros((1, 3)))

    def __post_init__(self) -> None:
        self._fit_sorted = np.sort(self.fit_null, axis=0)
        self._calib_sorted = np.sort(self.calib_prin)
        self.ods = OdsCalibration(self.ods_fit, self.ods_calib)

    def percentiles(self, raw: np.ndarray) -> np.ndarray:
        """(n, 4) raw operator scores -> (n, 4) calibrated operator percentiles."""
        raw = np.atleast_2d(raw)
        return np.stack(
            [conformal_percentile(self._fit_sorted[:, k], raw[:, k]) for k in range(raw.shape[1])], axis=1
        )

    def prin(self, raw: np.ndarray) -> np.ndarray:
        pct = self.percentiles(raw)
        return np.array([reference.prin(p, self.weights) for p in pct])

    def validation_score(self, raw: np.ndarray) -> np.ndarray:
        """The gated score: percentile of PRIN against the calib split's PRIN."""
        return conformal_percentile(self._calib_sorted, self.prin(raw))

    def mismatch(self, embedder_id: str, precision: str) -> str | None:
        """Why this calibration does not fit the current scorer, or None if it does."""
        built = (self.info.get("embedder"), self.info.get("precision", "fp32"))
        if built != (embedder_id, precision):
            return (
                f"calibration was built with embedder {built[0]!r} at {built[1]}, scoring now uses "
                f"{embedder_id!r} at {precision}; re-materialize score_calibration (score_calibration_job)"
            )
        return None

    def digest(self) -> str:
        h = hashlib.sha256()
        h.update(self.fit_null.astype(np.float32).tobytes())
        h.update(self.calib_prin.astype(np.float32).tobytes())
        h.update(self.weights.astype(np.float64).tobytes())
        return h.hexdigest()

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        np.savez(
            buf,
            fit_null=self.fit_null,
            calib_prin=self.calib_prin,
            weights=self.weights,
            threshold=np.array(self.threshold),
            info=np.array(json.dumps(self.info)),
            ods_fit=self.ods_fit,
            ods_calib=self.ods_calib,
        )
        from iv_pipelines.paths import atomic_write_bytes

        atomic_write_bytes(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> Calibration:
        with np.load(Path(path)) as z:
            return cls(
                fit_null=z["fit_null"],
                calib_prin=z["calib_prin"],
                weights=z["weights"],
                threshold=float(z["threshold"]),
                info=json.loads(str(z["info"])),
                ods_fit=z["ods_fit"],
                ods_calib=z["ods_calib"],
            )


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability a positive outscores a negative (ties count half)."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


@dataclass
class CalibrationReport:
    null_pass_rate: float  # on the held-out test split
    null_pass_rate_by_kind: dict[str, float]
    n_null: dict[str, int]  # per split
    positive_pass_rate: float
    positive_auroc: float  # positives vs held-out nulls, on the validation score
    generator_pass_rate: float  # template candidates for held-out requests
    n_positive: int
    operator_auroc: dict[str, float]  # each raw operator alone, positives vs test nulls
    ods_null_pass_rate: float  # null trajectories on the test split with ODS >= threshold
    n_ods_test: int = 0  # how many null trajectories that rate is over

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def build_calibration(
    scorer,
    positives: dict[str, list[str]] | None = None,
    seed: int = 0,
    requests_per_domain: int = 4,
    nulls_per_kind: int = TRAJECTORY_LEN,
    memory_per_request: int = MEMORY_PER_REQUEST,
    weights=DEFAULT_WEIGHTS,
    threshold: float = DEFAULT_THRESHOLD,
    log=print,
) -> tuple[Calibration, CalibrationReport]:
    """Generate the null set from simulated requests, score it, split it, fit, and report."""
    sim = RequesterSimulator().requests(requests_per_domain, seed)
    gen = TemplateGenerator()
    by_domain: dict[str, list] = {}
    for r in sim:
        by_domain.setdefault(r.domain, []).append(r)
    rows: dict[str, list] = {"fit": [], "calib": [], "test": []}
    traj: dict[str, list] = {"fit": [], "calib": [], "test": []}
    kinds_test: list[str] = []
    first_of_domain: dict[str, tuple] = {}
    for idx, r in enumerate(sim):
        split = ("fit", "fit", "calib", "calib", "test")[idx % 5]
        siblings = by_domain[r.domain]
        prior = siblings[(siblings.index(r) + 1) % len(siblings)]
        memory = [h.text for h in gen.propose(prior, memory_per_request, seed)]
        rng = random.Random(f"{seed}:{r.dac_id}")
        nulls = null_texts(r.text, memory, nulls_per_kind, rng)
        raw = scorer.raw_scores([t for _, t in nulls], r.text, context_text(r), memory)
        rows[split].append(raw)
        z = scorer.embedder.sentences([t for _, t in nulls])
        target = scorer.embedder.sentences([r.text])[0]
        for kind in {k for k, _ in nulls}:  # null trajectories: a search producing only one null kind
            idx = [i for i, (k, _) in enumerate(nulls) if k == kind][:TRAJECTORY_LEN]
            traj[split].append(trajectory_metrics(z[idx], target))
        if split == "test":
            kinds_test += [k for k, _ in nulls]
        first_of_domain.setdefault(r.domain, (r, memory))
    fit = np.concatenate(rows["fit"])
    calib_raw = np.concatenate(rows["calib"])
    test = np.concatenate(rows["test"])
    w = np.asarray(weights, dtype=np.float64)
    partial = Calibration(fit_null=fit, calib_prin=np.zeros(1), weights=w, threshold=threshold)
    cal = Calibration(
        fit_null=fit,
        calib_prin=partial.prin(calib_raw),
        weights=w,
        threshold=threshold,
        ods_fit=np.array(traj["fit"]),
        ods_calib=np.array(traj["calib"]),
        info={
            "seed": seed,
            "requests_per_domain": requests_per_domain,
            "nulls_per_kind": nulls_per_kind,
            "weights": list(w),
            "threshold": threshold,
            "generator": gen.name,
            "embedder": getattr(scorer.embedder, "model_id", "minilm"),
            "precision": getattr(scorer, "precision", "fp32"),
        },
    )
    test_scores = cal.validation_score(test)
    _, ods_test = cal.ods.score(np.array(traj["test"]))
    kinds = np.array(kinds_test)
    by_kind = {k: float((test_scores[kinds == k] >= threshold).mean()) for k in sorted(set(kinds_test))}

    pos_raw, gen_raw = [], []
    # positives and generator candidates: one simulated request per domain, with its memory
    for r, memory in first_of_domain.values():
        ctx = context_text(r)
        texts = (positives or {}).get(r.domain, [])
        if texts:
            pos_raw.append(scorer.raw_scores(texts, r.text, ctx, memory))
        cands = [h.text for h in gen.propose(r, 3, seed + 1)]
        gen_raw.append(scorer.raw_scores(cands, r.text, ctx, memory))
    pos = np.concatenate(pos_raw) if pos_raw else np.zeros((0, 4))
    pos_scores = cal.validation_score(pos) if len(pos) else np.zeros(0)
    gen_scores = cal.validation_score(np.concatenate(gen_raw))
    report = CalibrationReport(
        null_pass_rate=float((test_scores >= threshold).mean()),
        null_pass_rate_by_kind=by_kind,
        n_null={"fit": len(fit), "calib": len(calib_raw), "test": len(test)},
        positive_pass_rate=float((pos_scores >= threshold).mean()) if len(pos) else float("nan"),
        positive_auroc=auroc(pos_scores, test_scores),
        generator_pass_rate=float((gen_scores >= threshold).mean()),
        n_positive=len(pos),
        operator_auroc={op: auroc(pos[:, k], test[:, k]) for k, op in enumerate(OPERATORS)}
        if len(pos)
        else {},
        ods_null_pass_rate=float((ods_test >= threshold).mean()),
        n_ods_test=len(ods_test),
    )
    log(
        f"calibration: null pass rate {report.null_pass_rate:.3f} (test n={len(test)}), "
        f"positive pass rate {report.positive_pass_rate:.3f} (n={len(pos)}), AUROC {report.positive_auroc:.3f}"
    )
    return cal, report


# Bump when the operators, the null generators or the calibration procedure change.
SCORING_VERSION = "obmi-3"  # 3: AIEO on proposal texts (task phrases removed); on-task generator


def calibration_code_version() -> str:
    """What a calibration depends on besides run config: embedder, knowledge base, scoring code.

    Used as the `score_calibration` asset's code version, so the UI marks it stale (and its
    automation condition rebuilds it) when any of them changes. Cheap: hashes two YAML files.
    """
    import hashlib
    from importlib import resources as importlib_resources

    from iv_pipelines.embedding import MODEL_ID

    h = hashlib.sha256()
    for name in ("domains.yaml", "offtopic.yaml"):
        h.update((importlib_resources.files("iv_pipelines") / "data" / name).read_bytes())
    return f"{SCORING_VERSION}|{MODEL_ID.split(' ')[0]}|kb-{h.hexdigest()[:12]}"
