"""Split-conformal percentiles."""

from __future__ import annotations

import numpy as np


def conformal_percentile(null_sorted: np.ndarray, x: np.ndarray) -> np.ndarray:
    """#{null < x} / (n + 1) for each x; `null_sorted` ascending.

    For x exchangeable with the nulls, P(percentile >= 1 - alpha) <= alpha.
    """
    return np.searchsorted(null_sorted, x, side="left") / (len(null_sorted) + 1)
