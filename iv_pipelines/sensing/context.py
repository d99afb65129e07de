"""The device context a model is conditioned on: what a client's calibration captures say
about their device (the Shadow Twin's "context" step, made into a model input).

For each calibration activity (`empty`, `walk`, `sit`; falls are never asked of anyone) the
context holds a presence flag and the median `features.summary` of that activity's windows:
how much the amplitudes of this device spread, how white that spread is, and its Doppler
profile. A window is then judged against the device's own quiet room and own walking (a white
21 % spread is walking on one device and impossible on another). No calibration = all zeros;
the model is trained with every subset of activities dropped at random, so it serves both.
"""

from __future__ import annotations

import json

import numpy as np

from iv_pipelines.sensing.features import N_SUMMARY, summary

CONTEXT_ACTIVITIES = ("empty", "walk", "sit")
CTX_DIM = len(CONTEXT_ACTIVITIES) * (1 + N_SUMMARY)
# under a DAC's `twin/` directory: the context its adapter trained and was evaluated with,
# which the package's runtime.json carries to the capsule (`packaging/dac.py`)
CONTEXT_FILE = "context.json"


def context_vector(windows: dict[str, np.ndarray]) -> np.ndarray:
    """{activity: (n, T, F) windows} -> (CTX_DIM,) float32; activities without windows stay 0."""
    unknown = set(windows) - set(CONTEXT_ACTIVITIES)
    if unknown:
        raise ValueError(
            f"calibration activity {sorted(unknown)} is not one of {CONTEXT_ACTIVITIES} (falls are never required)"
        )
    out = np.zeros(CTX_DIM, np.float32)
    for i, act in enumerate(CONTEXT_ACTIVITIES):
        w = windows.get(act)
        if w is None or len(w) == 0:
            continue
        base = i * (1 + N_SUMMARY)
        out[base] = 1.0
        out[base + 1 : base + 1 + N_SUMMARY] = np.median(summary(w), axis=0)
    return out


def keep_only(ctx: np.ndarray, activities) -> np.ndarray:
    """A copy of `ctx` (..., CTX_DIM) with the activities not in `activities` zeroed."""
    out = np.array(ctx, dtype=np.float32, copy=True)
    for i, act in enumerate(CONTEXT_ACTIVITIES):
        if act not in activities:
            out[..., i * (1 + N_SUMMARY) : (i + 1) * (1 + N_SUMMARY)] = 0.0
    return out


def activities_in(ctx: np.ndarray) -> list[str]:
    return [a for i, a in enumerate(CONTEXT_ACTIVITIES) if ctx[i * (1 + N_SUMMARY)] > 0.5]


def context_json(ctx: np.ndarray) -> str:
    """The context file's text: the vector (exact float32 values) and its activities; `null`
    for an uncalibrated DAC (no activity), which the capsule serves as zeros, as it trained."""
    acts = activities_in(ctx)
    vec = [float(v) for v in np.asarray(ctx, np.float32)] if acts else None
    return json.dumps({"context": vec, "activities": acts}, indent=2) + "\n"
