"""Calibration captures in a request: validated, stored by content, bound into the DAC's digest."""

import hashlib
import shutil

import pytest
import yaml
from conftest import SAMPLE_REQUEST

from iv_pipelines.errors import InputError
from iv_pipelines.intake import RequestStore, process_drop_folder
from iv_pipelines.request import parse_request_text


def _doc():
    return yaml.safe_load(SAMPLE_REQUEST.read_text())


def test_sample_calibration_is_stored_under_its_digest_and_bound_to_the_request(tmp_path):
    store = RequestStore(tmp_path)
    req = parse_request_text(SAMPLE_REQUEST.read_text())
    path, created = store.put(req, base_dir=SAMPLE_REQUEST.parent)
    stored = store.get(req.dac_id)
    assert created and len(stored.calibration) == 2
    for c in stored.calibration:
        f = store.calibration_file(c)
        assert f.is_file() and hashlib.sha256(f.read_bytes()).hexdigest() == c.sha256
        assert c.origin == "simulated" and c.path == c.sha256 + ".csv"
    # the same request again is a no-op; its digest covers the captures' content
    assert store.put(req, base_dir=SAMPLE_REQUEST.parent) == (path, False)
    assert stored.digest() != req.digest()


def _write(tmp_path, doc, captures: dict[str, str]):
    for name, text in captures.items():
        (tmp_path / name).write_text(text)
    return parse_request_text(yaml.safe_dump(doc))


ROW = ",".join(["12.5"] * 64)


def _bursty_esp_csi() -> str:
    """20 s of esp-csi lines in 0.8 s bursts between 0.6 s silences: no stretch holds a window."""
    import numpy as np

    from iv_pipelines.sensing.formats import write_esp_csi_lines

    t = np.arange(2000) / 100.0
    t = t[(t % 1.4) < 0.8]
    csi = np.full((len(t), 64), 20 + 5j, np.complex64)
    csi[:, 32] = 0  # DC
    return "\n".join(write_esp_csi_lines(csi, t))


@pytest.mark.parametrize(
    "cal, files, needle",
    [
        ({"activity": "fall", "path": "a.csv"}, {}, "falls are never required"),
        ({"activity": "walk", "path": "a.csv", "format": "amplitude-csv"}, {}, "rate_hz is required"),
        (
            {"activity": "walk", "path": "missing.csv", "format": "amplitude-csv", "rate_hz": 100},
            {},
            "no such capture",
        ),
        (
            {"activity": "walk", "path": "short.csv", "format": "amplitude-csv", "rate_hz": 100},
            {"short.csv": "\n".join([ROW] * 300)},
            "lasts 3.0 s",
        ),
        (
            {"activity": "walk", "path": "bad.csv", "format": "amplitude-csv", "rate_hz": 100},
            {"bad.csv": "\n".join([ROW] * 5 + ["1,2"] + [ROW] * 2000)},
            "line 6: 2 columns",
        ),
        ({"activity": "walk", "path": "noise.csv"}, {"noise.csv": "hello\nworld\n"}, "give its packet rate"),
        (
            {"activity": "walk", "path": "slow.csv", "format": "amplitude-csv", "rate_hz": 40},
            {"slow.csv": "\n".join([ROW] * 800)},
            "packet rate 40/s: the model decides on 55 packets/s or more",
        ),
        (
            {"activity": "walk", "path": "bursty.csv", "format": "esp-csi"},
            {"bursty.csv": _bursty_esp_csi()},
            "holds only 0.0 s of CSI in stretches of at least 1.0 s between its 14 silence(s) over 0.5 s",
        ),
    ],
)
def test_bad_calibration_is_refused_naming_the_capture_and_nothing_is_stored(tmp_path, cal, files, needle):
    doc = _doc() | {"calibration": [cal]}
    store = RequestStore(tmp_path / "store")
    with pytest.raises(InputError) as exc:
        store.put(_write(tmp_path, doc, files), base_dir=tmp_path)
    assert needle in str(exc.value)
    assert "calibration" in str(exc.value)
    assert (
        not (tmp_path / "store" / "requests").exists() and not (tmp_path / "store" / "calibration").exists()
    )


