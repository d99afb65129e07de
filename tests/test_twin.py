"""Shadow Twin simulator: determinism, physics, realism against real captures."""

import numpy as np
import pytest
from conftest import SHARED

from iv_pipelines.sensing.formats import USED_INDEX
from iv_pipelines.sensing.twin import (
    ACTIVITIES,
    LAMBDA,
    RESIDENTS,
    Room,
    body_trajectory,
    simulate_episode,
)


def _cv(csi):
    a = np.abs(csi[:, USED_INDEX])
    return float((a.std(0) / a.mean(0)).mean())


def test_wavelength_and_determinism():
    assert LAMBDA == pytest.approx(0.123, abs=0.001)
    room = Room.random(np.random.default_rng(0))
    a = simulate_episode(room, "fall", seed=5)
    b = simulate_episode(room, "fall", seed=5)
    c = simulate_episode(room, "fall", seed=6)
    np.testing.assert_array_equal(a.csi, b.csi)
    assert not np.array_equal(a.csi, c.csi)


def test_esp32_output_shape_nulls_and_int8():
    ep = simulate_episode(Room.random(np.random.default_rng(1)), "walk", seed=2, duration_s=3.0)
    k = np.arange(-32, 32)
    assert np.all(ep.csi[:, np.abs(k) >= 29] == 0)
    assert np.all(np.abs(ep.csi.real) <= 128) and np.all(ep.csi.real == np.round(ep.csi.real))
    dt = np.diff(ep.t_s)
    assert 0.008 < np.median(dt) < 0.012 and dt.max() > 0.015  # ~100 Hz with jitter and drops


def test_fall_doppler_reaches_50_to_100_hz():
    """Head impact speeds of falls from standing are ~3-6 m/s (fall biomechanics): at 2.4 GHz
    that is a monostatic Doppler of 50-100 Hz, above the Nyquist rate of 100 Hz CSI."""
    room = Room(5, 4, 2.6, (0.2, 2, 2), (4.8, 2, 1), furniture=[])
    t = np.arange(0, 3, 0.001)
    speeds = []
    for seed in range(20):
        head = body_trajectory("fall", t, room, np.random.default_rng(seed))[:, 0, :]
        v = np.linalg.norm(np.gradient(head, t, axis=0), axis=1).max()
        speeds.append(v)
    doppler = 2 * np.array(speeds) / LAMBDA  # monostatic upper bound of the head's Doppler
    assert 50 < np.median(doppler) < 100
    sit = body_trajectory("sit", t, room, np.random.default_rng(0))[:, 0, :]
    assert np.linalg.norm(np.gradient(sit, t, axis=0), axis=1).max() < min(speeds)


def test_device_prior_covers_the_real_bands_from_their_middle_up():
    """Temporal CV of amplitude over 10 s (the shared/data README statistic: real empty rooms
    0.031-0.197, real movement 0.130-0.305), pretraining resident (walking 0.3-1.4 m/s), one
    device per home from the default prior. The prior overlaps both bands and covers their
    noisy end (and beyond: the amplitude-only lab of issue #13 is noisier still), but NOT the
    quietest real devices: its 5th percentiles are ~0.06 (empty) and ~0.24 (walking) where the
    quietest real chips show 0.031 and 0.130. A prior reaching down there made the uncalibrated model call real empty
    rooms occupied (docs/sensing.md, Real devices); quiet devices are covered by calibration, whose
    fitted twin holds each chip's real bands (tests/test_device_calibration.py)."""
    rng = np.random.default_rng(7)
    cv = {a: [] for a in ACTIVITIES}
    for i in range(40):
        room = Room.random(rng)
        for j, act in enumerate(("empty", "walk")):
            ep = simulate_episode(room, act, seed=i * 10 + j, duration_s=10, resident=RESIDENTS["mixed"])
            cv[act].append(_cv(ep.csi))
    for act, (_lo, hi) in {"empty": (0.031, 0.197), "walk": (0.130, 0.305)}.items():
        p5, p95 = np.percentile(cv[act], [5, 95])
        assert p5 <= hi <= p95, (act, p5, p95)  # overlaps the band and covers its noisy end
    # the known gaps, stated (if they close, say so in docs/sensing.md): the prior's quietest
    # empty rooms and weakest walking are louder than the quietest real chips' captures
    assert np.percentile(cv["empty"], 5) > 0.031 and np.percentile(cv["walk"], 5) > 0.130
    assert np.median(cv["walk"]) > 1.5 * np.median(cv["empty"])


def _selectivity(csi):
    """Frequency selectivity of a channel: std/mean across subcarriers of the mean amplitude."""
    a = np.abs(csi[:, USED_INDEX]).mean(0)
    return float(a.std() / a.mean())


def test_static_channel_is_as_frequency_selective_as_real_rooms():
    """Real empty-room captures (every espectre `baseline` file) against 40 random twin rooms:
    the simulated median must lie inside the real range and within a factor 1.6 of the real
    median (the specular-only twin 1.0 had a median of 0.036: too flat)."""
    from iv_pipelines.sensing.formats import load_espectre_npz
    from iv_pipelines.sensing.twin import static_response

    files = sorted(
        (SHARED / "data" / "csi" / "francescopace__espectre" / "micro-espectre" / "data").glob(
            "*/baseline_*.npz"
        )
    )
    assert len(files) >= 8, "real baseline captures missing from shared/data"
    real = [_selectivity(load_espectre_npz(f).csi) for f in files]
    rng = np.random.default_rng(11)
    sim = [_selectivity(static_response(Room.random(rng))[None]) for _ in range(40)]
    assert min(real) <= np.median(sim) <= max(real), (np.median(sim), min(real), max(real))
    assert np.median(real) / 1.6 <= np.median(sim) <= np.median(real) * 1.6, (
        np.median(sim),
        np.median(real),
    )


