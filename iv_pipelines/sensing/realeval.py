"""Decisions on real captures the models never trained on (evaluation only).

espectre (GPL-3.0, read in place from shared/data, never copied): 20 recordings from five chips
(ESP32, S3, C3, C5, C6), two `baseline` (empty room) and two `movement` files each. Scored per
chip at the capsule's decision: the share of baseline windows called empty and of movement
windows called non-empty, plus the presence AUROC (1 - P(empty)), in three modes:
- `iq`: the captures as recorded (I/Q, native packet rate);
- `amp52`: converted to what an amplitude-only legacy-LLTF firmware logging at 100 Hz would
  record (`formats.to_legacy_amplitude`), through the amplitude CSV parser;
- calibrated: the other baseline/movement pair of the same chip is the device's calibration
  (empty / walk), never the pair being scored (`bench/real_devices.py` also trains the DAC's
  adapter on it; `context_scores` here only conditions the model on it).

Baseline files are used without their first 300 packets (`ESPECTRE_WARMUP_PACKETS`, about
2-3 s): the dataset's own protocol. espectre's recorder spends its first 300 packets
calibrating and locking the receiver's gain (`GAIN_LOCK_PACKETS = 300` in
micro-espectre/src/main.py), and espectre's own tests skip them in every baseline file as
"radio warm-up noise" (`GAIN_LOCK_SKIP = 300`: test/data/csi_test_data.h and
micro-espectre/tests/test_validation_real_data.py, at the commit shared/data was taken from).
Movement files are used whole, as there, and so are the files a fold uses as the client's
calibration captures: a client hands in its captures whole, and the request's intake needs
8 s (a baseline less its warm-up keeps 6.9-7.8 s). Adopted 2026-12-07, after the leave-one-chip-out
table had been recorded on whole files for several sessions (S3's first baseline file opens
with 2 s of motion-like fluctuation); `bench/real_devices.py` prints the whole-file share
beside it, from the same models.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from iv_pipelines.sensing.formats import (
    CsiCapture,
    load_espectre_npz,
    parse_amplitude_csv,
    to_legacy_amplitude,
    write_amplitude_csv,
)

CHIPS = ("esp32", "s3", "c3", "c5", "c6")


ESPECTRE_WARMUP_PACKETS = 300  # espectre's GAIN_LOCK_SKIP (see the module docstring)


def _segment(cap: CsiCapture, start: int, stop: int, source: str, **meta) -> CsiCapture:
    """Packets start..stop of `cap`, its clock restarted at 0, `meta` added."""
    t = cap.t_s[start:stop]
    return CsiCapture(cap.csi[start:stop], t - t[0], cap.rssi[start:stop], source, dict(cap.meta) | meta)


def without_warmup(cap: CsiCapture, packets: int) -> CsiCapture:
    """The capture less its first `packets` packets, its clock restarted at 0."""
    if packets <= 0:
        return cap
    if packets >= len(cap.t_s) - 1:
        raise ValueError(f"{cap.source}: {len(cap.t_s)} packets, cannot drop a warm-up of {packets}")
    return _segment(cap, packets, len(cap.t_s), cap.source, warmup_packets_dropped=int(packets))


def espectre_captures(
    data_dir: Path, baseline_warmup: int = ESPECTRE_WARMUP_PACKETS
) -> dict[str, dict[str, list[CsiCapture]]]:
    """{chip: {"baseline": [two captures], "movement": [two captures]}} in file-name order;
    baseline files less their first `baseline_warmup` packets (0: whole files)."""
    out: dict[str, dict[str, list[CsiCapture]]] = {}
    for f in sorted(Path(data_dir).glob("*/*.npz")):
        cap = load_espectre_npz(f)
        label = cap.meta["label"]
        if label == "baseline":
            cap = without_warmup(cap, baseline_warmup)
        if label in ("baseline", "movement"):
            out.setdefault(cap.meta["chip"], {}).setdefault(label, []).append(cap)
    return out


def warmup_table(data_dir: Path, packets: int = ESPECTRE_WARMUP_PACKETS) -> str:
    """Markdown: each baseline file's first `packets` packets against the rest, on the device
    statistics that tell motion from noise (`devicestats.capture_stats`: `correlated`, the
    part of the spread that is not packet-to-packet, and `lag1`), with each chip's movement
    files for reference: what the recorder's warm-up holds."""
    from iv_pipelines.sensing.devicestats import capture_stats

    whole = espectre_captures(data_dir, baseline_warmup=0)
    out = [
        "| chip | file | warm-up / rest (s) | warm-up: correlated / lag1 | rest: correlated / lag1 "
        "| movement files: correlated / lag1 |",
        "|---|---|---|---|---|---|",
    ]
    for chip in sorted(whole):
        moving = [capture_stats(c.csi, c.t_s) for c in whole[chip]["movement"]]
        ref = ", ".join(f"{m.correlated:.3f} / {m.lag1:.2f}" for m in moving)
        for c in whole[chip]["baseline"]:
            a, b = (
                capture_stats(c.csi[:packets], c.t_s[:packets]),
                capture_stats(c.csi[packets:], c.t_s[packets:]),
            )
            secs = f"{c.t_s[packets] - c.t_s[0]:.1f} / {c.t_s[-1] - c.t_s[packets]:.1f}"
            out.append(
                f"| {chip} | {Path(c.source).name} | {secs} | {a.correlated:.3f} / {a.lag1:.2f} | "
                f"{b.correlated:.3f} / {b.lag1:.2f} | {ref} |"
            )
    return "\n".join(out)


