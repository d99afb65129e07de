"""The fall-intensity check (issue #13): the statistic, the factor's choice, the decision it
changes, what runtime.json may say, and the capsule applying it."""

import json
import shutil

import numpy as np
import pytest

from iv_pipelines.sensing.evaluate import FALL, decide
from iv_pipelines.sensing.features import AMP_COLUMNS, N_FEATURES, VALID_COLUMN, T
from iv_pipelines.sensing.intensity import (
    MIN_FALL_WINDOWS,
    IntensityCheck,
    choose_factor,
    walking_reference,
    window_intensity,
)


def _windows(stds, valid=T, seed=0):
    """Feature windows whose relative-amplitude columns have the given temporal std."""
    rng = np.random.default_rng(seed)
    x = np.zeros((len(stds), T, N_FEATURES), np.float32)
    for i, s in enumerate(stds):
        n_amp = AMP_COLUMNS.stop - AMP_COLUMNS.start
        z = rng.standard_normal((valid, n_amp))
        z = (z - z.mean(0)) / z.std(0)  # exactly std 1 per column
        x[i, :valid, AMP_COLUMNS] = s * z
        x[i, :valid, VALID_COLUMN] = 1.0
        x[i, valid:, AMP_COLUMNS] = 100.0  # padding: must be ignored
    return x


def test_intensity_is_the_mean_temporal_std_over_valid_samples_only():
    x = _windows([0.1, 0.4], valid=120)
    assert window_intensity(x) == pytest.approx([0.1, 0.4], rel=1e-5)
    assert walking_reference(_windows([0.1, 0.2, 0.3])) == pytest.approx(0.2, rel=1e-5)
    assert walking_reference(np.zeros((0, T, N_FEATURES))) is None


def test_the_factor_is_a_split_conformal_quantile_of_the_falls():
    ratios = np.linspace(0.5, 2.5, 59)  # (k + 1) / (59 + 1) <= 0.05: k = 2
    factor, why = choose_factor(ratios, 0.05)
    assert factor == pytest.approx(ratios[2])
    assert (ratios < factor).sum() == 2 and "2 of 59" in why
    # one window fewer: (2 + 1) / 59 > 0.05, so one window less is given up
    assert choose_factor(ratios[:58], 0.05)[0] == pytest.approx(ratios[1])
    # over draws, a new fall window falls below the factor at most 5 % of the time on average
    rng = np.random.default_rng(0)
    lost = [
        np.mean(rng.lognormal(0, 0.5, 4000) < choose_factor(rng.lognormal(0, 0.5, 60), 0.05)[0])
        for _ in range(400)
    ]
    # split-conformal: the expected share is exactly (k + 1) / (n + 1) = 3 / 61 (Monte Carlo
    # standard error ~0.0015 over 400 draws)
    assert np.mean(lost) == pytest.approx(3 / 61, abs=0.005)
    # too few windows to place the quantile: no check
    factor, why = choose_factor(ratios[: MIN_FALL_WINDOWS - 1], 0.05)
    assert factor == 0.0 and "no intensity check" in why
    assert choose_factor(ratios, 0.01)[0] == 0.0  # 59 windows cannot place a 1 % quantile
    with pytest.raises(ValueError, match="recall_cost"):
        choose_factor(ratios, 1.0)


def test_a_vetoed_fall_becomes_the_most_probable_other_class():
    p = np.array([[0.1, 0.3, 0.05, 0.55], [0.0, 0.1, 0.2, 0.7], [0.6, 0.1, 0.1, 0.2]])
    assert FALL == 3
    assert decide(p, 0.5).tolist() == [3, 3, 0]
    assert decide(p, 0.5, np.array([False, True, False])).tolist() == [1, 3, 0]
    chk = IntensityCheck(reference=0.2, factor=1.0)
    assert chk.allows_fall(_windows([0.1, 0.25])).tolist() == [False, True]


@pytest.mark.parametrize(
    "bad, needle",
    [
        ({"reference": "x", "factor": 1}, "needs numbers"),
        ({"factor": 1}, "needs numbers"),
        ({"reference": 0.2, "factor": -1}, "must be finite and >= 0"),
        ({"reference": float("nan"), "factor": 1}, "must be finite"),
    ],
)
def test_runtime_json_check_errors_name_the_field(bad, needle):
    with pytest.raises(ValueError, match=needle) as e:
        IntensityCheck.from_dict(bad)
    assert "decision.intensity_check" in str(e.value)


