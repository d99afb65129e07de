"""ESP32 receiver impairments: what a real device does to the clean channel of the Shadow Twin.

A `Device` is one receiver in one home: its parameters are fixed for every episode recorded
there (the twin draws one per simulated room from a `DevicePrior`, and `calibration.fit_device`
fits one to a client's calibration captures). Measured on the real captures in
`shared/data/csi` (espectre ESP32/S3/C3/C5/C6, `devicestats.py` computes each statistic):
- packet rate 73-143 Hz with ~1-3 ms timing jitter and runs of dropped packets;
- per-packet common-mode gain jitter (log std) 0.02 (AGC gain locked) to 0.2 (plain ESP32);
- a white per-subcarrier floor in empty rooms of 1.5-7 % (thermal noise + int8 quantisation);
- movement raises the per-subcarrier spread to 4-18 %, mostly correlated over ~10 packets
  (body Doppler), while another lab's amplitude-only legacy-LLTF captures (issue #13) show
  walking at 21 % and falls at 37 % spread that is mostly *packet-to-packet* (white):
  `motion_noise` models that as a per-packet, per-subcarrier log-normal amplitude noise whose
  std grows with how fast the body moves, as a power law (v / 1 m/s)^`motion_exponent` (AGC
  gain-stage switching and channel estimation error while the channel changes; the mechanism
  is not identified, the statistic is). The exponent is not measurable from walking alone:
  the prior draws it from 1.5-2.5, which puts the twin's fall-clip/walking spread ratio for
  an older adult walking at 0.4-1.0 m/s at 1.6-2.5x (a 1.5 s clip), around the lab's 1.76x (for brisk adult
  walking, 0.8-1.4 m/s, falls stand out far less: 1.0-1.5x; `bench/twin_fall_spread.py`);
  twin-2.0's saturating law (phase decorrelation between packets) gave ~1.0x for everyone;
- `body_gain` scales the body's scattering against the static room (placement, antennas,
  distance): it sets the correlated part of the movement spread;
- glitch packets: 0-6 % of real packets (ESP32, S3, C6 above all) carry a CSI pattern 3-26x
  further from their neighbours than the typical packet (corrupted estimates, frames from
  another sender); `glitch_rate` / `glitch_size` simulate them and `features.clean_packets`
  drops them before resampling, in the twin and in the capsule alike;
- AGC gain-state flips: on gain-locked chips a share of packets (C6 3 %, S3 4 %, C3 0 % empty
  and 2-3 % while someone moves) arrives ~5 dB lower and with a different per-subcarrier
  pattern (another gain stage, another frequency response), in runs of 1-3 packets;
  `agc_flip_rate` / `agc_flip_motion` / `agc_flip_db` / `agc_flip_ripple` simulate them and
  `features.glitch_mask` drops them as gain excursions;
- noise correlated across subcarriers: real empty-room fluctuations of adjacent subcarriers
  correlate 0.07-0.62 (the twin's independent noise: 0), a smooth per-packet ripple across
  the band (C6: 0.6 even two subcarriers apart) and neighbour smoothing of the estimate
  (ESP32: 0.57 adjacent, 0.21 two apart); `ripple_noise` / `noise_smoothing` simulate them.
  Without them a model reads any band-wide fluctuation as a body;
- nuisances an empty room has too, so that a model cannot call any disturbance a person:
  bursts of interference (0.1-0.8 s with 3-12 dB less SNR) and AGC steps that also change the
  per-subcarrier pattern a little (gain stages are not flat across the band).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

K = np.arange(-32, 32)
NULL = (K == 0) | (np.abs(K) >= 29)


@dataclass(frozen=True)
class Device:
    """One receiver's impairments; units in the names (log std = std of the natural log)."""

    name: str = "generic"
    rate_hz: float = 100.0
    jitter_ms: float = 1.5
    drop_rate: float = 0.02
    burst_len: float = 1.5  # mean length (packets) of a run of dropped packets
    snr_db: float = 30.0  # thermal noise against the mean channel power
    gain_jitter: float = 0.03  # per-packet common-mode gain, log std
    agc_steps_per_s: float = 0.1
    agc_step_db: float = 1.5
    target_peak: float = 55.0  # int8 scale the AGC aims for (95th percentile magnitude)
    motion_noise: float = 0.0  # per-packet per-subcarrier amplitude log std at 1 m/s
    motion_exponent: float = 2.0  # how that std grows with the body's speed: (v / 1 m/s)^exponent
    body_gain: float = 1.0  # body scattering strength against the twin's nominal body
    timing_slope_std: float = 0.4  # samples of timing offset (phase slope across subcarriers)
    glitch_rate: float = 0.0  # share of packets with a corrupted CSI pattern
    glitch_size: float = 0.2  # their typical per-subcarrier amplitude log std (heavy-tailed)
    interference_per_s: float = 0.0  # bursts of extra noise (other traffic, microwave ovens)
    agc_ripple: float = 0.0  # per-subcarrier pattern change (log std) at each AGC step
    agc_flip_rate: float = 0.0  # share of packets in the other gain state, empty room
    agc_flip_motion: float = 0.0  # extra share while the body moves (per unit decorrelation)
    agc_flip_db: float = -5.0  # gain of the other state
    agc_flip_ripple: float = 0.05  # its per-subcarrier pattern change (log std)
    ripple_noise: float = 0.0  # per-packet smooth pattern across the band (log std)
    noise_smoothing: float = 0.0  # weight of each neighbour in the noise's smoothing (0-1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Device:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown device parameter(s) {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