_MOTION_START = re.compile(r"[Mm]otion starts at packet index (\d+)")


def espectre_test_parts(
    data_dir: Path, baseline_warmup: int = ESPECTRE_WARMUP_PACKETS
) -> dict[str, dict[str, list[CsiCapture]]]:
    """The dataset's `test` recordings (a quiet room, then someone moving: one C3 file of 60 s
    here), split where the dataset's `dataset_info.json` says the motion starts ("Motion starts
    at packet index 3040"): {chip: {"baseline": [the quiet part less the recorder's warm-up],
    "baseline_whole": [the quiet part from the first packet], "movement": [the rest]}}. A test
    file whose description names no motion start is left out; no dataset_info.json: {}."""
    info_path = Path(data_dir) / "dataset_info.json"
    if not info_path.is_file():
        return {}
    info = json.loads(info_path.read_text())
    out: dict[str, dict[str, list[CsiCapture]]] = {}
    for entry in info.get("files", {}).get("test", []):
        m = _MOTION_START.search(str(entry.get("description", "")))
        path = Path(data_dir) / "test" / str(entry.get("filename", ""))
        if not m or not path.is_file():
            continue
        cap = load_espectre_npz(path)
        start = int(m.group(1))
        if not baseline_warmup + 2 <= start <= len(cap.t_s) - 2:
            raise ValueError(f"{path.name}: motion start {start} outside its {len(cap.t_s)} packets")
        parts = out.setdefault(cap.meta["chip"], {"baseline": [], "baseline_whole": [], "movement": []})
        for key, (a, b) in {
            "baseline": (baseline_warmup, start),
            "baseline_whole": (0, start),
            "movement": (start, len(cap.t_s)),
        }.items():
            label = "movement" if key == "movement" else "baseline"
            parts[key].append(_segment(cap, a, b, f"{cap.source}[{a}:{b}]", label=label, packets=[a, b]))
    return out


def as_mode(cap: CsiCapture, mode: str) -> tuple[CsiCapture, bool]:
    """(capture, amplitude_only) for `iq` or `amp52` (written and re-read as amplitude CSV)."""
    if mode == "iq":
        return cap, False
    if mode != "amp52":
        raise ValueError(f"mode {mode!r}: use iq or amp52")
    legacy = to_legacy_amplitude(cap, 100.0)
    parsed, rep = parse_amplitude_csv(write_amplitude_csv(legacy.csi), 100.0, source=cap.source)
    if rep.rejected:
        raise ValueError(f"amplitude CSV round trip rejected rows: {rep.summary()}")
    parsed.meta |= {k: v for k, v in cap.meta.items() if k in ("label", "chip")}
    return parsed, True


