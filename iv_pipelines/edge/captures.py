"""What each device sent on one day, from the ingest service's capture store and detection
log (the `device_captures` asset), and a device's frames exported as a capture file a DAC
request can carry as calibration (`iv ingest export`)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path


def _line_fields(line: str) -> tuple[int, int, int] | None:
    """(seq, rssi, timestamp_us) of an esp-csi CSI_DATA line written by the capture store."""
    parts = line.split(",", 19)
    if len(parts) < 19 or parts[0] != "CSI_DATA":
        return None
    try:
        return int(parts[1]), int(parts[3]), int(parts[18])
    except ValueError:
        return None


def day_files(captures_dir: Path, device: str, day: dt.date) -> list[Path]:
    return sorted((Path(captures_dir) / device).glob(f"{day:%Y%m%d}-*.csv"))


def summarise_day(captures_dir: Path, detections_file: Path | None, day: dt.date) -> list[dict]:
    """One row per device with frames that day: frames, device-clock span, mean rate, gaps
    in its sequence numbers, mean RSSI, and detections by label."""
    rows = []
    dets: dict[str, dict[str, int]] = {}
    if detections_file is not None and Path(detections_file).is_file():
        lo = dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()
        for line in Path(detections_file).read_text().splitlines():
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue
            if lo <= d.get("received_at", lo - 1) < lo + 86400:
                by = dets.setdefault(d["device_id"], {})
                by[d["label"]] = by.get(d["label"], 0) + 1
    root = Path(captures_dir)
    for dev_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        seqs, rssi, ts = [], 0, []
        for f in day_files(root, dev_dir.name, day):
            for line in f.read_text().splitlines():
                got = _line_fields(line)
                if got:
                    seqs.append(got[0])
                    rssi += got[1]
                    ts.append(got[2])
        if not seqs:
            continue
        gaps = sum(max(0, ((b - a) & 0xFFFFFFFF) - 1) for a, b in zip(seqs, seqs[1:], strict=False) if b != a)
        span = (max(ts) - min(ts)) / 1e6
        rows.append(
            {
                "device_id": dev_dir.name,
                "frames": len(seqs),
                "span_s": round(span, 1),
                "rate_hz": round((len(seqs) - 1) / span, 1) if span > 0 else None,
                "gaps": gaps,
                "mean_rssi": round(rssi / len(seqs), 1),
                "detections": dets.get(dev_dir.name, {}),
            }
        )
    return rows


def export_capture(
    captures_dir: Path, device: str, out: Path, start_us: int | None = None, seconds: float = 20.0
) -> int:
    """Write `seconds` of a device's stored frames (from device time `start_us`, default the
    newest `seconds`) as an esp-csi capture file; returns the number of frames."""
    import re

    from iv_pipelines.request import DEVICE_ID_PATTERN
    from iv_pipelines.sensing.formats import ESP_CSI_HEADER

    if not re.match(DEVICE_ID_PATTERN, device):  # it names a folder: never a path
        raise ValueError(f"device id {device!r} is not a device id (letters, digits, '.', '_', ':', '-')")
    lines = []
    for f in sorted((Path(captures_dir) / device).glob("*.csv")):
        lines += [ln for ln in f.read_text().splitlines() if _line_fields(ln)]
    if not lines:
        raise FileNotFoundError(f"no stored frames of device {device!r} under {captures_dir}")
    ts = [_line_fields(ln)[2] for ln in lines]
    lo = start_us if start_us is not None else max(ts) - int(seconds * 1e6)
    hi = lo + int(seconds * 1e6)
    keep = [ln for ln, t in zip(lines, ts, strict=True) if lo <= t <= hi]
    if not keep:
        raise ValueError(f"device {device!r} has no frames between {lo} and {hi} us")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(ESP_CSI_HEADER + "\n" + "\n".join(keep) + "\n")
    return len(keep)


def newest_timestamp_us(captures_dir: Path, device: str) -> int | None:
    """The device time of the newest stored frame of `device` (from the end of its newest
    capture file), or None when it has none."""
    for f in sorted((Path(captures_dir) / device).glob("*.csv"), reverse=True):
        with open(f, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 65536))
            tail = fh.read().decode(errors="replace").splitlines()
        for ln in reversed(tail):
            got = _line_fields(ln)
            if got:
                return got[2]
    return None