def test_unknown_activity_is_an_error():
    with pytest.raises(ValueError, match="unknown activity 'dance'"):
        body_trajectory(
            "dance", np.arange(0, 1, 0.01), Room.random(np.random.default_rng(0)), np.random.default_rng(0)
        )


def test_parallel_simulation_gives_the_same_windows_as_sequential():
    import numpy as np

    from iv_pipelines.sensing.datasets import windows_dataset
    from iv_pipelines.sensing.pipeline import random_rooms

    rooms = random_rooms(5, 3)
    x1, y1, c1 = windows_dataset(rooms, 1, 5)
    x2, y2, c2 = windows_dataset(rooms, 1, 5, workers=2)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2) and np.array_equal(c1, c2)
    assert len(np.unique(c1, axis=0)) == 5  # one device, one calibration context per home


def test_body_cache_gives_the_episodes_an_uncached_simulation_gives():
    """Device calibration reuses the body's scattering across its searches: a cached episode
    must equal the uncached one, for any noise/gain parameters of the device."""
    from dataclasses import replace

    from iv_pipelines.sensing.device import Device

    room = Room.random(np.random.default_rng(3))
    cache: dict = {}
    dev = Device(rate_hz=100, drop_rate=0.05, snr_db=30, motion_noise=0.1)
    for snr, gain in ((30, 2.0), (22, 5.0), (30, 2.0)):
        d = replace(dev, snr_db=snr, body_gain=gain)
        got = simulate_episode(room, "walk", 11, duration_s=3.0, device=d, _body_cache=cache)
        want = simulate_episode(room, "walk", 11, duration_s=3.0, device=d)
        np.testing.assert_array_equal(got.csi, want.csi)
        np.testing.assert_array_equal(got.t_s, want.t_s)
    assert len(cache) == 1


def test_glitch_cleaner_drops_isolated_glitches_but_keeps_a_burst_of_motion():
    """Issue #13: real falls show up as a burst of packet-to-packet fluctuation. The cleaner
    judged glitches against the capture's median, so the stillness around a fall made the
    fall's own packets "glitches" (10-40 % of a fall clip dropped). Judged against the local
    fluctuation, a 0.4 s burst is kept whole and isolated corrupted packets are still dropped."""
    from iv_pipelines.sensing.features import glitch_mask

    rng = np.random.default_rng(0)
    n, s = 300, 50
    pattern = rng.uniform(20, 60, s)
    sigma = np.full(n, 0.01)
    sigma[120:160] = 0.3  # the fall: 0.4 s of strong white fluctuation
    amp = pattern * np.exp(sigma[:, None] * rng.standard_normal((n, s)))
    glitches = [30, 60, 250]  # isolated corrupted estimates in the quiet parts
    amp[glitches] *= np.exp(0.5 * rng.standard_normal((len(glitches), s)))
    keep = glitch_mask(amp)
    assert keep[120:160].all()
    assert not keep[glitches].any()
    near = np.zeros(n, bool)
    for g in glitches:  # a gross glitch may take its +-2 neighbours with it (documented)
        near[g - 2 : g + 3] = True
    assert keep[~near].all()


def test_twin_falls_stand_out_of_walking_in_white_spread_on_a_white_noise_device():
    """The motion-coupled noise grows as a power of the body's speed (device.motion_noise_scale):
    on a device whose motion spread is mostly packet-to-packet (the issue's lab: walking 0.21,
    falls 0.37), a clip around an older adult's twin fall spreads more than their twin walking
    on the same device (for brisk adult walking the twin's falls stand out far less)."""
    from iv_pipelines.sensing.device import Device, motion_noise_scale
    from iv_pipelines.sensing.features import clean_packets
    from iv_pipelines.sensing.formats import USED_INDEX
    from iv_pipelines.sensing.twin import RESIDENTS

    assert motion_noise_scale(np.array([0.0, 1.0, 2.0, 9.0]), 2.0).tolist() == [0.0, 1.0, 4.0, 25.0]

    def spread(csi, t):
        csi, _ = clean_packets(csi, t)
        a = np.abs(csi[:, USED_INDEX]).astype(float) + 1e-6
        a = a / a.mean(1, keepdims=True)
        return float((a.std(0) / a.mean(0)).mean())

    dev = Device(rate_hz=100, snr_db=30, motion_noise=0.2, body_gain=1.5, motion_exponent=2.0)
    walk, fall = [], []
    for i in range(12):
        room = Room.random(np.random.default_rng(100 + i))
        w = simulate_episode(room, "walk", i, 2.0, dev, RESIDENTS["elderly"], variant="walking")
        f = simulate_episode(
            room, "fall", 1000 + i, duration_s=4.0, device=dev, resident=RESIDENTS["elderly"]
        )
        clip = (f.t_s >= f.event_s - 1.0) & (f.t_s < f.event_s + 0.5)
        walk.append(spread(w.csi, w.t_s))
        fall.append(spread(f.csi[clip], f.t_s[clip]))
    ratio = np.median(fall) / np.median(walk)
    assert 1.3 < ratio < 2.5, ratio