def pair_calibration(caps: dict, mode: str, fold: int):
    """(room, ClientCalibration) of one espectre chip's fold: the *other* empty/movement pair
    (index 1 - fold), in `mode`, as a client's `empty` and `walk` calibration captures, in a
    guessed room; the pair `fold` is the one to score. `caps`: the chip's files whole
    (`espectre_captures(..., baseline_warmup=0)`), as a client would hand them in."""
    from iv_pipelines.sensing.calibration import Calibration
    from iv_pipelines.sensing.client import calibrate_client
    from iv_pipelines.sensing.twin import RESIDENTS, Room

    other = 1 - fold
    cb, _ = as_mode(caps["baseline"][other], mode)
    cm, _ = as_mode(caps["movement"][other], mode)
    room = Room.random(np.random.default_rng(100 + fold))
    cal = calibrate_client(
        room,
        RESIDENTS["mixed"],
        [
            (Calibration("empty", cb, False, "baseline"), "real"),
            (Calibration("walk", cm, False, "movement"), "real"),
        ],
    )
    return room, cal


def capture_windows(cap: CsiCapture, mode: str, hop_s: float = 1.0) -> np.ndarray:
    from iv_pipelines.sensing.features import windows_from_capture

    c, amp = as_mode(cap, mode)
    return windows_from_capture(c.csi, c.t_s, hop_s=hop_s, amplitude_only=amp)


@dataclass
class ChipScore:
    chip: str
    mode: str
    calibration: str  # none | context | adapter
    n_empty: int
    empty_called_empty: float
    n_moving: int
    moving_called_nonempty: float
    auroc: float
    called_fall: float  # share of all windows called fall (no falls were recorded)
    # the same models on the baseline files whole, their recorder's warm-up included
    n_empty_whole: int = 0
    empty_whole: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def lower_bounds(self) -> tuple[float, float]:
        """95 % Wilson lower bounds of (empty->empty, moving->non-empty). Windows overlap (2 s
        every 1 s) and come from one or two recordings, so they are not independent: the
        true bounds are lower still. They say how far a share of 12-76 windows can certify a
        goal such as >= 0.95 (a share of 13 of 13 cannot: its bound is 0.77)."""
        from iv_pipelines.sensing.gate import wilson

        return (
            wilson(round(self.empty_called_empty * self.n_empty), self.n_empty)[0],
            wilson(round(self.moving_called_nonempty * self.n_moving), self.n_moving)[0],
        )


def score(
    chip: str,
    mode: str,
    calibration: str,
    p_empty_files: list[np.ndarray],
    p_moving_files: list[np.ndarray],
    threshold: float | list[float],
    allow_empty_files: list[np.ndarray] | None = None,
    allow_moving_files: list[np.ndarray] | None = None,
    p_empty_whole_files: list[np.ndarray] | None = None,
    allow_empty_whole_files: list[np.ndarray] | None = None,
) -> ChipScore:
    """`threshold`: one for every file, or one per file (a fold's own DAC); `allow_*_files`:
    per file, the windows its DAC's fall-intensity check lets be called fall (None: no check);
    `p_empty_whole_files`: the baseline files whole (warm-up included), decided the same way."""
    from iv_pipelines.scoring.calibration import auroc
    from iv_pipelines.sensing.evaluate import EMPTY, FALL, decide

    def decided(files, thresholds, allows):
        thresholds = thresholds if isinstance(thresholds, list) else [thresholds] * len(files)
        allows = allows or [None] * len(files)
        return np.concatenate([decide(p, t, a) for p, t, a in zip(files, thresholds, allows, strict=True)])

    pe, pm = np.concatenate(p_empty_files), np.concatenate(p_moving_files)
    de, dm = (
        decided(p_empty_files, threshold, allow_empty_files),
        decided(p_moving_files, threshold, allow_moving_files),
    )
    whole = {}
    if p_empty_whole_files is not None:
        dw = decided(p_empty_whole_files, threshold, allow_empty_whole_files)
        whole = {"n_empty_whole": int(len(dw)), "empty_whole": float((dw == EMPTY).mean())}
    return ChipScore(
        chip,
        mode,
        calibration,
        int(len(pe)),
        float((de == EMPTY).mean()),
        int(len(pm)),
        float((dm != EMPTY).mean()),
        float(auroc(1 - pm[:, EMPTY], 1 - pe[:, EMPTY])),
        float((np.concatenate([de, dm]) == FALL).mean()),
        **whole,
    )


