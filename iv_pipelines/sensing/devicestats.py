"""Temporal statistics of CSI captures: what a device calibration measures and fits.

Everything here works on amplitudes of the used subcarriers (+-2..+-26), so it is defined the
same way for full I/Q captures and amplitude-only logs. "Relative amplitude" is the amplitude
divided per packet by its mean over subcarriers (removes the common-mode AGC gain), then by
its mean over time per subcarrier, minus 1.

Per capture (raw packets, before any resampling):
- `rate_hz`, `jitter_ms` (std of the inter-packet time around its nominal period), and the
  drops implied by longer gaps: `drop_rate` (share of expected packets missing) and
  `burst_len` (mean run of consecutive missing packets) — only when the capture has real
  timestamps;
- `gain_jitter`: log std of the per-packet common-mode gain, from adjacent differences (white
  part only: slow body-induced power changes do not enter);
- `peak`: 95th percentile magnitude, the int8 scale the AGC settles on;
- `white`: per-subcarrier packet-to-packet fluctuation, sqrt(mean (r[t+1]-r[t])^2 / 2) of the
  relative amplitude r (a white floor of std s gives s; a slow change gives ~0), the median
  over ~0.5 s blocks (`typical_white_level`: robust to brief bursts);
- `spread`: median over 2 s windows of the per-subcarrier std of r over the window;
- `lag1`: mean lag-1 autocorrelation of r (0 white, -> 1 smooth);
- `glitch_rate` / `glitch_size`: the share of packets `features.glitch_mask` drops for their
  pattern and the log std of that pattern against the capture's median; `agc_flip_rate`: the
  share it drops as AGC gain-state flips; every other statistic is computed on the cleaned
  packets, as the model sees them;
- `burst_share`: the share of ~0.5 s blocks BURST_FACTOR times whiter than the typical block
  (bursts of interference in a quiet room);
- `adjacent_corr` / `lag2_corr`: the correlation of packet-to-packet changes of subcarriers
  one and two apart (independent noise 0; a smooth ripple across the band correlates both,
  neighbour smoothing mostly the first);
- `correlated`: the part of the spread that is not white: the per-subcarrier std over 2 s
  windows of r averaged over m ~ 0.1 s of packets, with the white share w^2/m removed;
- `rise`: how fast the correlated part decorrelates, from the structure function
  D(lag) = mean (r[t+lag]-r[t])^2: (D(50 ms) - D(1)) / (D(300 ms) - D(1)); white noise cancels
  out of it. Slow movement ~0.3, walking at 1 m/s ~1 (it grows with the body's speed up to
  about 0.8-1 m/s, then saturates).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from iv_pipelines.sensing.formats import USED_INDEX

WINDOW_S = 2.0


@dataclass(frozen=True)
class CaptureStats:
    n_packets: int
    duration_s: float
    rate_hz: float
    jitter_ms: float | None
    drop_rate: float | None
    burst_len: float | None
    gain_jitter: float
    peak: float
    white: float
    spread: float
    lag1: float
    correlated: float
    rise: float
    glitch_rate: float = 0.0
    glitch_size: float = 0.0
    agc_flip_rate: float = 0.0
    adjacent_corr: float = 0.0
    lag2_corr: float = 0.0
    burst_share: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def relative_amplitude(amp: np.ndarray) -> np.ndarray:
    """(T, S) amplitudes -> relative amplitude (per-packet normalised, minus 1 around the mean)."""
    a = amp / np.maximum(amp.mean(axis=1, keepdims=True), 1e-9)
    return a / np.maximum(a.mean(axis=0, keepdims=True), 1e-9) - 1.0


def white_level(rel: np.ndarray) -> float:
    if len(rel) < 2:
        return float("nan")
    return float(np.sqrt(np.mean((rel[1:] - rel[:-1]) ** 2) / 2))


def correlated_part(w: np.ndarray, m: int) -> float:
    """The spread of (T, S) relative amplitudes `w` that is not packet-to-packet: the variance
    of their m-sample moving average less what white noise leaves in it (white level^2 / m),
    as a standard deviation (`correlated`; also the stillness check's, `intensity.py`); 0 for a
    stretch no longer than m packets (nothing to average)."""
    if len(w) <= m:
        return 0.0
    c = np.cumsum(np.vstack([np.zeros((1, w.shape[1])), w]), axis=0)
    sm = (c[m:] - c[:-m]) / m  # the moving average's "valid" part, every column at once
    return float(np.sqrt(max(np.mean(sm.var(axis=0)) - white_level(w) ** 2 / m, 0.0)))


def lag1_autocorrelation(rel: np.ndarray) -> float:
    """Mean over subcarriers of the lag-1 autocorrelation of (T, S) relative amplitudes
    (`lag1`: 0 white, -> 1 smooth)."""
    r = rel - rel.mean(axis=0)
    return float(np.mean((r[1:] * r[:-1]).sum(axis=0) / np.maximum((r * r).sum(axis=0), 1e-12)))


WHITE_BLOCK = 50  # packets (~0.5 s)


BURST_FACTOR = 1.6  # a ~0.5 s block this much whiter than the typical block is a burst


def burst_share(rel: np.ndarray) -> float:
    """Share of ~0.5 s blocks whose white level exceeds BURST_FACTOR x the median block's: how
    often a quiet capture has bursts of extra noise (interference, other traffic)."""
    n = len(rel) // WHITE_BLOCK
    if n < 4:
        return 0.0
    w = np.array([white_level(rel[i * WHITE_BLOCK : (i + 1) * WHITE_BLOCK]) for i in range(n)])
    return float(np.mean(w > BURST_FACTOR * np.median(w)))


def typical_white_level(rel: np.ndarray) -> float:
    """The white level of the capture's typical stretch: the median over ~0.5 s blocks (the
    whole capture when it has fewer than 4). Brief bursts (interference, glitches the cleaner
    keeps because they come in runs) then move it as little as they move the floor the model
    sees most of the time; a plain mean over the capture made the device fit explain them with
    a noisier receiver."""
    n = len(rel) // WHITE_BLOCK
    if n < 4:
        return white_level(rel)
    return float(np.median([white_level(rel[i * WHITE_BLOCK : (i + 1) * WHITE_BLOCK]) for i in range(n)]))


def timing_stats(t_s: np.ndarray) -> tuple[float, float, float, float]:
    """(rate_hz, jitter_ms, drop_rate, burst_len) from packet timestamps. A silence of more
    than MAX_GAP_S cuts the capture (no window spans it, in the capsule or the calibration),
    so it is not counted as a run of dropped packets."""
    from iv_pipelines.sensing.features import MAX_GAP_S

    dt = np.diff(t_s)
    dt = dt[(dt > 0) & (dt <= MAX_GAP_S)]
    if len(dt) < 3:
        return float("nan"), float("nan"), float("nan"), float("nan")
    period = float(np.median(dt))
    missing = np.maximum(np.round(dt / period) - 1, 0).astype(int)
    on_time = dt[missing == 0]
    jitter = float(np.std(on_time - period) * 1000) if len(on_time) > 2 else float("nan")
    runs = missing[missing > 0]
    expected = len(dt) + missing.sum()
    drop = float(missing.sum() / expected) if expected else 0.0
    burst = float(runs.mean()) if len(runs) else 1.0
    return 1.0 / period, jitter, drop, burst


def capture_stats(csi: np.ndarray, t_s: np.ndarray, timestamps: bool = True) -> CaptureStats:
    """Statistics of one capture: complex (T, 64) centred CSI (or real amplitudes in the same
    layout) and its packet times in seconds; `timestamps=False` when the times were synthesised
    from a declared rate (amplitude CSV logs), so jitter and drops are unknown."""
    from iv_pipelines.sensing.features import glitch_mask

    raw = np.abs(np.asarray(csi)[:, USED_INDEX]).astype(np.float64) + 1e-6
    if len(raw) < 10:
        raise ValueError(f"a capture needs at least 10 packets for statistics, got {len(raw)}")
    t_all = np.asarray(t_s, dtype=np.float64)
    pattern_ok, gain_ok = glitch_mask(raw, parts=True)
    keep = pattern_ok & gain_ok
    glitch_rate = float(1 - (pattern_ok | ~gain_ok).mean())  # pattern glitches that are not flips
    agc_flip_rate = float(1 - gain_ok.mean())
    glitch_size = 0.0
    bad = ~pattern_ok & gain_ok
    if bad.any():
        r = raw / raw.mean(axis=1, keepdims=True)
        ref = np.median(r[keep], axis=0)
        glitch_size = float(np.median(np.sqrt(np.mean(np.log(r[bad] / ref) ** 2, axis=1))))
    amp = raw[keep]
    n = len(amp)
    duration = float(t_all[-1] - t_all[0])
    rate, jitter, drop, burst = timing_stats(t_all)  # all packets: cleaning is not a drop
    if not timestamps:
        jitter = drop = burst = None
        # times synthesised from the declared rate: its spacing (the median, so that runs
        # joined with a gap between them keep the rate they were recorded at)
        dt = np.diff(t_all)
        rate = 1.0 / float(np.median(dt[dt > 0])) if (dt > 0).any() else float("nan")
    common = np.log(amp.mean(axis=1))
    gain_jitter = float(np.std(np.diff(common)) / np.sqrt(2))
    rel = relative_amplitude(amp)
    white = typical_white_level(rel)
    spreads, smooth, rises = [], [], []
    per = max(int(round(WINDOW_S * rate)), 4)
    m = max(3, int(round(0.1 * rate)))
    for s in range(0, max(n - per, 0) + 1, max(per // 2, 1)):
        w = relative_amplitude(amp[s : s + per])
        spreads.append(float(w.std(axis=0).mean()))
        # the window's own white share: motion makes the white level change from window to window
        smooth.append(correlated_part(w, m))
        l5, l30 = max(2, int(round(0.05 * rate))), max(3, int(round(0.3 * rate)))
        if len(w) > l30 + 1:
            d1, d5, d30 = (float(np.mean((w[k:] - w[:-k]) ** 2)) for k in (1, l5, l30))
            rises.append((d5 - d1) / max(d30 - d1, 1e-9) if d30 - d1 > 1e-7 else np.nan)
    spread = float(np.median(spreads)) if spreads else float(rel.std(axis=0).mean())
    correlated = float(np.median(smooth)) if smooth else 0.0
    dr = np.diff(rel, axis=0)
    dr = dr - dr.mean(axis=0)
    sd = np.maximum(dr.std(axis=0), 1e-12)
    z = dr / sd
    adjacent_corr = float(np.median((z[:, 1:] * z[:, :-1]).mean(axis=0)))
    lag2_corr = float(np.median((z[:, 2:] * z[:, :-2]).mean(axis=0)))
    lag1 = lag1_autocorrelation(rel)
    return CaptureStats(
        n_packets=n,
        duration_s=duration,
        rate_hz=float(rate),
        jitter_ms=None if jitter is None else float(jitter),
        drop_rate=None if drop is None else float(drop),
        burst_len=None if burst is None else float(burst),
        gain_jitter=gain_jitter,
        peak=float(np.percentile(amp, 95)),
        white=white,
        spread=spread,
        lag1=lag1,
        correlated=correlated,
        rise=float(np.nanmedian(rises)) if np.isfinite(rises).any() else float("nan"),
        glitch_rate=glitch_rate,
        glitch_size=glitch_size,
        agc_flip_rate=agc_flip_rate,
        adjacent_corr=adjacent_corr,
        lag2_corr=lag2_corr,
        burst_share=burst_share(rel),
    )


# A 2 s stretch of an `empty` capture "moves like someone in the room" when its spread is both
# temporally correlated and large: chosen on the twin (`bench/empty_motion.py` prints how many
# simulated empty-room, walking and sitting-down stretches reach both; no empty-room one does,
# nuisances included). One-sided: motion that shows as packet-to-packet noise is left alone.
EMPTY_MOTION_CORRELATED = 0.02
EMPTY_MOTION_LAG1 = 0.3


def stretch_stats(
    csi: np.ndarray, t_s: np.ndarray, window_s: float = 2.0, hop_s: float = 1.0
) -> list[tuple[float, CaptureStats]]:
    """(start s from the first packet, statistics) of each `window_s` stretch, every `hop_s`;
    stretches of fewer than 10 packets are left out, and so is a capture shorter than one."""
    t = np.asarray(t_s, dtype=np.float64)
    out: list[tuple[float, CaptureStats]] = []
    if len(t) < 10 or t[-1] - t[0] < window_s:
        return out
    for s0 in np.arange(t[0], t[-1] - window_s + 1e-9, hop_s):
        m = (t >= s0) & (t < s0 + window_s)
        if m.sum() >= 10:
            out.append((float(s0 - t[0]), capture_stats(np.asarray(csi)[m], t[m], timestamps=False)))
    return out


def moving_stretches(
    csi: np.ndarray, t_s: np.ndarray, window_s: float = 2.0, hop_s: float = 1.0
) -> list[tuple[float, float, float, float]]:
    """Stretches of a capture declared empty that move like someone in the room: merged
    (start s, end s, largest correlated spread, largest lag-1) of the `window_s` stretches
    (every `hop_s`) whose `correlated` and `lag1` reach EMPTY_MOTION_CORRELATED and
    EMPTY_MOTION_LAG1. Empty when the capture is shorter than one stretch."""
    found: list[list[float]] = []
    for a, st in stretch_stats(csi, t_s, window_s, hop_s):
        if st.correlated >= EMPTY_MOTION_CORRELATED and st.lag1 >= EMPTY_MOTION_LAG1:
            if found and a <= found[-1][1]:
                found[-1][1] = a + window_s
                found[-1][2] = max(found[-1][2], st.correlated)
                found[-1][3] = max(found[-1][3], st.lag1)
            else:
                found.append([a, a + window_s, st.correlated, st.lag1])
    return [tuple(f) for f in found]


def empty_motion_warnings(name: str, csi: np.ndarray, t_s: np.ndarray, uses: str) -> list[str]:
    """One warning per stretch of a capture declared empty that moves like someone in the room
    (`moving_stretches`); `uses` says what the capture's windows do (train, evaluate)."""
    return [
        f"{name} (declared empty): {a:.0f}-{b:.0f} s move like someone in the room (correlated "
        f"spread {corr:.3f}, lag-1 {lag:.2f}; an empty room stays below {EMPTY_MOTION_CORRELATED} / "
        f"{EMPTY_MOTION_LAG1}): {uses}; re-record it, or cut that stretch"
        for a, b, corr, lag in moving_stretches(csi, t_s)
    ]
