"""The fall-intensity check (issue #13): a window may be called `fall` only when it disturbs
the channel at least `factor` times as much as the resident's own walking did on this device.

Intensity of a window = the mean over subcarriers of the temporal standard deviation of the
model's relative-amplitude features over the window's valid samples (the window spread the
device fit matches). The reference is the median intensity of the client's walking
calibration windows, so the check is relative to the device and the resident.

The factor is not a constant: per DAC it is the largest one expected to keep at least
1 - `recall_cost` of the twin's fall windows (those the adapter trained on and those that set
the threshold: the ratio does not depend on the model), each measured against a plain-walking
calibration simulated with the same twin device and room layout. Where the twin's falls on the fitted device are far more intense than its walking
(devices whose motion shows as packet-to-packet fluctuation, like the issue's lab) the factor
is high and the check removes the walking windows the model confuses with falls; where they
are not (devices whose motion shows as body scattering) it falls towards 0 and removes
little. It only ever turns a `fall` into the window's most probable other class, so it never
raises a false-alarm rate the fall threshold certified. Without a walking calibration capture
there is no reference and no check.

**The stillness check** (since 2026-12-08) rides on the same calibration when it also holds an
empty-room capture: a window that neither moves like someone by the intake's motion test nor
disturbs the channel as much as the resident's own walking did is called `empty`, whatever
the model said. Still score of a window = max(stillness, intensity / reference), where
stillness = max(correlated / C, lag1 / L), the two statistics (computed on the model's
relative-amplitude features) and the two constants C, L of the intake's motion test
(`devicestats.EMPTY_MOTION_CORRELATED` / `EMPTY_MOTION_LAG1`): a stillness of 1 or more is
motion by that test, an intensity ratio of 1 is the median walking window. The still factor
is chosen like the intensity factor, on the twin's non-empty windows (walking, sitting down,
falls) of the client's fitted device: the largest score expected to keep 1 - `recall_cost`
of them above it, each of falls and of all non-empty windows, capped at 1 (a window that
moves by the motion test, or is as intense as typical walking, is never made empty). Off
without an empty-room capture: from a walking-only device fit, the first version of the check
(stillness alone) gave up 4-7 % of the twin protocol's falls where the twin had promised 2 %
(`bench/fall_protocol.py`'s labs; docs/sensing.md, *The stillness check*).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_RECALL_COST = 0.02  # share of the twin's falls the check may give up (expected)
MIN_FALL_WINDOWS = 20  # and at least 1 / budget - 1: fewer cannot place the quantile


def window_intensity(x: np.ndarray) -> np.ndarray:
    """(n, T, F) feature windows -> (n,) intensity (see the module docstring)."""
    from iv_pipelines.sensing.features import AMP_COLUMNS, VALID_COLUMN

    x = np.asarray(x)
    out = np.zeros(len(x))
    for i, w in enumerate(x):
        v = w[w[:, VALID_COLUMN] > 0.5][:, AMP_COLUMNS]
        out[i] = float(v.std(0).mean()) if len(v) > 1 else 0.0
    return out


def window_stillness(x: np.ndarray) -> np.ndarray:
    """(n, T, F) feature windows -> (n,) stillness score max(correlated / C, lag1 / L) of
    their relative amplitudes (module docstring; the statistics of `devicestats.capture_stats`
    on one window): below 1 the window shows no motion by the intake's test."""
    from iv_pipelines.sensing.devicestats import (
        EMPTY_MOTION_CORRELATED,
        EMPTY_MOTION_LAG1,
        correlated_part,
        lag1_autocorrelation,
    )
    from iv_pipelines.sensing.features import AMP_COLUMNS, RATE_HZ, VALID_COLUMN

    m = max(3, int(round(0.1 * RATE_HZ)))  # 0.1 s, as capture_stats smooths
    x = np.asarray(x)
    out = np.zeros(len(x))
    for i, w in enumerate(x):
        v = w[w[:, VALID_COLUMN] > 0.5][:, AMP_COLUMNS].astype(np.float64)
        if len(v) > m:
            out[i] = max(
                correlated_part(v, m) / EMPTY_MOTION_CORRELATED,
                lag1_autocorrelation(v) / EMPTY_MOTION_LAG1,
            )
    return out


STILL_CAP = 1.0  # never call empty a window that moves by the motion test or is as intense as walking