def uncalibrated_scores(
    model,
    caps: dict,
    threshold: float = 0.5,
    modes=("iq", "amp52"),
    whole: dict | None = None,
    extra: dict | None = None,
) -> list[ChipScore]:
    """Every chip, no calibration: the base model as a new client without captures gets it.
    `whole`: the same chips' captures with the baseline files whole, also scored; `extra`:
    `espectre_test_parts`, scored with the chip's files."""
    from iv_pipelines.sensing.model import predict_proba

    rows = []
    for chip in sorted(caps):
        more = (extra or {}).get(chip, {})
        for mode in modes:
            pe = [
                predict_proba(model, capture_windows(c, mode))
                for c in caps[chip]["baseline"] + more.get("baseline", [])
            ]
            pm = [
                predict_proba(model, capture_windows(c, mode))
                for c in caps[chip]["movement"] + more.get("movement", [])
            ]
            pw = None
            if whole is not None:
                pw = [
                    predict_proba(model, capture_windows(c, mode))
                    for c in whole[chip]["baseline"] + more.get("baseline_whole", [])
                ]
            rows.append(score(chip, mode, "none", pe, pm, threshold, p_empty_whole_files=pw))
    return rows


def context_scores(
    model, caps: dict, threshold: float = 0.5, modes=("iq", "amp52"), whole: dict | None = None
) -> list[ChipScore]:
    """Every chip, each pair scored with the context of the other pair of the same chip (from
    `whole`, the files whole as a client hands them in, when given)."""
    from iv_pipelines.sensing.context import context_vector
    from iv_pipelines.sensing.model import predict_proba

    rows = []
    for chip in sorted(caps):
        b, m = caps[chip]["baseline"], caps[chip]["movement"]
        cb = (whole or caps)[chip]["baseline"]
        for mode in modes:
            pe, pm = [], []
            for i in range(min(len(b), len(m))):
                j = 1 - i
                ctx = context_vector(
                    {"empty": capture_windows(cb[j], mode), "walk": capture_windows(m[j], mode)}
                )
                pe.append(predict_proba(model, capture_windows(b[i], mode), ctx=ctx))
                pm.append(predict_proba(model, capture_windows(m[i], mode), ctx=ctx))
            rows.append(score(chip, mode, "context", pe, pm, threshold))
    return rows


def table_md(rows: list[ChipScore]) -> str:
    """The per-chip table; a last column with the baseline files whole when any row has it."""
    whole = any(r.empty_whole is not None for r in rows)
    head = "| chip | input | calibration | empty→empty | moving→non-empty | AUROC | called fall |"
    head += (
        " empty→empty, whole files |\n|---|---|---|---|---|---|---|---|\n"
        if whole
        else "\n|---|---|---|---|---|---|---|\n"
    )

    def last(r):
        if not whole:
            return ""
        return " - |" if r.empty_whole is None else f" {r.empty_whole:.2f} ({r.n_empty_whole}) |"

    def share(value, n, lower):
        return f"{value:.2f} ({n}; >= {lower:.2f})"

    return head + "\n".join(
        f"| {r.chip} | {r.mode} | {r.calibration} | "
        f"{share(r.empty_called_empty, r.n_empty, r.lower_bounds()[0])} | "
        f"{share(r.moving_called_nonempty, r.n_moving, r.lower_bounds()[1])} | "
        f"{r.auroc:.3f} | {r.called_fall:.2f} |" + last(r)
        for r in rows
    )


