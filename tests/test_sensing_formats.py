"""ESP32 CSI formats: real captures from ../shared/data/csi, malformed lines, round trips."""

import numpy as np
import pytest
from conftest import SHARED

from iv_pipelines.sensing.formats import (
    USED_INDEX,
    load_espectre_npz,
    parse_lines,
    read_csi_file,
    write_esp_csi_lines,
)
from iv_pipelines.sensing.twin import Room, simulate_episode

CSI = SHARED / "data" / "csi"
TOOL = CSI / "StevenMHernandez__ESP32-CSI-Tool" / "python_utils" / "example_csi.csv"
ESPECTRE = sorted((CSI / "francescopace__espectre" / "micro-espectre" / "data").glob("*/*.npz"))
needs_data = pytest.mark.skipif(not CSI.exists(), reason="shared CSI captures not present")


def temporal_cv(csi: np.ndarray) -> float:
    """Mean over used subcarriers of std/mean of amplitude over time (the README statistic)."""
    a = np.abs(csi[:, USED_INDEX])
    return float((a.std(0) / a.mean(0)).mean())


@needs_data
def test_esp32_csi_tool_example_parses_without_rejects():
    cap, rep = read_csi_file(TOOL)
    assert rep.parsed == 13 and not rep.rejected and rep.skipped == 0
    # HT40 lines print 128 values although len says 384: values are counted, not trusted
    assert cap.csi.shape == (13, 64)
    # LLTF with the secondary channel above: the 20 MHz primary sits at entries 6..58
    amp = np.abs(cap.csi).mean(0)
    assert (amp[USED_INDEX] > 1).all()
    assert 80 < cap.rate_hz < 200  # irregular ~3-60 ms gaps


@needs_data
def test_every_espectre_capture_loads_and_matches_published_motion_bands():
    assert len(ESPECTRE) == 21
    cvs = {"baseline": [], "movement": []}
    for f in ESPECTRE:
        cap = load_espectre_npz(f)
        assert cap.csi.shape[1] == 64 and len(cap.csi) > 700
        assert (np.abs(cap.csi[:, USED_INDEX]).mean(0) > 1).all(), f.name  # no null inside the used band
        if cap.meta["label"] in cvs:
            cvs[cap.meta["label"]].append(temporal_cv(cap.csi))
    assert all(0.03 <= v <= 0.20 for v in cvs["baseline"]), cvs["baseline"]
    assert all(0.13 <= v <= 0.31 for v in cvs["movement"]), cvs["movement"]


def test_malformed_lines_are_reported_with_line_numbers():
    good = write_esp_csi_lines(np.ones((1, 64), np.complex64) * (3 + 4j), np.array([0.01]))[1]
    lines = [
        "I (1234) wifi: connected",  # a log line: skipped, counted
        good,
        "CSI_DATA,1,aa,-50,11",  # too few fields
        good.replace('"[', '"[x,'),  # not an integer
        good.replace('"[', '"[300,'),  # outside int8
        good.rsplit(",", 1)[0].rsplit('"[', 1)[0] + '"[1,2,3]"',  # too few values
        "",
    ]
    cap, rep = parse_lines(lines)
    assert rep.parsed == 1 and rep.skipped == 2
    assert [n for n, _ in rep.rejected] == [3, 4, 5, 6]
    reasons = " | ".join(r for _, r in rep.rejected)
    assert (
        "fields" in reasons
        and "non-integer" in reasons
        and "int8" in reasons
        and "need at least 128" in reasons
    )
    assert "4 rejected" in rep.summary() and "line 3" in rep.summary()


def test_simulated_lines_round_trip_through_the_parser():
    ep = simulate_episode(Room.random(np.random.default_rng(3)), "walk", seed=11, duration_s=1.0)
    lines = write_esp_csi_lines(ep.csi, ep.t_s)
    cap, rep = parse_lines(lines)
    assert rep.parsed == len(ep.csi) and not rep.rejected and rep.skipped == 1  # the header
    np.testing.assert_array_equal(cap.csi, ep.csi)
    np.testing.assert_allclose(cap.t_s, ep.t_s, atol=1e-6)