@dataclass(frozen=True)
class DevicePrior:
    """Ranges the twin draws devices from (uniform, or log-uniform for scale parameters).

    The default ranges cover every real capture in shared/data (per-chip fits printed by
    `bench/real_devices.py`) plus the amplitude-only lab of issue #13 (white motion spread
    0.2-0.4); `calibration.prior_from_fits` builds narrower or leave-one-chip-out priors."""

    rate_hz: tuple[float, float] = (70.0, 150.0)
    jitter_ms: tuple[float, float] = (0.3, 4.0)
    drop_rate: tuple[float, float] = (0.0, 0.12)
    burst_len: tuple[float, float] = (1.0, 4.0)
    snr_db: tuple[float, float] = (20.0, 48.0)  # C6 in a quiet room fits ~45 dB
    gain_jitter: tuple[float, float] = (0.004, 0.25)
    agc_steps_per_s: tuple[float, float] = (0.0, 0.3)
    target_peak: tuple[float, float] = (20.0, 90.0)
    motion_noise: tuple[float, float] = (0.003, 0.3)
    motion_exponent: tuple[float, float] = (1.5, 2.5)
    body_gain: tuple[float, float] = (1.5, 15.0)
    glitch_rate: tuple[float, float] = (0.0, 0.08)
    glitch_size: tuple[float, float] = (0.05, 0.6)
    interference_per_s: tuple[float, float] = (0.0, 0.5)
    agc_ripple: tuple[float, float] = (0.0, 0.03)
    agc_flip_rate: tuple[float, float] = (0.0, 0.06)
    agc_flip_motion: tuple[float, float] = (0.0, 0.1)
    agc_flip_db: tuple[float, float] = (-7.0, -3.0)
    agc_flip_ripple: tuple[float, float] = (0.02, 0.1)
    ripple_noise: tuple[float, float] = (0.001, 0.05)
    noise_smoothing: tuple[float, float] = (0.0, 0.8)

    LOG_SCALED = (
        "gain_jitter",
        "motion_noise",
        "body_gain",
        "target_peak",
        "jitter_ms",
        "glitch_size",
        "ripple_noise",
    )

    def sample(self, rng: np.random.Generator, name: str = "twin") -> Device:
        kw = {}
        for f in fields(self):
            lo, hi = getattr(self, f.name)
            if f.name in self.LOG_SCALED:
                kw[f.name] = _log_uniform(rng, lo, hi)
            else:
                kw[f.name] = float(rng.uniform(lo, hi))
        return Device(name=name, **kw)

    def to_dict(self) -> dict:
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}


DEFAULT_PRIOR = DevicePrior()