def test_drop_folder_requests_find_their_captures_beside_them(tmp_path):
    drop = tmp_path / "drop"
    (drop / "calibration").mkdir(parents=True)
    for f in SAMPLE_REQUEST.parent.glob("calibration/acme-*.csv"):
        shutil.copyfile(f, drop / "calibration" / f.name)
    shutil.copyfile(SAMPLE_REQUEST, drop / "acme.yaml")
    store = RequestStore(tmp_path / "store")
    out = process_drop_folder(drop, store)
    assert len(out.accepted) == 1 and not out.rejected
    assert len(list((tmp_path / "store" / "calibration").glob("*.csv"))) == 2
    assert (drop / "calibration").is_dir()  # the captures folder is not taken for a request


def test_a_dropped_request_reads_captures_beside_it_only(tmp_path):
    """The drop folder is written by whoever may write there: its requests cannot make the
    factory read (and bind into a DAC) a file elsewhere, such as another client's stored
    capture, nor another DAC's device frames; `iv request add` (an operator) may point anywhere."""
    elsewhere = tmp_path / "other-client"
    elsewhere.mkdir()
    shutil.copyfile(next(SAMPLE_REQUEST.parent.glob("calibration/acme-*walk*.csv")), elsewhere / "walk.csv")
    drop = tmp_path / "drop"
    drop.mkdir()
    doc = _doc() | {
        "calibration": [
            {
                "activity": "walk",
                "path": "../other-client/walk.csv",
                "format": "amplitude-csv",
                "rate_hz": 100,
            }
        ]
    }
    (drop / "req.yaml").write_text(yaml.safe_dump(doc))
    store = RequestStore(tmp_path / "store")
    out = process_drop_folder(drop, store)
    assert not out.accepted and "leads outside the request's folder" in out.rejected[0].message
    assert not (tmp_path / "store" / "calibration").exists()
    # the same request added by an operator from its own folder is fine
    store.put(parse_request_text(yaml.safe_dump(doc)), base_dir=drop)
    assert len(list((tmp_path / "store" / "calibration").glob("*.csv"))) == 1
    # a device id is never a path, and a dropped request reads only its own DAC's devices
    with pytest.raises(InputError, match="from_device"):
        parse_request_text(
            yaml.safe_dump(_doc() | {"calibration": [{"activity": "walk", "from_device": "../calibration"}]})
        )
    doc2 = _doc() | {"dac_id": "other", "calibration": [{"activity": "walk", "from_device": "esp-1"}]}
    (drop / "req2.yaml").write_text(yaml.safe_dump(doc2))
    out = process_drop_folder(drop, store)
    assert "device 'esp-1' is not registered to other" in out.rejected[0].message


def test_a_declared_empty_capture_with_someone_moving_is_accepted_with_a_warning(tmp_path):
    """A caregiver records the "empty" room while still walking out: the request is accepted
    (nothing in it is malformed) but intake says at once which seconds move like someone in
    the room, beside the accepted file and to the caller; a truly empty capture warns of nothing."""
    from conftest import empty_room_opened_by_walking

    from iv_pipelines.sensing.formats import write_esp_csi_lines

    opened, quiet = empty_room_opened_by_walking()
    drop = tmp_path / "drop"
    (drop / "captures").mkdir(parents=True)  # every file directly in the drop folder is a request
    for name, (csi, t) in {"opened.csv": opened, "quiet.csv": quiet}.items():
        (drop / "captures" / name).write_text("\n".join(write_esp_csi_lines(csi, t)) + "\n")
    cap = {"activity": "empty", "format": "esp-csi"}
    doc = _doc() | {"calibration": [cap | {"path": "captures/opened.csv"}]}
    (drop / "req.yaml").write_text(yaml.safe_dump(doc))
    out = process_drop_folder(drop, RequestStore(tmp_path / "store"))
    assert not out.rejected and len(out.accepted) == 1
    (w,) = out.accepted[0].warnings
    assert w.startswith("calibration[0] (opened.csv) (declared empty): 0-") and "move like someone" in w
    assert "train the adapter" in w
    beside = out.accepted[0].moved_to.with_name("req.yaml.warnings.txt")
    assert beside.read_text() == w + "\n"
    # an evaluation capture says what its windows do instead; a quiet one warns of nothing
    doc = _doc() | {
        "dac_id": "fall-quiet-room",
        "calibration": [cap | {"path": "captures/quiet.csv"}],
        "evaluation": [cap | {"path": "captures/opened.csv"}],
    }
    notes: list[str] = []
    RequestStore(tmp_path / "store").put(parse_request_text(yaml.safe_dump(doc)), drop, warnings=notes)
    (w,) = notes
    assert w.startswith("evaluation[0] (opened.csv) (declared empty)") and "false alarm" in w