# --- amplitude-only CSV (64 amplitudes in FFT order, optional label, no timestamps) -------
def _amp_rows(n=250, labels=None):
    from iv_pipelines.sensing.formats import write_amplitude_csv

    ep = simulate_episode(Room.random(np.random.default_rng(2)), "walk", seed=3, duration_s=2.6)
    return ep, write_amplitude_csv(ep.csi[:n], labels=labels)


def test_amplitude_csv_round_trip_in_fft_order_with_labels():
    from iv_pipelines.sensing.formats import parse_amplitude_csv

    ep, rows = _amp_rows(labels=["walk"] * 250)
    cap, rep = parse_amplitude_csv(rows, 100.0)
    assert rep.parsed == min(250, len(ep.csi)) and rep.skipped == 1 and not rep.rejected
    np.testing.assert_allclose(np.abs(cap.csi), np.abs(ep.csi[: rep.parsed]), atol=0.006)
    assert np.all(cap.csi.imag == 0) and cap.meta["amplitude_only"] and cap.meta["labels"][0] == "walk"
    assert cap.t_s[1] - cap.t_s[0] == pytest.approx(0.01) and cap.rate_hz == pytest.approx(100.0)


@pytest.mark.parametrize(
    "row, reason",
    [
        ("1,2,3", "3 columns"),
        (",".join(["x"] * 64), "not a number"),
        (",".join(["inf"] * 64), "NaN or infinite"),
        (",".join(["-1"] * 64), "0..181"),
        (",".join(["200"] * 64), "0..181"),
        (",".join(["181.1"] * 64), "0..181"),
        (",".join(["3"] * 64) + ",jump", "label 'jump'"),
    ],
)
def test_amplitude_csv_bad_rows_are_rejected_with_line_and_reason(row, reason):
    from iv_pipelines.sensing.formats import parse_amplitude_csv

    good = ",".join(["5"] * 64) + (",walk" if row.endswith("jump") else "")
    cap, rep = parse_amplitude_csv([good, row, good], 100.0)
    assert rep.parsed == 2 and len(cap.csi) == 2
    assert rep.rejected[0][0] == 2 and reason in rep.rejected[0][1], rep.rejected


def test_amplitude_csv_accepts_the_largest_int8_magnitude_as_printed():
    """|-128 - 128j| = 181.0193... is logged as 181.02 with two decimals (our own writer does
    that too): accepted and clipped, not rejected as out of range."""
    from iv_pipelines.sensing.formats import AMPLITUDE_MAX, parse_amplitude_csv, write_amplitude_csv

    csi = np.full((3, 64), -128 - 128j, np.complex64)
    rows = write_amplitude_csv(csi)
    assert "181.02" in rows[1]
    cap, rep = parse_amplitude_csv(rows, 100.0)
    assert rep.parsed == 3 and not rep.rejected
    assert np.abs(cap.csi).max() == pytest.approx(AMPLITUDE_MAX)


def test_amplitude_csv_needs_a_sane_rate_and_consistent_columns():
    from iv_pipelines.sensing.formats import CsiFormatError, parse_amplitude_csv

    for rate in (0, -5, float("nan"), 5000):
        with pytest.raises(CsiFormatError, match="rate_hz"):
            parse_amplitude_csv([",".join(["1"] * 64)], rate)
    _, rep = parse_amplitude_csv([",".join(["1"] * 64), ",".join(["1"] * 64) + ",walk"], 100)
    assert "label column changes" in rep.rejected[0][1]