# Ranges taken from a description, not from data in this repo: issue #13 reports an
# amplitude-only legacy-LLTF lab whose walking spread is 0.21 and fall spread 0.37, mostly
# white (packet-to-packet). The espectre chips fit motion_noise 0-0.07; this keeps white
# movement noise of that size in every prior, including the leave-one-chip-out ones.
DECLARED_RANGES = {"motion_noise": (0.1, 0.3)}


LAMBDA_M = 299_792_458.0 / 2.437e9
_REF = 1.0 - np.cos(4 * np.pi * 1.0 * 0.01 / LAMBDA_M)  # 1 m/s at 100 Hz


def motion_decorrelation(speed_ms: np.ndarray, dt_s: np.ndarray) -> np.ndarray:
    """How much a body moving at `speed_ms` decorrelates the channel between packets `dt_s`
    apart: sqrt(1 - cos(4 pi v dt / lambda)), relative to 1 m/s at 100 Hz (1 there, 0 at rest).

    The round-trip path of a body scatterer changes by up to 2 v dt between packets; once
    that phase step nears pi (v ~ 3 m/s at 100 Hz: falls) consecutive packets are unrelated.
    `Device.motion_noise` is the amplitude log std this produces at 1 m/s, 100 Hz."""
    x = 1.0 - np.cos(np.minimum(4 * np.pi * np.asarray(speed_ms) * np.asarray(dt_s) / LAMBDA_M, np.pi))
    return np.sqrt(x / _REF)


MAX_BODY_SPEED_MS = 5.0  # no body part of a falling person moves faster (head at impact ~3-6 m/s)


def motion_noise_scale(speed_ms: np.ndarray, exponent: float) -> np.ndarray:
    """How the motion-coupled packet noise grows with the body's speed: (v / 1 m/s)^exponent,
    1 at walking pace, 0 at rest (v capped at MAX_BODY_SPEED_MS). An empirical law: the one
    real fall statistic we have (issue #13: falls 1.76x walking in white spread) needs an
    exponent near 2 in the twin; the physical phase decorrelation between packets
    (`motion_decorrelation`) saturates at ~2x of walking pace and gives falls no more spread
    than walking."""
    v = np.clip(np.asarray(speed_ms, dtype=np.float64), 0.0, MAX_BODY_SPEED_MS)
    return v**exponent


def sample_times(duration_s: float, rng: np.random.Generator, dev: Device) -> np.ndarray:
    """Packet arrival times (s): nominal `rate_hz` with jitter, minus runs of dropped packets
    (a two-state chain: a drop starts with probability p and continues with 1 - 1/burst_len)."""
    n = int(duration_s * dev.rate_hz * 1.05) + 2
    period = 1.0 / dev.rate_hz
    dt = period + rng.normal(0, dev.jitter_ms / 1000, n).clip(-0.4 * period, 0.4 * period)
    t = np.cumsum(dt)
    t = t[t < duration_s]
    if dev.drop_rate <= 0 or len(t) < 3:
        return t
    stay = 1.0 - 1.0 / max(dev.burst_len, 1.0)
    start = dev.drop_rate * (1 - stay) / max(1 - dev.drop_rate, 1e-6)  # stationary drop share
    u = rng.random(len(t))
    keep = np.ones(len(t), bool)
    dropping = False
    for i in range(len(t)):
        dropping = u[i] < (stay if dropping else start)
        keep[i] = not dropping
    keep[0] = keep[-1] = True  # the capture's span stays the requested duration
    return t[keep]


