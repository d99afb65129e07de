"""CSI windows -> model features (amplitude and phase differences per subcarrier x time).

Each window is resampled to a uniform 100 Hz grid (ESP32 timing jitters and drops packets),
over the 50 subcarriers every source reports cleanly (+-2..+-26):
- amplitude: relative change against the window's mean per subcarrier (motion, not room
  geometry; AGC gain steps stay in, the model learns them from the simulator);
- phase difference between adjacent subcarriers (removes the per-packet phase offset), minus
  its per-packet mean (removes the timing slope), relative to the window's mean, wrapped.
Amplitude-only captures (firmwares that log sqrt(I^2 + Q^2) only) get zeros in the phase
channel and a 0 phase-present flag; the model is trained with phase dropout to handle both.
"""

from __future__ import annotations

import numpy as np

from iv_pipelines.sensing.formats import USED_INDEX

RATE_HZ = 100.0
WINDOW_S = 2.0
T = int(RATE_HZ * WINDOW_S)
N_AMP = len(USED_INDEX)
N_PHASE = N_AMP - 1
N_FEATURES = N_AMP + N_PHASE + 1  # + phase-present flag


def packet_features(csi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per packet, before any resampling (each packet has its own random phase offset, so raw
    complex CSI must never be interpolated between packets):
    amplitude (N, 50), and the adjacent-subcarrier phase
    difference as a unit phasor (N, 49) with its per-packet mean (the timing slope) removed."""
    x = csi[:, USED_INDEX]
    # not divided by the per-packet mean: body motion is largely common to all subcarriers
    # and would be removed with it; AGC steps are rare and the model sees them in training
    amp = np.abs(x).astype(np.float64) + 1e-6
    prod = x[:, 1:] * np.conj(x[:, :-1])
    ph = prod / np.maximum(np.abs(prod), 1e-9)
    mean = ph.mean(axis=1, keepdims=True)
    ph = ph * np.conj(mean / np.maximum(np.abs(mean), 1e-9))
    return amp, ph


def resample(values: np.ndarray, t_s: np.ndarray, start_s: float, n: int = T, rate: float = RATE_HZ) -> np.ndarray:
    """Linear interpolation of per-packet values (T_in, F), real or complex, onto n uniform samples."""
    grid = start_s + np.arange(n) / rate
    cols = [np.interp(grid, t_s, values[:, j].real) for j in range(values.shape[1])]
    out = np.stack(cols, 1)
    if np.iscomplexobj(values):
        out = out + 1j * np.stack([np.interp(grid, t_s, values[:, j].imag) for j in range(values.shape[1])], 1)
    return out


def window_features(amp: np.ndarray, ph: np.ndarray | None) -> np.ndarray:
    """Uniform (T, 50) amplitudes and (T, 49) phase phasors (None: amplitude-only) ->
    (T, N_FEATURES) float32, relative to the window's own mean."""
    rel = amp / amp.mean(axis=0, keepdims=True) - 1.0
    if ph is None:
        phase = np.zeros((amp.shape[0], N_PHASE))
        flag = np.zeros((amp.shape[0], 1))
    else:
        ref = ph.mean(axis=0, keepdims=True)
        phase = np.angle(ph * np.conj(ref))
        flag = np.ones((amp.shape[0], 1))
    return np.concatenate([rel, phase, flag], axis=1).astype(np.float32)


def windows_from_capture(csi: np.ndarray, t_s: np.ndarray, hop_s: float = 1.0,
                         amplitude_only: bool = False) -> np.ndarray:
    """All full windows of a capture, hopping by `hop_s`: (n_windows, T, N_FEATURES)."""
    amp, ph = packet_features(csi)
    out = []
    start = t_s[0]
    while start + WINDOW_S <= t_s[-1] + 1e-9:
        a = resample(amp, t_s, start)
        p = None if amplitude_only else resample(ph, t_s, start)
        out.append(window_features(a, p))
        start += hop_s
    return np.stack(out) if out else np.zeros((0, T, N_FEATURES), np.float32)


def amplitude_only_capture(csi: np.ndarray) -> np.ndarray:
    """What amplitude-only firmwares log: |H| per subcarrier (as a real-valued complex array)."""
    return np.abs(csi).astype(np.complex64)