def test_absent_or_zero_factor_means_no_check():
    assert IntensityCheck.from_dict(None) is None
    assert IntensityCheck.from_dict({"reference": 0.2, "factor": 0}) is None
    assert IntensityCheck.from_dict({"reference": 0.2, "factor": 1.2}) == IntensityCheck(0.2, 1.2)


@pytest.mark.filterwarnings("ignore:serving an unverified package")
def test_the_capsule_applies_its_check_to_every_window(small_package, tmp_path, monkeypatch):
    """A package whose runtime.json says fall at P >= 0 (every window) and checks intensity:
    with an unreachable factor no window is called fall, on /v1/predict and /v1/stream; with
    a factor every window clears, every window is. (The edited copies carry no attestation:
    they load unverified, as a package opened outside a deployment does.)"""
    import time

    from fastapi.testclient import TestClient

    from iv_pipelines.runtime.app import create_app
    from iv_pipelines.runtime.predictor import REQUIRE_ATTESTATION_ENV, Predictor
    from iv_pipelines.sensing.formats import write_esp_csi_lines
    from iv_pipelines.sensing.twin import Room, simulate_episode

    monkeypatch.delenv(REQUIRE_ATTESTATION_ENV, raising=False)
    _root, _key, pkg, _ = small_package
    e = simulate_episode(Room.random(np.random.default_rng(5)), "walk", seed=11, duration_s=4.0)
    lines = write_esp_csi_lines(e.csi, e.t_s)
    labels, streamed = {}, {}
    for name, factor in (("never", 1e6), ("always", 1e-6)):
        d = tmp_path / name
        shutil.copytree(pkg.directory, d)
        doc = json.loads((d / "runtime.json").read_text())
        doc["decision"] = {"fall_threshold": 0.0, "intensity_check": {"reference": 0.1, "factor": factor}}
        (d / "runtime.json").write_text(json.dumps(doc))
        pred = Predictor(d, verify=False)
        with pytest.raises(ValueError, match="needs the windows"):
            pred.decide(np.full((1, 4), 0.25), None)
        with TestClient(create_app(d)) as c:
            for _ in range(200):
                if c.get("/readyz").status_code == 200:
                    break
                time.sleep(0.05)
            r = c.post("/v1/predict", json={"lines": lines})
            assert r.status_code == 200, r.text
            labels[name] = [w["label"] for w in r.json()["windows"]]
            with c.websocket_connect("/v1/stream") as ws:
                ws.send_text("\n".join(lines[1:]))
                streamed[name] = [ws.receive_json()["label"] for _ in range(2)]
    assert labels["always"] and set(labels["always"]) == {"fall"} == set(streamed["always"])
    assert "fall" not in labels["never"] + streamed["never"]
    assert len(labels["never"]) == len(labels["always"])


def _cal_with_walk(walk_windows, split="train"):
    from iv_pipelines.sensing.client import ClientCalibration, RealCapture
    from iv_pipelines.sensing.context import CTX_DIM
    from iv_pipelines.sensing.twin import RESIDENTS

    cap = RealCapture("walk 20 s", "walk", "real", split, True, walk_windows, 20.0)
    return ClientCalibration(None, np.zeros(CTX_DIM, np.float32), True, [cap], RESIDENTS["adult"])