def walking_reference(walk_windows: np.ndarray) -> float | None:
    """Median intensity of a walking calibration's windows; None without windows."""
    if len(walk_windows) == 0:
        return None
    return float(np.median(window_intensity(walk_windows)))


def choose_factor(
    fall_ratios: np.ndarray,
    recall_cost: float = DEFAULT_RECALL_COST,
    what: str = "twin fall windows",
    unit: str = "x their walking reference",
    check: str = "intensity check",
) -> tuple[float, str]:
    """The largest factor whose check is expected to remove at most `recall_cost` of fall
    windows like the given ones (their intensity over their walking reference), with the
    reason. Split-conformal: with n windows sorted, the k-th smallest (0-based) with
    (k + 1) / (n + 1) <= recall_cost, so a new fall window from the same distribution falls
    below it with probability at most recall_cost. Too few windows for that: factor 0 (no
    check)."""
    r = np.sort(np.asarray(fall_ratios, float))
    if not 0 <= recall_cost < 1:
        raise ValueError(f"recall_cost must be in [0, 1); got {recall_cost}")
    k = int(np.floor(recall_cost * (len(r) + 1))) - 1
    if len(r) < MIN_FALL_WINDOWS or k < 0:
        return 0.0, (
            f"only {len(r)} {what} (need {max(MIN_FALL_WINDOWS, int(np.ceil(1 / max(recall_cost, 1e-9))) - 1)}"
            f" for a {recall_cost:.0%} budget): no {check}"
        )
    factor = float(r[k])
    return (
        factor,
        f"{k} of {len(r)} {what} lie below {factor:.2f}{unit} (budget {recall_cost:.0%}, split-conformal)",
    )


@dataclass(frozen=True)
class IntensityCheck:
    reference: float  # median intensity of the client's walking calibration windows
    factor: float  # fall allowed when intensity >= factor * reference (0: no intensity check)
    still_factor: float = 0.0  # window called empty when its still score < this (0: off)

    def allows_fall(self, x: np.ndarray) -> np.ndarray:
        """Per window: 1 a fall is allowed, 0 it is not (too weak), -1 the window is still
        (called empty): `evaluate.decide`'s `allow_fall`."""
        inten = window_intensity(x)
        out = (inten >= self.factor * self.reference).astype(np.int8)
        if self.still_factor > 0:
            score = np.maximum(window_stillness(x), inten / max(self.reference, 1e-12))
            out[score < self.still_factor] = -1
        return out

    def to_dict(self) -> dict:
        d = {"reference": self.reference, "factor": self.factor}
        if self.still_factor > 0:
            d["still_factor"] = self.still_factor
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> IntensityCheck | None:
        """From runtime.json's `decision.intensity_check`; None when absent or off."""
        if not d:
            return None
        try:
            ref, fac = float(d["reference"]), float(d["factor"])
            still = float(d.get("still_factor", 0.0))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(
                f"decision.intensity_check: needs numbers `reference` and `factor` (and an optional "
                f"`still_factor`) ({e})"
            ) from None
        if not all(np.isfinite(v) and v >= 0 for v in (ref, fac, still)) or still > STILL_CAP:
            raise ValueError(
                f"decision.intensity_check: reference {ref}, factor {fac} and still_factor {still} "
                f"must be finite and >= 0 (still_factor <= {STILL_CAP})"
            )
        return cls(ref, fac, still) if fac > 0 or still > 0 else None


def allowed(check: IntensityCheck | None, x: np.ndarray) -> np.ndarray | None:
    """`decide`'s `allow_fall` for windows `x` under a DAC's check; None without one."""
    return None if check is None else check.allows_fall(x)


def describe(report: dict | None) -> str:
    """What a DAC's check did, in words (`ClientResult.intensity_report`); every rate names
    its data."""
    if not report:
        return "off"
    out = ("on: " if report.get("on") else "off: ") + report["why"]
    for key, label in (
        ("simulated_fall_recall", "simulated fall recall"),
        ("simulated_walking_called_fall", "simulated walking called fall"),
        ("client_device_called_fall", "client-device non-fall windows called fall"),
        ("simulated_nonempty_called_empty", "simulated non-empty windows called empty"),
        ("client_device_empty_called_nonempty", "client-device empty-room windows called occupied"),
    ):
        if report.get("on") and (v := report.get(key)):
            out += f"; {label} {v['without']:.3f} -> {v['with']:.3f} ({v['windows']} windows)"
    return out