def test_read_capture_picks_the_format_and_needs_a_rate_for_amplitude_csv(tmp_path):
    from iv_pipelines.sensing.formats import CsiFormatError, read_capture

    ep, rows = _amp_rows()
    amp = tmp_path / "walk.csv"
    amp.write_text("\n".join(rows) + "\n")
    with pytest.raises(CsiFormatError, match="give its packet rate"):
        read_capture(amp)
    cap, rep, timed = read_capture(amp, rate_hz=100)
    assert rep.parsed == len(rows) - 1 and not timed and cap.meta["amplitude_only"]
    lines = tmp_path / "walk.txt"
    lines.write_text("\n".join(write_esp_csi_lines(ep.csi, ep.t_s)) + "\n")
    cap2, _, timed2 = read_capture(lines)
    assert timed2 and cap2.csi.shape == ep.csi.shape
    with pytest.raises(CsiFormatError, match="no such capture"):
        read_capture(tmp_path / "missing.csv")


def test_legacy_conversion_decimates_to_100_hz_and_keeps_52_subcarriers():
    from iv_pipelines.sensing.formats import CsiCapture, to_legacy_amplitude

    t = np.arange(0, 3, 1 / 137)
    cap = CsiCapture(np.ones((len(t), 64), np.complex64) * (3 + 4j), t, np.zeros(len(t)), "x")
    leg = to_legacy_amplitude(cap, 100.0)
    assert len(leg.t_s) == 300 and leg.rate_hz == pytest.approx(100, rel=0.01)
    k = np.arange(-32, 32)
    assert np.all(leg.csi[:, (np.abs(k) <= 26) & (k != 0)] == 5) and np.all(leg.csi[:, np.abs(k) > 26] == 0)


def _twin_csi():
    e = simulate_episode(Room.random(np.random.default_rng(9)), "walk", seed=3, duration_s=2.0)
    return np.asarray(e.csi), e.t_s


def _entries(csi: np.ndarray, layout: str) -> np.ndarray:
    """(N, 64) centred CSI -> (N, 128) int8 (imag, real) entries in `layout` order."""
    from iv_pipelines.sensing.formats import centred_to_entries

    fft = centred_to_entries(csi)
    if layout == "fft":
        return fft
    c = fft.reshape(len(fft), 64, 2)
    return np.concatenate([c[:, 32:], c[:, :32]], axis=1).reshape(len(fft), 128)  # fft -> centred order


def _lines(raw: np.ndarray, t: np.ndarray) -> list[str]:
    """esp-csi lines of the template writer (secondary channel 0: FFT order declared) holding `raw`."""
    out = []
    for ln, r in zip(write_esp_csi_lines(np.zeros((len(t), 64), np.complex64), t)[1:], raw, strict=True):
        out.append(ln[: ln.rindex(',"[')] + ',"[' + ",".join(str(int(v)) for v in r) + ']"')
    return out


def test_a_capture_in_centred_order_is_read_in_centred_order_whatever_its_lines_declare():
    """ESP32-C5/C6 buffers come in centred order while the lines' secondary-channel field says
    nothing of it (the espectre captures below): the guard subcarriers decide, the report says
    so, and a capture in the declared order is left alone."""
    from iv_pipelines.runtime.predictor import capture_from_frames

    csi, t = _twin_csi()
    right, rep = parse_lines(_lines(_entries(csi, "fft"), t))
    assert not rep.notes
    np.testing.assert_allclose(right.csi, csi, atol=0.51)  # int8 rounding
    swapped, rep = parse_lines(_lines(_entries(csi, "centred"), t))
    np.testing.assert_array_equal(swapped.csi, right.csi)
    assert "read in centred order" in rep.summary() and "secondary channel" in rep.summary()
    # the JSON frames of /v1/predict likewise, whatever their `layout` says
    frames = capture_from_frames(list(t), _entries(csi, "centred").tolist(), "fft")
    np.testing.assert_array_equal(frames.csi, right.csi)
    assert "read in centred order" in frames.meta["notes"][0]  # /v1/predict returns it as `notes`
    # no guard pattern (noise everywhere): the declared order stands
    noise = np.random.default_rng(0).integers(-60, 60, size=(len(t), 128))
    declared, rep = parse_lines(_lines(noise, t))
    assert not rep.notes
    np.testing.assert_array_equal(declared.csi, parse_lines(_lines(noise, t))[0].csi)