def test_the_dac_chooses_its_factor_on_twin_falls_against_their_own_homes_walking():
    """Two simulated homes whose walking differs 2x: each fall window is measured against its
    own home's walking reference; real windows against the client's calibration."""
    from iv_pipelines.sensing.client import Sets, fall_intensity_check
    from iv_pipelines.sensing.twin import ACTIVITIES

    walk = ACTIVITIES.index("walk")
    # 59 twin fall windows over two sets (training and threshold), at 0.5x..2.5x their home's
    # walking (homes 0 and 1 walk at 0.1 and 0.2); the real window of the training set is no fall
    ratios = np.linspace(0.5, 2.5, 59)
    home = np.arange(59) % 2
    refs = [0.1, 0.2]
    stds = ratios * np.asarray(refs)[home]
    tr = Sets(
        _windows(np.append(stds[:30], 0.01)),
        np.append(np.full(30, FALL), walk),
        np.append(np.full(30, "sim"), "real"),
        np.append(home[:30], -1),
    )
    th = Sets(_windows(stds[30:]), np.full(29, FALL), np.full(29, "sim"), home[30:])
    # evaluation: 2 twin falls (0.55x, 2x of home 0) and 3 real walking windows the model calls
    # fall at 0.5x, 1x and 3x the client's walking (0.3)
    ev = Sets(
        _windows([0.055, 0.2, 0.15, 0.3, 0.9]),
        np.array([FALL, FALL, walk, walk, walk]),
        np.array(["sim", "sim", "real", "real", "real"]),
        np.array([0, 0, -1, -1, -1]),
    )
    p_ev = np.tile([0.0, 0.0, 0.0, 1.0], (5, 1))
    cal = _cal_with_walk(_windows([0.3, 0.3, 0.3]))
    chk, rep = fall_intensity_check(cal, (tr, th), ev, p_ev, 0.5, refs, 0.05)
    assert chk.factor == pytest.approx(np.sort(ratios)[2], rel=1e-4)  # k = 2 of 59 (conformal)
    assert chk.reference == pytest.approx(0.3, rel=1e-5)
    assert rep["on"] and rep["simulated_fall_recall"] == {"without": 1.0, "with": 0.5, "windows": 2}
    assert rep["client_device_called_fall"] == {"without": 1.0, "with": pytest.approx(2 / 3), "windows": 3}
    assert rep["_allow"].tolist() == [False, True, False, True, True]
    assert [a.sum() for a in rep["_allow_choose_on"]] == [
        28,
        29,
    ]  # 2 falls under the factor, the 0.03x real walk
    # off: by configuration, and without a walking calibration capture
    assert fall_intensity_check(cal, (tr, th), ev, p_ev, 0.5, refs, None)[0] is None
    no_walk = _cal_with_walk(_windows([0.3]), split="eval")
    chk, rep = fall_intensity_check(no_walk, (tr, th), ev, p_ev, 0.5, refs, 0.05)
    assert chk is None and "no walking calibration" in rep["why"]
    # too few twin fall windows: no check
    few = Sets(th.x[:15], th.y[:15], th.source[:15], th.home[:15])
    chk, rep = fall_intensity_check(cal, (few,), ev, p_ev, 0.5, refs, 0.05)
    assert chk is None and not rep["on"] and "only 15 twin fall windows" in rep["why"]


# --- the stillness check (since 2026-12-08) ---------------------------------------------------


def _still_windows(kind, n=1, scale=0.05, seed=0):
    """Feature windows whose relative amplitudes are white noise (no motion by the intake's
    test) or a slow swing across the window (motion), of temporal std about `scale`."""
    rng = np.random.default_rng(seed)
    n_amp = AMP_COLUMNS.stop - AMP_COLUMNS.start
    x = np.zeros((n, T, N_FEATURES), np.float32)
    t = np.arange(T) / 100.0
    for i in range(n):
        if kind == "white":
            v = rng.standard_normal((T, n_amp))
        else:  # a 0.7 Hz swing, its phase different on each subcarrier group
            v = np.sin(2 * np.pi * 0.7 * t[:, None] + rng.uniform(0, 2 * np.pi, n_amp)) * np.sqrt(2)
        x[i, :, AMP_COLUMNS] = scale * v
        x[i, :, VALID_COLUMN] = 1.0
    return x


def test_stillness_reads_the_intake_motion_test_on_a_window():
    from iv_pipelines.sensing.intensity import window_stillness

    white, slow = _still_windows("white", 3), _still_windows("slow", 3)
    assert (window_stillness(white) < 0.3).all()  # no correlated part, lag-1 ~ 0
    assert (window_stillness(slow) > 3).all()  # smooth: lag-1 ~ 1 (1 / 0.3), correlated ~0.05
    # the same on the twin: an empty room is still, a person walking close to the link is not
    from iv_pipelines.sensing.device import Device
    from iv_pipelines.sensing.features import windows_from_capture
    from iv_pipelines.sensing.twin import RESIDENTS, Room, simulate_episode

    room, dev = Room.random(np.random.default_rng(3)), Device(snr_db=40.0, motion_noise=0.005)
    empty = simulate_episode(room, "empty", 1, 8.0, dev, RESIDENTS["adult"])
    walk = simulate_episode(room, "walk", 2, 8.0, dev, RESIDENTS["adult"], variant="walking")
    s_empty = window_stillness(windows_from_capture(empty.csi, empty.t_s, hop_s=1.0))
    s_walk = window_stillness(windows_from_capture(walk.csi, walk.t_s, hop_s=1.0))
    assert (s_empty < 1).all() and np.median(s_walk) > 1, (s_empty, s_walk)