def goal_summary(rows: list[ChipScore], goal: float = 0.95) -> str:
    """How many rows meet `goal` on both shares: as measured, with the baseline files whole,
    and by the shares' 95 % lower bounds (what the data can certify; `ChipScore.lower_bounds`)."""
    met = sum(min(r.empty_called_empty, r.moving_called_nonempty) >= goal for r in rows)
    whole = sum(min(r.empty_whole or 0.0, r.moving_called_nonempty) >= goal for r in rows)
    certified = sum(min(r.lower_bounds()) >= goal for r in rows)
    return (
        f"goal met in {met} of {len(rows)} rows ({whole} with the baseline files whole); "
        f"certified (95 % lower bound of both shares >= {goal}) in {certified} of {len(rows)}"
    )


# --- GeoTecINIT ESP32-S2 (ODC-By 1.0): real walking, standing up, sitting down; no falls ---
GEOTECINIT = (
    Path(__file__).resolve().parent.parent.parent / "data" / "real" / "geotecinit-esp32s2" / "captures.npz"
)
GEO_GROUPS = {
    "SEATED": "seated",
    "STANDING_UP": "standing up",
    "WALKING": "walking",
    "TURN": "walking",
    "SITTING_DOWN": "sitting down",
}


def geotecinit_windows(
    path: Path = GEOTECINIT,
    hop_s: float = 1.0,
    composition: dict | None = None,
    sessions: tuple[str, ...] | None = None,
) -> dict[str, list[tuple[np.ndarray, list[str]]]]:
    """{session: [(windows, group of each window), ...] per execution}; a window's group is the
    label of most of its packets. Amplitudes only, 100 Hz, subcarriers -28..28 placed in the
    centred 64-entry layout. `composition`, when given, receives the same structure with, per
    window, "execution: LABEL packets, ..." (the dataset's own labels, most packets first).
    `sessions`: read only these (development code reads D1 alone; default all)."""
    from iv_pipelines.sensing.features import window_starts, windows_from_capture

    out: dict[str, list] = {}
    with np.load(path) as z:
        names = [str(v) for v in z["labels"]]
        keys = sorted(k[: -len("_amp")] for k in z.files if k.endswith("_amp"))
        for key in keys:
            if sessions is not None and key.split("_")[0] not in sessions:
                continue
            amp, lab = z[key + "_amp"].astype(np.float32), z[key + "_label"]
            csi = np.zeros((len(amp), 64), np.complex64)
            csi[:, 4:32], csi[:, 33:61] = amp[:, :28], amp[:, 28:]  # k = -28..-1 and 1..28
            t = np.arange(len(amp)) / 100.0
            x = windows_from_capture(csi, t, hop_s=hop_s, amplitude_only=True)
            starts, length = window_starts(t, hop_s)
            groups, parts = [], []
            for s in starts:
                sel = lab[int(round(s * 100)) : int(round((s + length) * 100))]
                counts = np.bincount(sel, minlength=len(names))
                groups.append(GEO_GROUPS[names[int(counts.argmax())]])
                parts.append(
                    f"{key} at {s:.0f} s: "
                    + ", ".join(
                        f"{names[i]} {counts[i]}" for i in np.argsort(-counts, kind="stable") if counts[i]
                    )
                )
            out.setdefault(key.split("_")[0], []).append((x, groups))
            if composition is not None:
                composition.setdefault(key.split("_")[0], []).append(parts)
    return out


def geotecinit_scores(model, threshold: float = 0.5, calibrate: bool = False) -> dict:
    """Share of windows called non-empty (a person is always there) and called fall (all
    false alarms) per activity group, over sessions D2-D4; with `calibrate`, the model is
    conditioned on the context of session D1's walking and sitting windows (a different
    session of the same device, 10-90 minutes earlier)."""
    from iv_pipelines.sensing.context import context_vector

    data = geotecinit_windows()
    ctx = None
    if calibrate:
        walk = [x[i] for x, g in data["D1"] for i, gi in enumerate(g) if gi == "walking"]
        sit = [x[i] for x, g in data["D1"] for i, gi in enumerate(g) if gi in ("seated", "sitting down")]
        ctx = context_vector({"walk": np.stack(walk), "sit": np.stack(sit)})
    return _score_sessions(model, data, ctx, threshold)