def test_amplitude_csv_in_centred_order_is_noticed():
    from iv_pipelines.sensing.formats import parse_amplitude_csv

    csi, _ = _twin_csi()
    amp_fft = np.abs(np.concatenate([csi[:, 32:], csi[:, :32]], axis=1))
    rows = [",".join(f"{v:.2f}" for v in r) for r in amp_fft]
    good, rep = parse_amplitude_csv(rows, 100.0)
    assert not rep.notes
    centred = [",".join(f"{v:.2f}" for v in r) for r in np.abs(csi)]
    fixed, rep = parse_amplitude_csv(centred, 100.0)
    assert "read in centred order" in rep.summary()
    np.testing.assert_allclose(fixed.csi, good.csi)


@needs_data
def test_the_guards_of_every_espectre_chip_give_its_order():
    from iv_pipelines.sensing.formats import detect_layout, guard_ratios

    assert len(ESPECTRE) == 21
    for f in ESPECTRE:
        z = np.load(f)
        raw = z["csi_data"].astype(float)
        amp = np.hypot(raw[:, 0::2], raw[:, 1::2])
        want = "centred" if str(z["chip"]).lower() in ("c5", "c6") else "fft"
        assert detect_layout(amp) == want, f.name
        # docs/sensing.md's numbers: guards near zero where they belong, data in the other's places
        own, other = guard_ratios(amp)[:: 1 if want == "fft" else -1]
        assert own <= 0.08 and other >= 0.79, (f.name, own, other)


def _two_transmitters():
    """esp-csi lines of one link (transmitter A) with a second transmitter's packets (B, another
    channel, half as many) interleaved, as a receiver that logs every transmitter writes them."""
    csi, t = _twin_csi()
    other = simulate_episode(Room.random(np.random.default_rng(21)), "empty", seed=4, duration_s=2.0)
    a = write_esp_csi_lines(csi, t, mac="24:0a:c4:00:00:01")[1:]
    tb = other.t_s[::2] - other.t_s[0] + t[0] + 0.003
    b = write_esp_csi_lines(np.asarray(other.csi)[::2], tb, mac="aa:bb:cc:00:00:02")[1:]
    times = np.concatenate([t, tb])
    mixed = [ln for _, ln in sorted(zip(times, a + b, strict=True), key=lambda p: p[0])]
    return a, mixed


def test_a_capture_keeps_the_transmitter_heard_most_and_says_so():
    a, mixed = _two_transmitters()
    alone, _ = parse_lines(a)
    cap, rep = parse_lines(mixed)
    np.testing.assert_array_equal(cap.csi, alone.csi)
    np.testing.assert_array_equal(cap.t_s, alone.t_s)
    assert cap.meta["transmitter"] == "24:0a:c4:00:00:01"
    assert "other transmitter(s) (aa:bb:cc:00:00:02) left out" in rep.summary()
    assert rep.parsed == len(mixed)  # every line was read; the other link's are noted, not mixed in


def test_without_warmup_drops_the_first_packets_and_restarts_the_clock():
    from iv_pipelines.sensing.formats import CsiCapture
    from iv_pipelines.sensing.realeval import without_warmup

    t = np.arange(10) * 0.01 + 5.0
    cap = CsiCapture(np.arange(10)[:, None] * np.ones((1, 64), np.complex64), t, np.arange(10), "x", {"a": 1})
    out = without_warmup(cap, 3)
    assert len(out.t_s) == 7 and out.t_s[0] == 0.0 and np.isclose(out.t_s[-1], 0.06)
    assert out.csi[0, 0] == 3 and out.rssi[0] == 3
    assert out.meta == {"a": 1, "warmup_packets_dropped": 3} and cap.meta == {"a": 1}
    assert without_warmup(cap, 0) is cap
    with pytest.raises(ValueError, match="cannot drop a warm-up of 9"):
        without_warmup(cap, 9)