def test_still_windows_are_called_empty_even_when_the_model_says_fall():
    from iv_pipelines.sensing.evaluate import EMPTY

    p = np.array([[0.0, 0.1, 0.1, 0.8], [0.0, 0.7, 0.1, 0.2], [0.0, 0.1, 0.1, 0.8]])
    assert decide(p, 0.5, np.array([-1, -1, 1])).tolist() == [EMPTY, EMPTY, FALL]
    assert decide(p, 0.5, np.array([0, 1, 0])).tolist() == [1, 1, 1]  # 0: vetoed fall, as before
    # still = neither moving by the test nor as intense as the resident's walking (reference)
    chk = IntensityCheck(reference=0.2, factor=0.0, still_factor=1.0)
    quiet, loud = _still_windows("white", scale=0.05), _still_windows("white", scale=0.5)
    moving = _still_windows("slow", scale=0.05)
    assert chk.allows_fall(np.concatenate([quiet, loud, moving])).tolist() == [-1, 1, 1]
    # a still factor of 0 is no stillness check
    assert IntensityCheck(0.2, 0.5).allows_fall(quiet).tolist() == [0]


@pytest.mark.parametrize(
    "bad, needle",
    [
        ({"reference": 0.2, "factor": 0.5, "still_factor": "x"}, "still_factor"),
        ({"reference": 0.2, "factor": 0.5, "still_factor": -0.1}, "still_factor -0.1"),
        ({"reference": 0.2, "factor": 0.5, "still_factor": 1.5}, "still_factor <= 1"),
        ({"reference": 0.2, "factor": 0.5, "still_factor": float("inf")}, "must be finite"),
    ],
)
def test_runtime_json_still_factor_errors_name_the_field(bad, needle):
    with pytest.raises(ValueError, match=needle) as e:
        IntensityCheck.from_dict(bad)
    assert "decision.intensity_check" in str(e.value)


def test_a_still_factor_alone_is_a_check_and_round_trips():
    chk = IntensityCheck.from_dict({"reference": 0.2, "factor": 0, "still_factor": 0.8})
    assert chk == IntensityCheck(0.2, 0.0, 0.8)
    assert IntensityCheck.from_dict(chk.to_dict()) == chk
    assert "still_factor" not in IntensityCheck(0.2, 1.2).to_dict()  # older runtime.json unchanged


def test_the_dac_turns_its_stillness_check_on_only_with_an_empty_room_capture():
    """Twin non-empty windows: 59 slow (moving) ones and one white (still) one; the still
    factor is the lower of the falls' and all non-empty windows' conformal quantile, capped at
    1; a client's real empty-room window the model calls fall becomes empty."""
    from iv_pipelines.sensing.client import RealCapture, Sets, fall_intensity_check
    from iv_pipelines.sensing.evaluate import EMPTY
    from iv_pipelines.sensing.intensity import window_stillness
    from iv_pipelines.sensing.twin import ACTIVITIES

    walk = ACTIVITIES.index("walk")
    x_tr = np.concatenate([_still_windows("slow", 30, seed=1), _still_windows("slow", 29, seed=2)])
    y_tr = np.array([FALL] * 30 + [walk] * 29)
    tr = Sets(x_tr, y_tr, np.full(59, "sim"), np.zeros(59, int))
    th = Sets(_still_windows("slow", 30, seed=3), np.full(30, FALL), np.full(30, "sim"), np.zeros(30, int))
    ev = Sets(
        np.concatenate([_still_windows("white", 1, 0.02, seed=4), _still_windows("slow", 1, seed=5)]),
        np.array([EMPTY, FALL]),
        np.array(["real", "sim"]),
        np.array([-1, 0]),
    )
    p_ev = np.tile([0.0, 0.0, 0.0, 1.0], (2, 1))
    refs = [0.05]
    cal = _cal_with_walk(_still_windows("slow", 3))
    chk, rep = fall_intensity_check(cal, (tr, th), ev, p_ev, 0.5, refs, 0.05)
    assert rep["still_factor"] == 0.0 and "no empty-room calibration capture" in rep["why"]
    assert chk is None or chk.still_factor == 0.0
    empty_cap = RealCapture(
        "empty 20 s", "empty", "real", "train", True, _still_windows("white", 3, 0.02), 20.0
    )
    cal.captures.append(empty_cap)
    chk, rep = fall_intensity_check(cal, (tr, th), ev, p_ev, 0.5, refs, 0.05)
    lowest = np.sort(np.maximum(window_stillness(np.concatenate([x_tr, th.x])), 0))  # all >= 1 here
    assert lowest[0] > 1 and chk.still_factor == 1.0  # capped: the twin's motion is all clear
    assert rep["_allow"].tolist()[0] == -1 and rep["_allow"].tolist()[1] == 1
    assert rep["client_device_empty_called_nonempty"] == {"without": 1.0, "with": 0.0, "windows": 1}
    assert rep["simulated_fall_recall"] == {"without": 1.0, "with": 1.0, "windows": 1}