EVALUATION_SESSIONS = ("D2", "D3", "D4")


def _score_sessions(
    model, data: dict, ctx, threshold: float, check=None, sessions=EVALUATION_SESSIONS
) -> dict:
    """Share of windows called non-empty / called fall per activity group (and `all`) over
    `sessions` of `geotecinit_windows()` output (the evaluation sessions D2-D4 unless told),
    at `threshold` (and the DAC's fall-intensity `check`, an `IntensityCheck`, when given)."""
    from iv_pipelines.sensing.evaluate import EMPTY, FALL, decide
    from iv_pipelines.sensing.intensity import allowed
    from iv_pipelines.sensing.model import predict_proba

    rows: dict[str, list[int]] = {}
    for session in sessions:
        for x, groups in data[session]:
            pred = decide(
                predict_proba(model, x, ctx=ctx),
                threshold,
                allowed(check, x),
            )
            for p, g in zip(pred, groups, strict=True):
                rows.setdefault(g, []).append(int(p))
    rows["all"] = [p for g in sorted(rows) for p in rows[g]]
    return {
        g: {
            "windows": len(v),
            "called_nonempty": float((np.array(v) != EMPTY).mean()),
            "called_fall": float((np.array(v) == FALL).mean()),
        }
        for g, v in sorted(rows.items(), key=lambda kv: (kv[0] == "all", kv[0]))
    }


GAP_S = 1.0  # silence between the separate walking runs of the calibration capture (> MAX_GAP_S)


def geotecinit_walk_capture(
    seconds: float = 20.0, session: str = "D1", path: Path = GEOTECINIT, from_end: bool = False
) -> CsiCapture:
    """The first `seconds` of walking of `session` (the packets labelled WALKING or TURN, in
    recording order, at 100 Hz): what a client would record as the device's walking
    calibration (issue #13: 15-20 s of walking). The dataset holds no 20 s of continuous
    walking, so the capture is the walking runs of the session's first sequences (~3.4 s each)
    as separate recordings: GAP_S of silence between runs, so that no window straddles two
    runs (the capsule and the calibration cut at gaps, `features.stretch_windows`); until
    2026-12-06 they were joined end to end, and 20 of the 37 windows straddled a join.
    `meta["sequences"]`: how many sequences (in file order) it drew on; `meta["seconds"]`:
    the seconds of walking it holds; `meta["runs_s"]`: where each run starts. `from_end`: the
    walking of the session's last sequences instead (latest first; `bench/walking_folds.py`),
    then `meta["sequences"]` counts from the end."""
    parts, total = [], 0
    with np.load(path) as z:
        names = [str(v) for v in z["labels"]]
        walking = [i for i, n in enumerate(names) if GEO_GROUPS[n] == "walking"]
        keys = sorted(k[: -len("_amp")] for k in z.files if k.endswith("_amp") and k.startswith(session))
        for key in keys[::-1] if from_end else keys:
            amp, lab = z[key + "_amp"].astype(np.float32), z[key + "_label"]
            sel = amp[np.isin(lab, walking)][: max(int(seconds * 100) - total, 0)]
            parts.append(sel)
            total += len(sel)
            if total >= seconds * 100:
                break
    amp = np.concatenate(parts)
    starts = np.concatenate([[0], np.cumsum([len(p) for p in parts])[:-1]])
    t = np.concatenate(
        [
            (np.arange(len(p)) + s0) / 100.0 + GAP_S * k
            for k, (p, s0) in enumerate(zip(parts, starts, strict=True))
        ]
    )
    csi = np.zeros((len(amp), 64), np.complex64)
    csi[:, 4:32], csi[:, 33:61] = amp[:, :28], amp[:, 28:]
    return CsiCapture(
        csi,
        t,
        np.zeros(len(amp)),
        f"geotecinit {session} walking",
        {
            "amplitude_only": True,
            "sequences": len(parts),
            "from_end": from_end,
            "seconds": len(amp) / 100.0,
            "runs_s": [float(t[s0]) for s0 in starts],
        },
    )


