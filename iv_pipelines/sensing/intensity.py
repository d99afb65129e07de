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


def walking_reference(walk_windows: np.ndarray) -> float | None:
    """Median intensity of a walking calibration's windows; None without windows."""
    if len(walk_windows) == 0:
        return None
    return float(np.median(window_intensity(walk_windows)))


def choose_factor(fall_ratios: np.ndarray, recall_cost: float = DEFAULT_RECALL_COST) -> tuple[float, str]:
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
            f"only {len(r)} twin fall windows (need {max(MIN_FALL_WINDOWS, int(np.ceil(1 / max(recall_cost, 1e-9))) - 1)}"
            f" for a {recall_cost:.0%} budget): no intensity check"
        )
    factor = float(r[k])
    return factor, (
        f"{k} of {len(r)} twin fall windows lie below {factor:.2f}x their walking reference "
        f"(budget {recall_cost:.0%}, split-conformal)"
    )


@dataclass(frozen=True)
class IntensityCheck:
    reference: float  # median intensity of the client's walking calibration windows
    factor: float  # fall allowed when intensity >= factor * reference

    def allows_fall(self, x: np.ndarray) -> np.ndarray:
        return window_intensity(x) >= self.factor * self.reference

    def to_dict(self) -> dict:
        return {"reference": self.reference, "factor": self.factor}

    @classmethod
    def from_dict(cls, d: dict | None) -> IntensityCheck | None:
        """From runtime.json's `decision.intensity_check`; None when absent or off."""
        if not d:
            return None
        try:
            ref, fac = float(d["reference"]), float(d["factor"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"decision.intensity_check: needs numbers `reference` and `factor` ({e})"
            ) from None
        if not (np.isfinite(ref) and np.isfinite(fac)) or ref < 0 or fac < 0:
            raise ValueError(
                f"decision.intensity_check: reference {ref} and factor {fac} must be finite and >= 0"
            )
        return cls(ref, fac) if fac > 0 else None


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
    ):
        if report.get("on") and (v := report.get(key)):
            out += f"; {label} {v['without']:.3f} -> {v['with']:.3f} ({v['windows']} windows)"
    return out