@needs_data
def test_espectre_baselines_are_read_without_the_recorders_gain_lock_warm_up():
    """espectre's recorder locks the receiver's gain on its first 300 packets and espectre's own
    tests skip them in baseline files (GAIN_LOCK_SKIP); movement files are used whole."""
    from iv_pipelines.sensing.realeval import ESPECTRE_WARMUP_PACKETS, espectre_captures

    data = ESPECTRE[0].parent.parent
    caps, whole = espectre_captures(data), espectre_captures(data, baseline_warmup=0)
    assert ESPECTRE_WARMUP_PACKETS == 300 and sorted(caps) == ["c3", "c5", "c6", "esp32", "s3"]
    for chip in caps:
        for trimmed, full in zip(caps[chip]["baseline"], whole[chip]["baseline"], strict=True):
            assert len(full.t_s) - len(trimmed.t_s) == 300 and trimmed.t_s[0] == 0.0
            assert np.array_equal(trimmed.csi, full.csi[300:])
            assert trimmed.t_s[-1] >= 6.8  # every baseline keeps ~7 s: 6 windows or more
        for a, b in zip(caps[chip]["movement"], whole[chip]["movement"], strict=True):
            assert np.array_equal(a.csi, b.csi) and np.array_equal(a.t_s, b.t_s)
        assert [c.source for c in caps[chip]["baseline"]] == [w.source for w in whole[chip]["baseline"]]


def _espectre_file(path, n=1000, chip="c3", label="test"):
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        csi_data=rng.integers(-30, 30, (n, 128)).astype(np.int8),
        chip=np.array(chip.upper()),
        label=np.array(label),
        duration_ms=np.array(n * 10.0),
    )