def geotecinit_adapter_scores(
    base_dir: Path,
    budget: dict | None = None,
    seed: int = 0,
    split: str = "evaluation",
    keep=None,
    from_end: bool = False,
) -> dict:
    """The DAC's own path on a device none of the models was fitted to: the first 20 s of
    session D1's walking is the client's calibration capture (`walk`); the device is fitted,
    the adapter trained and its fall threshold chosen as the lifecycle does; then scored at
    that threshold, with the DAC's fall-intensity check (and, under `_without_check`, without
    it). Every window called fall is a false alarm. `split`:
    - `evaluation`: sessions D2-D4 (10-90 min later), never used to choose anything;
    - `development`: the sequences of session D1 the calibration capture did not draw on (the
      same session as the calibration: real walking to develop against; development data
      since 2026-12-06, before any development on it; D2-D4 stay evaluation only).
    `keep`: a dict that receives the fitted DAC's pieces for diagnostics (model, context,
    threshold, check, the scored windows) when given. `from_end` (development only): the
    calibration is the walking of D1's last sequences and the sequences before them are
    scored (`bench/walking_folds.py`)."""
    if split not in ("evaluation", "development"):
        raise ValueError(f"split {split!r}: use evaluation or development")
    if from_end and split != "development":
        raise ValueError("from_end: a fold of session D1, the development split only")
    from iv_pipelines.sensing.calibration import Calibration
    from iv_pipelines.sensing.client import calibrate_client, train_client_adapter
    from iv_pipelines.sensing.model import load_model
    from iv_pipelines.sensing.twin import RESIDENTS, Room

    room = Room.random(np.random.default_rng(5))  # the lab's room is not published
    cap = geotecinit_walk_capture(from_end=from_end)
    cal = calibrate_client(
        room, RESIDENTS["mixed"], [(Calibration("walk", cap, False, cap.source), "real")], seed
    )
    res = train_client_adapter(base_dir, room, cal, seed=seed, **(budget or {}))
    model = res.model if res.selected == "adapter" else load_model(base_dir)[0]
    thr = res.thresholds[res.selected]
    from iv_pipelines.sensing.intensity import IntensityCheck

    data = geotecinit_windows(sessions=("D1",) if split == "development" else None)
    sessions = EVALUATION_SESSIONS
    if split == "development":
        used = int(cap.meta["sequences"])
        d1 = data["D1"][: len(data["D1"]) - used] if from_end else data["D1"][used:]
        data = {"D1 (development)": d1}
        sessions = tuple(data)
    check = IntensityCheck.from_dict(res.intensity_check)
    out = _score_sessions(model, data, cal.context, thr, check, sessions)
    out["_without_check"] = (
        _score_sessions(model, data, cal.context, thr, None, sessions) if check is not None else None
    )
    if keep is not None:
        keep.update(model=model, context=cal.context, threshold=thr, check=check, data=data)
    out["_dac"] = {
        "intensity_check": res.intensity_report["why"],
        "selected": res.selected,
        "fall_threshold": thr,
        "threshold_set_false_alarm_rate": res.evidence["decision"].get("threshold_set_false_alarm_rate"),
        "threshold_set_windows": res.evidence["decision"].get("threshold_set_windows"),
        "threshold_set_false_alarm_upper95": res.evidence["decision"].get(
            "threshold_set_false_alarm_upper95"
        ),
        "calibration_seconds": float(cap.meta["seconds"]),
        "calibration_sequences": int(cap.meta["sequences"]),
        "calibration_from_end": from_end,
        "walk_speed_ms": cal.fit.walk_speed_ms,
        "split": split,
        "device_fit": {
            k: round(float(v), 4) for k, v in cal.fit.device.to_dict().items() if isinstance(v, float)
        },
    }
    return out
