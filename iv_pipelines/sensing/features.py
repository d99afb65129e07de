"""CSI windows -> model features (amplitude and phase differences per subcarrier x time).

Each window is resampled to a uniform 100 Hz grid (ESP32 timing jitters and drops packets),
over the 50 subcarriers every source reports cleanly (+-2..+-26):
- amplitude: divided per packet by its mean over subcarriers (removes AGC gain and its
  per-packet jitter), then relative change against the window's mean per subcarrier;
- the per-packet common-mode gain (log of the mean amplitude), low-passed at ~5 Hz: slow
  body-induced power changes survive, white gain jitter does not;
- phase difference between adjacent subcarriers (removes the per-packet phase offset), minus
  its per-packet mean (removes the timing slope), relative to the window's mean, wrapped;
- a Doppler profile: the short-time power spectrum (0.32 s Hann windows centred on each
  sample, 3.1..50 Hz in 16 bins) of the amplitude channel, averaged over sub-bands, in log
  scale: how fast the body moves shows up the same way in every room;
- a `valid` column: 1 on samples of the capture, 0 on padding. A window is 2.0 s; a capture
  (or the stretch of one between gaps) of 1.0-2.0 s becomes one shorter window padded to 2.0 s;
  pooling ignores the padding and the model is trained on such windows (falls last ~1-1.5 s).
Amplitude-only captures (firmwares that log sqrt(I^2 + Q^2) only) get zeros in the phase
channel and a 0 phase-present flag; the model is trained with phase dropout to handle both.

`summary` condenses windows into the per-device statistics the model is conditioned on
(`context.py`): spread, white level, gain and the mean Doppler profile.
"""

from __future__ import annotations

import numpy as np

from iv_pipelines.sensing.formats import USED_INDEX

FEATURES_VERSION = "features-4"  # 4: glitches judged against local motion; 3: valid column, device context
RATE_HZ = 100.0
WINDOW_S = 2.0
MIN_WINDOW_S = 1.0  # shorter captures are refused: not enough of an event to classify
# Slower captures are refused. The twin draws 70-150 packets/s; on held-out simulated homes the
# base model's accuracy stays within 5 % of its 100/s accuracy down to 55/s and collapses below
# 50/s, towards one answer for every window (bench/rate_range.py)
MIN_RATE_HZ = 55.0
T = int(RATE_HZ * WINDOW_S)
PATCH = 4  # the model's patch length; valid lengths are whole patches
GROUP = 2  # adjacent subcarriers averaged: halves the noise dimensions the model must ignore
N_AMP = len(USED_INDEX) // GROUP
N_PHASE = (len(USED_INDEX) - 1) // GROUP
N_DOPPLER = 16
N_FEATURES = N_AMP + N_PHASE + 2 + N_DOPPLER + 1  # + slow gain, phase flag, Doppler, valid
STFT_TAPS = 32
STFT_HOP = 4
DOPPLER_LOG_MEAN, DOPPLER_LOG_STD = -6.5, 1.5  # fixed scaling (typical log power of sim windows)
SMOOTH = 9  # taps of the moving average on the common-mode gain (~5 Hz cut-off at 100 Hz)

AMP_COLUMNS = slice(0, N_AMP)
PHASE_COLUMNS = slice(N_AMP, N_AMP + N_PHASE)
SLOW_COLUMN = N_AMP + N_PHASE
FLAG_COLUMN = N_AMP + N_PHASE + 1
DOPPLER_COLUMNS = slice(N_AMP + N_PHASE + 2, N_AMP + N_PHASE + 2 + N_DOPPLER)
VALID_COLUMN = N_FEATURES - 1


