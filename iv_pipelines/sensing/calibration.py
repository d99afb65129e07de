"""Device calibration: fit the Shadow Twin's receiver to a device's own captures.

A client sends a few captures from their own ESP32 with a declared activity (`empty`,
`walk`, `sit`; never falls). `fit_device` turns them into a `Device` (device.py):
- measured directly: packet rate, timing jitter and runs of drops (when the capture has
  timestamps), the int8 peak the AGC settles on, the per-packet gain jitter;
- fitted by simulation (moment matching in the client's room with the client's resident):
  `snr_db` to the empty-room white floor (bisection), then `motion_noise` to the white part of
  the walking spread and `body_gain` to its correlated part (alternating 1-D searches);
- from the prior where a capture is missing (no empty capture: the floor stays at the
  prior's middle unless walking proves it lower; no empty or sitting capture: the band-wide
  ripple that walking shows is an upper bound, since the body's own fluctuation is
  correlated across subcarriers, and is capped at the prior's middle), and every parameter
  says where it came from.
`prior_from_fits` turns several devices' fits into the ranges pretraining draws from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from iv_pipelines.sensing.device import DEFAULT_PRIOR, Device, DevicePrior
from iv_pipelines.sensing.devicestats import (
    CaptureStats,
    capture_stats,
    empty_motion_warnings,
)
from iv_pipelines.sensing.features import rate_fault
from iv_pipelines.sensing.formats import CsiCapture

MIN_CALIBRATION_S = 8.0  # hard floor per capture; 20 s or more is recommended
RECOMMENDED_CALIBRATION_S = 20.0
# what a declared-empty calibration capture's windows do (its motion warnings say so)
CALIBRATION_USES = "its windows train the adapter and set the threshold as an empty room"
FIT_EPISODE_S = 4.0
FIT_EPISODES = 16


@dataclass
class Calibration:
    """One labelled capture of the client's own device."""

    activity: str
    capture: CsiCapture
    timestamps: bool = True  # False when times come from a declared rate (amplitude CSV)
    name: str = ""

    def stats(self) -> CaptureStats:
        return capture_stats(self.capture.csi, self.capture.t_s, timestamps=self.timestamps)


@dataclass
class DeviceFit:
    device: Device
    sources: dict[str, str]  # parameter -> "measured" | "fitted" | "prior"
    targets: dict[str, float]  # the statistics the fit matched
    achieved: dict[str, float]  # the same statistics of the fitted twin
    warnings: list[str] = field(default_factory=list)
    walk_speed_ms: float | None = None  # the resident's walking speed, when a walk was captured

    def to_dict(self) -> dict:
        return {
            "device": self.device.to_dict(),
            "walk_speed_ms": self.walk_speed_ms,
            "sources": self.sources,
            "targets": self.targets,
            "achieved": self.achieved,
            "warnings": self.warnings,
        }


def _mid(prior: DevicePrior, name: str) -> float:
    lo, hi = getattr(prior, name)
    return float(np.sqrt(lo * hi)) if name in DevicePrior.LOG_SCALED else (lo + hi) / 2


def resident_at(resident, walk_speed_ms: float | None):
    """The resident walking at `walk_speed_ms` (+-15 %), or unchanged when None."""
    if walk_speed_ms is None:
        return resident
    return replace(resident, walk_speed_ms=(0.85 * walk_speed_ms, 1.15 * walk_speed_ms))


def _sim_stats(
    room,
    resident,
    dev: Device,
    activity: str,
    seed: int,
    n: int = FIT_EPISODES,
    cache: tuple | None = None,
) -> dict:
    """Median capture statistics of `n` twin episodes; `cache` = (static, body cache) shared
    by one fit's searches (episodes identical to uncached ones, simulated once)."""
    from iv_pipelines.sensing.twin import CALIBRATION_VARIANT, simulate_episode

    static, bodies = cache if cache is not None else (None, None)
    rows = []
    for e in range(n):
        ep = simulate_episode(
            room,
            activity,
            seed=seed + e,
            duration_s=FIT_EPISODE_S,
            device=dev,
            resident=resident,
            _static=static,
            _body_cache=bodies,
            variant=CALIBRATION_VARIANT.get(activity),
        )
        rows.append(capture_stats(ep.csi, ep.t_s))
    return {
        "white": float(np.median([r.white for r in rows])),
        "correlated": float(np.median([r.correlated for r in rows])),
        "spread": float(np.median([r.spread for r in rows])),
        "peak": float(np.median([r.peak for r in rows])),
        "glitch_rate": float(np.median([r.glitch_rate for r in rows])),
        "burst_share": float(np.mean([r.burst_share for r in rows])),
        "rise": float(np.nanmedian([r.rise for r in rows])),
    }


