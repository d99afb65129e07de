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