def impair(
    h: np.ndarray, rng: np.random.Generator, dev: Device, t: np.ndarray, body_speed: np.ndarray | None = None
) -> np.ndarray:
    """Clean (T, 64) response -> what the ESP32 reports (complex, int-valued, nulls zeroed).

    `body_speed` (T,) is the RCS-weighted mean speed of the body scatterers (m/s), which drives
    the motion-coupled packet noise (`motion_noise_scale`) and the motion-driven AGC flips
    (`motion_decorrelation`)."""
    n = len(h)
    power = np.mean(np.abs(h[:, ~NULL]) ** 2)
    x = h
    if body_speed is not None and dev.motion_noise > 0 and n > 1:
        sigma = dev.motion_noise * motion_noise_scale(body_speed, dev.motion_exponent)[:, None]
        x = x * np.exp(sigma * rng.standard_normal(h.shape, dtype=np.float32))
    noise_std = np.full(n, np.sqrt(power / 10 ** (dev.snr_db / 10) / 2))
    if dev.interference_per_s > 0 and n > 1:
        span = float(t[-1] - t[0])
        for _ in range(rng.poisson(dev.interference_per_s * span)):
            a = rng.uniform(t[0], t[-1])
            hit = (t >= a) & (t < a + rng.uniform(0.1, 0.8))
            noise_std[hit] *= 10 ** (rng.uniform(3, 12) / 20)
    noise = rng.standard_normal(h.shape, dtype=np.float32) + 1j * rng.standard_normal(
        h.shape, dtype=np.float32
    )
    if dev.noise_smoothing > 0:
        w = dev.noise_smoothing
        noise = (noise + w * (np.roll(noise, 1, axis=1) + np.roll(noise, -1, axis=1))) / np.sqrt(
            1 + 2 * w * w
        )
    x = x + noise * noise_std[:, None]
    if dev.ripple_noise > 0:
        # a smooth random pattern across the band, new every packet (3 cosine/sine orders)
        phase = 2 * np.pi * np.arange(h.shape[1])[None, :, None] * np.arange(1, 4)[None, None, :] / 56
        a, b = rng.normal(size=(n, 1, 3)), rng.normal(size=(n, 1, 3))
        pattern = ((a * np.cos(phase) + b * np.sin(phase)).sum(-1)) / np.sqrt(3)
        x = x * np.exp(dev.ripple_noise * pattern)
    if dev.glitch_rate > 0:
        bad = rng.random(n) < dev.glitch_rate
        nb = int(bad.sum())
        if nb:
            shape = (nb, h.shape[1])
            x[bad] = x[bad] * np.exp(
                dev.glitch_size * rng.normal(size=shape) + 1j * rng.uniform(0, 2 * np.pi, shape)
            )
    if (dev.agc_flip_rate > 0 or dev.agc_flip_motion > 0) and n > 2:
        p = np.full(n, dev.agc_flip_rate)
        if body_speed is not None and dev.agc_flip_motion > 0:
            p = p + dev.agc_flip_motion * motion_decorrelation(np.asarray(body_speed), np.gradient(t))
        start = rng.random(n) < p / 2  # runs of 1-3 packets, mean 2
        flip = np.zeros(n, bool)
        for i in np.flatnonzero(start):
            flip[i : i + int(rng.integers(1, 4))] = True
        if flip.any():
            pattern = np.exp(dev.agc_flip_ripple * rng.normal(size=h.shape[1])) * 10 ** (dev.agc_flip_db / 20)
            x = np.where(flip[:, None], x * pattern[None, :], x)
    base = dev.target_peak / np.percentile(np.abs(x[::3, ~NULL]), 95)
    steps = np.zeros(n)
    step_times = rng.random(n) < dev.agc_steps_per_s * np.gradient(t).clip(0) if n > 1 else np.zeros(n, bool)
    steps[step_times] = rng.choice([-1, 1], step_times.sum()) * dev.agc_step_db
    gain = base * 10 ** (np.cumsum(steps).clip(-6, 6) / 20) * np.exp(rng.normal(0, dev.gain_jitter, n))
    if dev.agc_ripple > 0 and step_times.any():
        ripple = np.cumsum(step_times[:, None] * rng.normal(0, dev.agc_ripple, (n, h.shape[1])), axis=0)
        x = x * np.exp(ripple)
    phase0 = rng.uniform(0, 2 * np.pi, n)
    slope = rng.normal(0, dev.timing_slope_std, n)
    rot = np.exp(1j * (phase0[:, None] + 2 * np.pi * K[None, :] * slope[:, None] / 64))
    y = x * gain[:, None] * rot
    y = np.clip(np.round(y.real), -127, 127) + 1j * np.clip(np.round(y.imag), -127, 127)
    y[:, NULL] = 0
    y[:, 32] = rng.integers(-128, 127, n) + 1j * rng.integers(-128, 127, n)  # garbage first word (k=0)
    y[:, 33] = rng.integers(-128, 127, n) + 1j * rng.integers(-128, 127, n)  # (k=1)
    return y.astype(np.complex64)