def _bisect_log(f, target: float, lo: float, hi: float, increasing: bool, steps: int = 8) -> float:
    """x in [lo, hi] (log scale) with f(x) ~ target for a monotonic f."""
    a, b = np.log(lo), np.log(hi)
    for _ in range(steps):
        m = (a + b) / 2
        above = f(float(np.exp(m))) > target
        if above == increasing:
            b = m
        else:
            a = m
    return float(np.exp((a + b) / 2))


def ripple_reading(white: float, lag2_corr: float) -> float:
    """The band-wide ripple (`Device.ripple_noise`) that a capture's white level and the
    correlation of its packet-to-packet changes two subcarriers apart imply (`devicestats`):
    a smooth pattern across the band, new every packet, is shared by subcarriers two apart
    and the white part is not, so that correlation is R^2 / (R^2 + W^2)."""
    c2 = float(np.clip(lag2_corr, 0.0, 0.9))
    return float(white * np.sqrt(c2 / (1 - c2)))


def fit_device(
    calibrations: list[Calibration],
    room,
    resident,
    seed: int = 0,
    prior: DevicePrior = DEFAULT_PRIOR,
    name: str = "client-device",
) -> DeviceFit:
    """Fit a Device to `calibrations` (see the module docstring); deterministic per seed."""
    from functools import partial

    from iv_pipelines.sensing.twin import static_response

    _sim = partial(_sim_stats, cache=((static_response(room), room.digest()), {}))
    if not calibrations:
        raise ValueError("device calibration needs at least one capture")
    warnings = []
    by_act: dict[str, list[CaptureStats]] = {}
    for c in calibrations:
        if c.activity not in ("empty", "walk", "sit"):
            raise ValueError(f"calibration activity {c.activity!r}: use empty, walk or sit (never falls)")
        slow = rate_fault(c.capture.t_s)
        if slow:
            raise ValueError(f"calibration capture {c.name or c.activity!r}: {slow}")
        st = c.stats()
        if st.duration_s + 1e-6 < MIN_CALIBRATION_S:
            raise ValueError(
                f"calibration capture {c.name or c.activity!r} lasts {st.duration_s:.1f} s; "
                f"at least {MIN_CALIBRATION_S:.0f} s are needed ({RECOMMENDED_CALIBRATION_S:.0f} s recommended)"
            )
        if st.duration_s < RECOMMENDED_CALIBRATION_S:
            warnings.append(
                f"{c.name or c.activity}: {st.duration_s:.1f} s of {c.activity}; "
                f"{RECOMMENDED_CALIBRATION_S:.0f} s or more give a steadier fit"
            )
        if c.activity == "empty":
            warnings += empty_motion_warnings(
                c.name or c.activity, c.capture.csi, c.capture.t_s, CALIBRATION_USES
            )
        by_act.setdefault(c.activity, []).append(st)
    all_stats = [s for v in by_act.values() for s in v]
    sources: dict[str, str] = {}
    kw: dict[str, float] = {}
    timed = [s for s in all_stats if s.jitter_ms is not None]
    kw["rate_hz"] = float(np.median([s.rate_hz for s in all_stats]))
    sources["rate_hz"] = "measured"
    if timed:
        kw["jitter_ms"] = float(np.median([s.jitter_ms for s in timed]))
        kw["drop_rate"] = float(np.median([s.drop_rate for s in timed]))
        kw["burst_len"] = float(np.median([s.burst_len for s in timed]))
        sources.update(jitter_ms="measured", drop_rate="measured", burst_len="measured")
    else:
        for p in ("jitter_ms", "drop_rate", "burst_len"):
            kw[p] = _mid(prior, p)
            sources[p] = "prior (no timestamps)"
    quiet = by_act.get("empty") or by_act.get("sit") or all_stats
    kw["gain_jitter"] = float(min(np.median([s.gain_jitter for s in quiet]), prior.gain_jitter[1]))
    sources["gain_jitter"] = "measured"
    peak_target = float(np.median([s.peak for s in all_stats]))
    dev = replace(
        Device(name=name), **kw, target_peak=peak_target, agc_steps_per_s=_mid(prior, "agc_steps_per_s")
    )
    sources["target_peak"] = "measured"
    dev = replace(
        dev,
        glitch_rate=float(np.median([s.glitch_rate for s in quiet])),
        glitch_size=float(
            np.median([s.glitch_size for s in quiet if s.glitch_size > 0] or [_mid(prior, "glitch_size")])
        ),
    )
    sources["glitch_rate"] = "measured, corrected for undetected glitches"
    sources["glitch_size"] = "measured"
    quiet_flips = float(np.median([s.agc_flip_rate for s in quiet]))
    moving_stats = by_act.get("walk") or by_act.get("sit") or []
    moving_flips = float(np.median([s.agc_flip_rate for s in moving_stats])) if moving_stats else quiet_flips
    dev = replace(dev, agc_flip_rate=quiet_flips, agc_flip_motion=max(moving_flips - quiet_flips, 0.0))
    sources["agc_flip_rate"] = "measured"
    for p in ("interference_per_s", "agc_ripple", "agc_flip_db", "agc_flip_ripple", "motion_exponent"):
        dev = replace(dev, **{p: _mid(prior, p)})
        sources[p] = "prior"
    sources["agc_flip_motion"] = "measured (walk - empty)" if moving_stats and "empty" in by_act else "prior"
    sources["agc_steps_per_s"] = "prior"
    targets, achieved = {"peak": peak_target}, {}
    # the AGC aims the pre-quantisation 95th percentile at target_peak; jitter moves the
    # reported one a little: one ratio correction on a simulated capture of the same device
    sim_peak = _sim(room, resident, dev, (sorted(by_act)[0]), seed + 7, n=2)["peak"]
    dev = replace(dev, target_peak=float(dev.target_peak * peak_target / max(sim_peak, 1e-6)))

    # correlation of the noise across subcarriers, from the quietest captures
    c1 = float(np.clip(np.median([s.adjacent_corr for s in quiet]), 0.0, 0.95))
    c2 = float(np.clip(np.median([s.lag2_corr for s in quiet]), 0.0, 0.9))
    white_q = float(np.median([s.white for s in quiet]))
    excess = max(c1 - c2, 0.0)  # neighbour smoothing: corr = 2w / (1 + 2 w^2)
    smooth_w = 0.0 if excess < 1e-3 else float((1 - np.sqrt(max(1 - 2 * excess**2, 0.0))) / (2 * excess))
    ripple = ripple_reading(white_q, c2)
    sources["ripple_noise"] = sources["noise_smoothing"] = "measured (noise correlation across subcarriers)"
    if not ("empty" in by_act or "sit" in by_act):
        # only moving captures: the body's own fluctuation is correlated across subcarriers
        # and reads as band-wide ripple, so walking bounds the device's ripple from above and
        # no more (docs/sensing.md, *Device calibration*); the prior's middle caps it
        cap = _mid(prior, "ripple_noise")
        if ripple > cap:
            sources["ripple_noise"] = (
                f"prior's middle (no empty or sitting capture; walking measured {ripple:.4f}, "
                "an upper bound: the body's fluctuation is correlated across subcarriers)"
            )
            ripple = cap
    dev = replace(dev, ripple_noise=ripple, noise_smoothing=min(smooth_w, 1.0))
    targets["quiet_adjacent_corr"], targets["quiet_lag2_corr"] = c1, c2
    if "empty" in by_act:
        white0 = float(np.median([s.white for s in by_act["empty"]]))
        targets["empty_white"] = white0

        def white_at(snr):
            return _sim(room, resident, replace(dev, snr_db=snr), "empty", seed + 11)["white"]

        snr = -10 * np.log10(
            _bisect_log(
                lambda x: white_at(-10 * np.log10(x)), white0, 10 ** (-45 / 10), 10 ** (-12 / 10), True
            )
        )
        dev = replace(dev, snr_db=float(snr))
        sources["snr_db"] = "fitted"
        achieved["empty_white"] = white_at(dev.snr_db)
    else:
        dev = replace(dev, snr_db=_mid(prior, "snr_db"))
        sources["snr_db"] = "prior (no empty capture)"

    # small glitches pass the detector: what it counts is less than what the device does; one
    # ratio correction against the same detector on the twin of this device
    measured_glitches = dev.glitch_rate
    if measured_glitches > 0:
        seen = _sim(room, resident, dev, "empty", seed + 13, n=4)["glitch_rate"]
        if seen > 1e-4:
            dev = replace(dev, glitch_rate=float(min(measured_glitches * measured_glitches / seen, 0.2)))
    targets["glitch_rate"] = measured_glitches
    if "empty" in by_act:
        # bursts of interference: as often as the empty captures show them (one ratio
        # correction against the same burst detector on the twin at the prior's middle rate)
        b_t = float(np.mean([s.burst_share for s in by_act["empty"]]))
        targets["empty_burst_share"] = b_t
        seen = _sim(room, resident, dev, "empty", seed + 17)["burst_share"]
        rate = dev.interference_per_s * (b_t / seen if seen > 1e-6 else 1.0)
        dev = replace(dev, interference_per_s=float(np.clip(rate, *prior.interference_per_s)))
        sources["interference_per_s"] = "fitted (bursts in the empty capture)"
    moving = "walk" if "walk" in by_act else "sit" if "sit" in by_act else None
    walk_speed = None
    if moving:
        w_t = float(np.median([s.white for s in by_act[moving]]))
        c_t = float(np.median([s.correlated for s in by_act[moving]]))
        targets[f"{moving}_white"], targets[f"{moving}_correlated"] = w_t, c_t
        if "empty" not in by_act:
            # the floor cannot be whiter than the walking capture
            floor = _sim(room, resident, dev, "empty", seed + 11)["white"]
            if floor > 0.8 * w_t:
                dev = replace(
                    dev,
                    snr_db=float(
                        -10
                        * np.log10(
                            _bisect_log(
                                lambda x: _sim(
                                    room, resident, replace(dev, snr_db=-10 * np.log10(x)), "empty", seed + 11
                                )["white"],
                                0.5 * w_t,
                                10 ** (-45 / 10),
                                10 ** (-12 / 10),
                                True,
                            )
                        )
                    ),
                )
                sources["snr_db"] = "bounded by the walking capture (no empty capture)"
        r_t = float(np.nanmedian([s.rise for s in by_act[moving]]))
        targets[f"{moving}_rise"] = r_t
        dev = replace(dev, motion_noise=_mid(prior, "motion_noise"), body_gain=_mid(prior, "body_gain"))
        speed = float(np.mean(resident.walk_speed_ms)) if moving == "walk" else None
        floor = targets.get("empty_white", 0.0)
        # the walking speed shows in how fast the correlated part decorrelates; when the
        # spread is mostly white that is unmeasurable and the resident's typical speed stays
        speed_measurable = c_t > 1.5 * np.sqrt(max(w_t**2 - floor**2, 0.0))
        # common random numbers: every round simulates the same episodes, so the alternating
        # searches converge instead of chasing the spread between random walking paths
        s_seed = seed + 100
        for _rnd in range(3):
            if moving == "walk" and np.isfinite(r_t) and speed_measurable:
                speed = _bisect_log(
                    lambda v, d=dev, ss=s_seed: _sim(room, resident_at(resident, v), d, "walk", ss)["rise"],
                    r_t,
                    0.25,
                    1.0,
                    True,
                    steps=5,
                )
            res = resident_at(resident, speed)
            dev = replace(
                dev,
                motion_noise=_bisect_log(
                    lambda k, d=dev, r=res, ss=s_seed: _sim(room, r, replace(d, motion_noise=k), moving, ss)[
                        "white"
                    ],
                    w_t,
                    1e-4,
                    1.0,
                    True,
                    steps=7,
                ),
            )
            got = _sim(room, res, dev, moving, s_seed)
            bg = dev.body_gain
            if got["correlated"] > 1e-4 and c_t > 1e-4:
                # within the prior's range: beyond it the body swamps the room and the twin
                # stops being a room (the fit then reports the statistic it could not reach)
                bg = float(np.clip(bg * (c_t / got["correlated"]), prior.body_gain[0], prior.body_gain[1]))
            dev = replace(dev, body_gain=bg)
        # what the model sees is the window spread: a last correction of the body's strength
        # to it (its white part left as fitted), on the same episodes
        s_t = float(np.median([s.spread for s in by_act[moving]]))
        targets[f"{moving}_spread"] = s_t
        res = resident_at(resident, speed)
        for _ in range(2 if speed_measurable else 0):  # a mostly white spread says little of the body
            got = _sim(room, res, dev, moving, s_seed)
            have = got["spread"] ** 2 - got["white"] ** 2
            want = s_t**2 - got["white"] ** 2
            if have > 1e-8 and want > 1e-8:
                bg = float(
                    np.clip(dev.body_gain * np.sqrt(want / have), prior.body_gain[0], prior.body_gain[1])
                )
                dev = replace(dev, body_gain=bg)
        got = _sim(room, res, dev, moving, seed + 999)
        for k in ("white", "correlated", "rise", "spread"):
            achieved[f"{moving}_{k}"] = got[k]
        sources["motion_noise"] = sources["body_gain"] = f"fitted ({moving} capture)"
        walk_speed = speed
    else:
        dev = replace(dev, motion_noise=_mid(prior, "motion_noise"), body_gain=_mid(prior, "body_gain"))
        sources["motion_noise"] = sources["body_gain"] = "prior (no walk or sit capture)"
        warnings.append(
            "no walk or sit capture: the body's strength on this device is a guess from the prior"
        )
    return DeviceFit(dev, sources, targets, achieved, warnings, walk_speed if moving == "walk" else None)