def packet_features(csi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per packet, before any resampling (each packet has its own random phase offset, so raw
    complex CSI must never be interpolated between packets):
    amplitude (N, 50), and the adjacent-subcarrier phase
    difference as a unit phasor (N, 49) with its per-packet mean (the timing slope) removed."""
    x = csi[:, USED_INDEX]
    amp = np.abs(x).astype(np.float64) + 1e-6
    prod = x[:, 1:] * np.conj(x[:, :-1])
    ph = prod / np.maximum(np.abs(prod), 1e-9)
    mean = ph.mean(axis=1, keepdims=True)
    ph = ph * np.conj(mean / np.maximum(np.abs(mean), 1e-9))
    return amp, ph


GLITCH_K = 4.0  # a packet this many times further from its neighbours than is usual there is dropped
GLITCH_LOCAL = 10  # "usual there": the median over +-10 packets (0.2 s at 100 Hz)
GAIN_EXCURSION = 0.35  # log gain this far from the running median: another AGC gain state


def glitch_mask(amp: np.ndarray, parts: bool = False):
    """(n, S) amplitudes -> (n,) True for packets to keep: a packet whose relative amplitude
    pattern lies more than GLITCH_K times the usual distance from the mean of its four
    neighbours (t-2..t+2) is a glitch (an isolated corrupted estimate). "Usual" is the larger of
    the capture's median distance and the median over the packet's +-GLITCH_LOCAL neighbours:
    a moving body makes many consecutive packets fluctuate (white, on amplitude-only firmwares:
    issue #13), and those are the fall, not glitches. (Against the capture's median alone, the
    stillness after a fall made the fall's own packets "glitches": 10-40 % of a fall clip's
    packets were dropped and its spread fell below walking's.) A gross glitch can also push a
    neighbour over the line; dropping that packet too costs nothing (resampling bridges it). A packet
    whose common-mode gain lies GAIN_EXCURSION (log) from the median of its +-5 neighbours (and
    GLITCH_K robust standard deviations of the gain's local fluctuation) is an AGC gain-state flip (real gain-locked chips: ~5 dB lower, another per-subcarrier pattern)
    and is dropped too: a body changes the received power far more slowly."""
    n = len(amp)
    keep = np.ones(n, bool)
    if n < 13:
        return (keep, keep.copy()) if parts else keep
    r = amp / np.maximum(amp.mean(axis=1, keepdims=True), 1e-9)
    pad = np.pad(r, [(2, 2), (0, 0)], mode="edge")
    ref = (pad[:-4] + pad[1:-3] + pad[3:-1] + pad[4:]) / 4
    d = np.sqrt(np.mean((r - ref) ** 2, axis=1))
    from numpy.lib.stride_tricks import sliding_window_view

    w = 2 * GLITCH_LOCAL + 1
    local = np.median(sliding_window_view(np.pad(d, GLITCH_LOCAL, mode="reflect"), w), axis=-1)
    pattern_ok = d <= GLITCH_K * np.maximum(local, max(float(np.median(d)), 1e-6))

    g = np.log(np.maximum(amp.mean(axis=1), 1e-9))
    running = np.median(sliding_window_view(np.pad(g, 5, mode="edge"), 11), axis=-1)
    dev = np.abs(g - running)
    # where the gain itself fluctuates (a body moving fast), a flip must stand out of that too
    spread = np.median(sliding_window_view(np.pad(dev, GLITCH_LOCAL, mode="reflect"), w), axis=-1)
    gain_ok = dev <= np.maximum(GAIN_EXCURSION, GLITCH_K * 1.4826 * spread)
    pattern_ok[0] = pattern_ok[-1] = gain_ok[0] = gain_ok[-1] = True  # the span stays as recorded
    return (pattern_ok, gain_ok) if parts else pattern_ok & gain_ok


def clean_packets(csi: np.ndarray, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The capture without its glitch packets (`glitch_mask`)."""
    keep = glitch_mask(np.abs(csi[:, USED_INDEX]).astype(np.float64) + 1e-6)
    return csi[keep], t_s[keep]


def resample(
    values: np.ndarray, t_s: np.ndarray, start_s: float, n: int = T, rate: float = RATE_HZ
) -> np.ndarray:
    """Linear interpolation of per-packet values (T_in, F), real or complex, onto n uniform
    samples (held constant beyond the first and last packet, as np.interp does)."""
    grid = start_s + np.arange(n) / rate
    t = np.asarray(t_s, dtype=np.float64)
    j = np.clip(np.searchsorted(t, grid, side="right") - 1, 0, len(t) - 1)
    k = np.minimum(j + 1, len(t) - 1)
    span = t[k] - t[j]
    w = np.where(span > 0, (grid - t[j]) / np.where(span > 0, span, 1.0), 0.0)
    w = np.clip(w, 0.0, 1.0)[:, None]
    return values[j] * (1 - w) + values[k] * w


def doppler_profile(rel: np.ndarray) -> np.ndarray:
    """(n, C) relative amplitudes -> (n, N_DOPPLER) scaled log power: one spectrum every
    STFT_HOP samples (the model's patch length), held for the samples of that hop."""
    from numpy.lib.stride_tricks import sliding_window_view

    r = np.pad(rel, [(STFT_TAPS // 2, STFT_TAPS // 2 - 1), (0, 0)], mode="reflect")
    w = sliding_window_view(r, STFT_TAPS, axis=0)[STFT_HOP // 2 :: STFT_HOP]  # (n/hop, C, taps)
    w = w - w.mean(-1, keepdims=True)
    power = np.abs(np.fft.rfft(w * np.hanning(STFT_TAPS), axis=-1)) ** 2
    logp = np.log(power[..., 1:].mean(axis=1) + 1e-6)
    return np.repeat((logp - DOPPLER_LOG_MEAN) / DOPPLER_LOG_STD, STFT_HOP, axis=0)[: len(rel)]


def window_features(amp: np.ndarray, ph: np.ndarray | None) -> np.ndarray:
    """Uniform (n, 50) amplitudes and (n, 49) phase phasors (None: amplitude-only), n <= T ->
    (T, N_FEATURES) float32, relative to the window's own mean, adjacent subcarriers averaged
    in pairs, zero-padded after the n valid samples."""
    n = len(amp)
    if n > T or n < STFT_TAPS:
        raise ValueError(f"a window holds {STFT_TAPS}..{T} samples, got {n}")
    common = np.log(amp.mean(axis=1))  # per-sample gain (AGC jitter + slow body effects)
    amp = amp / amp.mean(axis=1, keepdims=True)  # per-packet normalisation removes gain jitter
    rel = amp / amp.mean(axis=0, keepdims=True) - 1.0
    rel = rel[:, : N_AMP * GROUP].reshape(n, N_AMP, GROUP).mean(-1)
    kernel = np.ones(SMOOTH) / SMOOTH
    slow = np.convolve(common - common.mean(), kernel, mode="same")[:, None]
    if ph is None:
        phase = np.zeros((n, N_PHASE))
        flag = np.zeros((n, 1))  # same as drop_phase()
    else:
        ref = ph.mean(axis=0, keepdims=True)
        rot = (ph * np.conj(ref))[:, : N_PHASE * GROUP].reshape(n, N_PHASE, GROUP).mean(-1)
        phase = np.angle(rot)
        flag = np.ones((n, 1))
    body = np.concatenate([rel, phase, slow, flag, doppler_profile(rel), np.ones((n, 1))], axis=1)
    out = np.zeros((T, N_FEATURES), np.float32)
    out[:n] = body
    return out


def window_at(
    amp: np.ndarray, ph: np.ndarray | None, t_s: np.ndarray, start_s: float, length_s: float = WINDOW_S
) -> np.ndarray:
    """The window of per-packet values starting at `start_s`, `length_s` long (whole patches)."""
    n = min(T, int(round(length_s * RATE_HZ)) // PATCH * PATCH)
    a = resample(amp, t_s, start_s, n)
    p = None if ph is None else resample(ph, t_s, start_s, n)
    return window_features(a, p)


def capture_seconds(t_s: np.ndarray) -> float:
    """How long a stretch of packets lasts (s): first to last packet plus one packet period
    (100 packets at 100 Hz are a 1.0 s recording, not 0.99 s). The period is the median
    spacing, capped at 50 ms so that a sparse capture is not stretched."""
    t = np.asarray(t_s, dtype=np.float64)
    if len(t) < 2:
        return 0.0
    return float(t[-1] - t[0] + min(float(np.median(np.diff(t))), 0.05))


def window_starts(t_s: np.ndarray, hop_s: float) -> tuple[list[float], float]:
    """Start times and length of the windows of a stretch of capture: full 2 s windows every
    `hop_s` (plus one ending at the stretch's end when the last window leaves over a quarter
    of the hop uncovered), or one window covering a 1.0-2.0 s stretch (`capture_seconds`)."""
    span = capture_seconds(t_s)
    if span + 1e-9 < MIN_WINDOW_S:
        return [], 0.0
    if span + 1e-9 < WINDOW_S:
        return [float(t_s[0])], span
    starts = list(t_s[0] + np.arange(0.0, span - WINDOW_S + 1e-9, hop_s))
    end = float(t_s[0]) + span
    if end - (starts[-1] + WINDOW_S) > 0.25 * min(hop_s, WINDOW_S):
        starts.append(end - WINDOW_S)
    return [float(s) for s in starts], WINDOW_S


def windows_from_capture(
    csi: np.ndarray, t_s: np.ndarray, hop_s: float = 1.0, amplitude_only: bool = False
) -> np.ndarray:
    """All windows of a capture (see `window_starts`), glitch packets dropped:
    (n_windows, T, N_FEATURES)."""
    csi, t_s = clean_packets(csi, t_s)
    amp, ph = packet_features(csi)
    starts, length = window_starts(t_s, hop_s)
    out = [window_at(amp, None if amplitude_only else ph, t_s, s, length) for s in starts]
    return np.stack(out) if out else np.zeros((0, T, N_FEATURES), np.float32)


MAX_GAP_S = 0.5  # a longer silence splits a capture: windows are never interpolated across it


def stretches(t_s: np.ndarray, max_gap_s: float = MAX_GAP_S) -> list[np.ndarray]:
    """Packet indices of each stretch of a capture between silences over `max_gap_s`."""
    t = np.asarray(t_s, dtype=np.float64)
    return np.split(np.arange(len(t)), np.flatnonzero(np.diff(t) > max_gap_s) + 1)


def packet_rate(t_s: np.ndarray, max_gap_s: float = MAX_GAP_S) -> float | None:
    """A capture's nominal packets/s: 1 / the median interval between consecutive packets
    within its stretches (dropped packets and silences leave it unchanged); None with fewer
    than 2 such intervals."""
    dt = np.diff(np.asarray(t_s, dtype=np.float64))
    dt = dt[(dt > 0) & (dt <= max_gap_s)]
    if len(dt) < 2:
        return None
    return float(1.0 / np.median(dt))


def rate_fault(t_s: np.ndarray) -> str | None:
    """Why a capture is too slow for the model to decide on (a sentence), or None."""
    rate = packet_rate(t_s)
    if rate is None or rate + 1e-6 >= MIN_RATE_HZ:
        return None
    return (
        f"packet rate {rate:.0f}/s: the model decides on {MIN_RATE_HZ:.0f} packets/s or more (it was "
        f"trained on 70-150/s; slower windows lose what it looks at and its answers collapse: "
        f"bench/rate_range.py); raise the device's CSI rate (ping the access point every 10 ms)"
    )


def usable_seconds(t_s: np.ndarray, max_gap_s: float = MAX_GAP_S) -> float:
    """Seconds of a capture in stretches long enough for a window (MIN_WINDOW_S) between
    silences over `max_gap_s`: what windows can be cut from."""
    t = np.asarray(t_s, dtype=np.float64)
    spans = [capture_seconds(t[seg]) for seg in stretches(t, max_gap_s) if len(seg) > 1]
    return float(sum(s for s in spans if s + 1e-9 >= MIN_WINDOW_S))


def stretch_windows(
    csi: np.ndarray, t_s: np.ndarray, hop_s: float, amplitude_only: bool = False, max_gap_s: float = MAX_GAP_S
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`windows_from_capture` per stretch of the capture between gaps of more than
    `max_gap_s` (a dropped link, or separate recordings joined): (n, T, F) windows, their start
    times (s from the first packet) and lengths (s). Stretches under MIN_WINDOW_S give none.
    The capsule's windows and a client's calibration windows are cut the same way."""
    t = np.asarray(t_s, dtype=np.float64)
    xs, starts, lengths = [], [], []
    for seg in stretches(t, max_gap_s):
        if len(seg) < 2 or capture_seconds(t[seg]) + 1e-9 < MIN_WINDOW_S:
            continue
        x = windows_from_capture(csi[seg], t[seg], hop_s=hop_s, amplitude_only=amplitude_only)
        st, length = window_starts(t[seg], hop_s)
        xs.append(x)
        starts.append(np.asarray(st) - t[0])
        lengths.append(np.full(len(x), min(length, WINDOW_S)))
    if not xs:
        return np.zeros((0, T, N_FEATURES), np.float32), np.zeros(0), np.zeros(0)
    return np.concatenate(xs), np.concatenate(starts), np.concatenate(lengths)


def drop_phase(x: np.ndarray, rows=slice(None)):
    """Turn windows (..., T, N_FEATURES) into their amplitude-only form, in place."""
    x[rows, :, PHASE_COLUMNS] = 0.0
    x[rows, :, FLAG_COLUMN] = 0.0
    return x


N_SUMMARY = 3 + N_DOPPLER


def summary(x: np.ndarray) -> np.ndarray:
    """(n, T, N_FEATURES) windows -> (n, N_SUMMARY): log spread (per-subcarrier std of the
    relative amplitude over the window), log white level (adjacent-sample differences / sqrt 2),
    log std of the slow gain, and the mean Doppler profile; over valid samples only."""
    out = np.zeros((len(x), N_SUMMARY), np.float32)
    for i, w in enumerate(x):
        v = w[w[:, VALID_COLUMN] > 0.5]
        rel = v[:, AMP_COLUMNS]
        out[i, 0] = np.log(rel.std(axis=0).mean() + 1e-4)
        out[i, 1] = np.log(np.sqrt(np.mean(np.diff(rel, axis=0) ** 2) / 2) + 1e-4)
        out[i, 2] = np.log(v[:, SLOW_COLUMN].std() + 1e-4)
        out[i, 3:] = v[:, DOPPLER_COLUMNS].mean(axis=0)
    return out