def test_espectre_test_files_are_split_where_the_dataset_says_the_motion_starts(tmp_path):
    import json

    from iv_pipelines.sensing.realeval import espectre_test_parts

    assert espectre_test_parts(tmp_path) == {}  # no dataset_info.json
    _espectre_file(tmp_path / "test" / "test_c3_a.npz")
    _espectre_file(tmp_path / "test" / "test_c3_b.npz")
    info = {
        "files": {
            "test": [
                {
                    "filename": "test_c3_a.npz",
                    "description": "HT20 test. Motion starts at packet index 600 (~6 s).",
                },
                {"filename": "test_c3_b.npz", "description": "HT20 test, no index given"},
                {"filename": "missing.npz", "description": "Motion starts at packet index 10"},
            ]
        }
    }
    (tmp_path / "dataset_info.json").write_text(json.dumps(info))
    parts = espectre_test_parts(tmp_path)["c3"]
    (quiet,), (whole,), (moving,) = parts["baseline"], parts["baseline_whole"], parts["movement"]
    assert (len(quiet.t_s), len(whole.t_s), len(moving.t_s)) == (300, 600, 400)
    assert quiet.t_s[0] == moving.t_s[0] == 0.0 and quiet.meta["label"] == "baseline"
    assert moving.meta["label"] == "movement" and moving.meta["packets"] == [600, 1000]
    info["files"]["test"][0]["description"] = "Motion starts at packet index 5000"
    (tmp_path / "dataset_info.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="motion start 5000 outside its 1000 packets"):
        espectre_test_parts(tmp_path)


@needs_data
def test_the_espectre_c3_test_file_splits_into_its_quiet_and_moving_halves():
    from iv_pipelines.sensing.realeval import espectre_test_parts

    parts = espectre_test_parts(ESPECTRE[0].parent.parent)
    assert list(parts) == ["c3"]
    (quiet,), (moving,) = parts["c3"]["baseline"], parts["c3"]["movement"]
    assert 26.5 < quiet.t_s[-1] < 27.5 and 29.5 < moving.t_s[-1] < 30.5
    # the published motion bands hold for each half (the quiet half less the warm-up)
    assert 0.03 <= temporal_cv(quiet.csi) <= 0.20 and 0.13 <= temporal_cv(moving.csi) <= 0.31


def test_chip_scores_decide_the_whole_files_as_the_trimmed_ones():
    """The leave-one-chip-out row's whole-file share uses the same per-file thresholds and
    fall-intensity allowances as its main shares; the table shows it in a last column."""
    from iv_pipelines.sensing.evaluate import ACTIVITIES, EMPTY, FALL
    from iv_pipelines.sensing.realeval import score, table_md

    def probs(*labels, p_fall=0.0):
        out = np.zeros((len(labels), len(ACTIVITIES)))
        for i, lab in enumerate(labels):
            out[i, lab] = 1.0 - p_fall
            out[i, FALL] += p_fall
        return out

    walk = ACTIVITIES.index("walk")
    empty_a, empty_b = probs(EMPTY, EMPTY), probs(EMPTY)
    moving = [probs(walk), probs(walk, walk)]
    # the whole first file: a warm-up window called walk, and one with P(fall) 0.6, which
    # file 0's DAC (threshold 0.5) calls fall unless its intensity check forbids it
    whole = [np.vstack([probs(walk), probs(EMPTY, p_fall=0.6), empty_a]), empty_b]
    row = score("c3", "iq", "adapter", [empty_a, empty_b], moving, [0.5, 0.9], p_empty_whole_files=whole)
    assert (row.n_empty, row.empty_called_empty, row.n_empty_whole) == (3, 1.0, 5)
    assert row.empty_whole == 3 / 5
    allow = [np.array([True, False, True, True]), np.ones(1, bool)]
    row = score("c3", "iq", "adapter", [empty_a, empty_b], moving, [0.5, 0.9], None, None, whole, allow)
    assert row.empty_whole == 4 / 5  # P(fall) 0.6 not allowed to be fall: its top class, empty
    assert table_md([row]).splitlines()[2].endswith("| 0.80 (5) |")
    plain = score("c3", "iq", "none", [empty_a, empty_b], moving, 0.5)
    assert plain.empty_whole is None and "whole files" not in table_md([plain])


def test_chip_scores_say_what_their_few_windows_can_certify():
    """A share of 13 of 13 windows meets a 0.95 goal as measured but cannot certify it: the
    table prints each share's 95 % Wilson lower bound and the summary counts both."""
    from iv_pipelines.sensing.realeval import ChipScore, goal_summary, table_md

    few = ChipScore("c5", "iq", "none", 13, 1.0, 18, 1.0, 1.0, 0.0, 18, 1.0)
    many = ChipScore("c3", "iq", "none", 400, 1.0, 400, 1.0, 1.0, 0.0, 400, 1.0)
    short = ChipScore("c6", "iq", "none", 14, 12 / 14, 18, 1.0, 1.0, 0.06, 18, 13 / 18)
    lo_few, lo_many = few.lower_bounds()[0], many.lower_bounds()[0]
    assert 0.75 < lo_few < 0.80 and lo_many > 0.99
    assert "| 1.00 (13; >= 0.77) | 1.00 (18; >= 0.82) |" in table_md([few])
    summary = goal_summary([few, many, short])
    assert summary.startswith("goal met in 2 of 3 rows (2 with the baseline files whole)")
    assert summary.endswith("in 1 of 3")


@needs_data
def test_the_warm_up_of_the_s3_baseline_that_opens_with_motion_holds_it():
    """Why the warm-up rule matters here: S3's baseline 222606 moves like a movement file during
    its first 300 packets (temporally correlated spread, lag-1 ~0.9) and is quiet after them;
    the other S3 baseline is quiet throughout. The bench prints the table for every file."""
    from iv_pipelines.sensing.realeval import warmup_table

    rows = {
        r.split("|")[2].strip(): [float(x) for cell in r.split("|")[4:6] for x in cell.split("/")]
        for r in warmup_table(ESPECTRE[0].parent.parent).splitlines()[2:]
    }
    warm_c, warm_lag, rest_c, rest_lag = rows["baseline_s3_64sc_20260117_222606.npz"]
    assert warm_c > 10 * max(rest_c, 0.005) and warm_lag > 0.8 and rest_lag < 0.2
    quiet = rows["baseline_s3_64sc_20260329_125557.npz"]
    assert max(quiet[0], quiet[2]) < 0.01 and max(quiet[1], quiet[3]) < 0.2
    assert len(rows) == 10