# the SNR depends on the distance between the sensor and the access point and on the walls
# between them, not on the chip: a prior built from a few chips' fits keeps the physical range
PLACEMENT_RANGES = ("snr_db",)


def prior_from_fits(
    devices: list[Device],
    margin: float = 1.5,
    base: DevicePrior = DEFAULT_PRIOR,
    declared: dict[str, tuple[float, float]] | None = None,
) -> DevicePrior:
    """Ranges spanning `devices` (scale parameters widened by x/÷ `margin`, others by the
    same share of their range), united with `declared` ranges (device.DECLARED_RANGES by
    default); parameters the fits do not vary, or cannot measure without timestamps (jitter,
    drops), keep `base`'s range."""
    from iv_pipelines.sensing.device import DECLARED_RANGES

    declared = DECLARED_RANGES if declared is None else declared
    unmeasured = {
        "jitter_ms",
        "drop_rate",
        "burst_len",
        "agc_steps_per_s",
        "interference_per_s",
        "agc_ripple",
    }
    kw = {}
    for name in base.__dataclass_fields__:
        vals = np.array([getattr(d, name) for d in devices], dtype=float)
        lo, hi = float(vals.min()), float(vals.max())
        if name in DevicePrior.LOG_SCALED:
            lo, hi = max(lo / margin, 1e-4), hi * margin
        else:
            pad = (hi - lo) * (margin - 1) / 2 + 1e-9
            b_lo, b_hi = getattr(base, name)
            lo, hi = max(lo - pad, 0.0 if b_lo >= 0 else lo - pad), hi + pad
        if hi - lo < 1e-6 or name in unmeasured:
            lo, hi = getattr(base, name)
        if name in declared:
            lo, hi = min(lo, declared[name][0]), max(hi, declared[name][1])
        if name in PLACEMENT_RANGES:  # set by where the devices stand, not by the chip
            b_lo, b_hi = getattr(base, name)
            lo, hi = min(lo, b_lo), max(hi, b_hi)
        kw[name] = (lo, hi)
    return DevicePrior(**kw)
