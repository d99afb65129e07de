"""ESP32 CSI formats: one parser for real captures and simulated data.

Line formats in the wild:
- espressif `esp-csi` (25 fields): `type,id,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,
  not_sounding,aggregation,stbc,fec_coding,sgi,noise_floor,ampdu_cnt,channel,
  secondary_channel,local_timestamp,ant,sig_len,rx_state,len,first_word,data` with `data` a
  quoted comma list `"[a,b,...]"`;
- `ESP32-CSI-Tool` (26 fields): `CSI_DATA,role,mac,rssi,...,rx_state,real_time_set,
  real_timestamp,len,[a b ...]` with space-separated values. It may print 128 values when
  `len` says 384, so values are counted, never trusted from `len`.
The int8 buffer holds (imaginary, real) pairs per subcarrier entry.

Subcarrier order (`layout`): `fft` = entries 0..31 are subcarriers 0..31 and 32..63 are
-32..-1 (esp-csi and classic-MAC chips without a secondary channel); `centred` = entry e is
subcarrier e - 32 (C5/C6 recordings; ESP32-CSI-Tool LLTF with the secondary channel above,
whose 20 MHz primary sits at entries 6..58 with DC at 32). Everything is converted to a
complex (T, 64) array in centred order (index k + 32 for subcarrier k). A line's fields do not
say which order its chip used (a C6 logs centred order with secondary channel 0), so the
capture's guard subcarriers decide when they show one order clearly (`detect_layout`; the
report notes it); otherwise the declared order stands.
A capture is one link: when the lines come from several transmitters (`mac`), the one heard
most is kept and the others are noted (`one_transmitter`).

Amplitude-only CSV (`parse_amplitude_csv`): firmwares that log sqrt(I^2 + Q^2) per subcarrier
write one packet per row: 64 amplitude columns in FFT order (entries 0..31 = subcarriers
0..31, 32..63 = -32..-1; a legacy-LLTF log has 52 non-zero entries, +-1..+-26), optionally a
label column last, an optional header row, and no timestamps: the caller states the packet
rate. Amplitudes become real-valued CSI (zero phase) and the capture is marked amplitude-only,
so the model's phase channel is switched off for it.

Malformed lines are never dropped silently: each is counted with its line number and reason.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

N_SUB = 64
MAX_LINE_CHARS = 16_384  # an ESP32 CSI line (384 int8 values at most) is under 4 KB
ESP_CSI_HEADER = (
    "type,id,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,not_sounding,aggregation,stbc,fec_coding,"
    "sgi,noise_floor,ampdu_cnt,channel,secondary_channel,local_timestamp,ant,sig_len,rx_state,len,"
    "first_word,data"
)
_ESP_CSI_FIELDS = ESP_CSI_HEADER.split(",")
# Subcarriers every source reports cleanly: +-2..+-26 (k = +-1 is the ESP32's garbage first
# word in FFT order; beyond +-26 legacy frames carry nothing).
USED_SUBCARRIERS = np.array([k for k in range(-26, 27) if abs(k) >= 2])
USED_INDEX = USED_SUBCARRIERS + 32


@dataclass
class CsiCapture:
    """Parsed CSI: `csi` complex64 (T, 64) in centred order, timestamps in seconds (T,), rssi."""

    csi: np.ndarray
    t_s: np.ndarray
    rssi: np.ndarray
    source: str
    meta: dict = field(default_factory=dict)

    @property
    def rate_hz(self) -> float:
        if len(self.t_s) < 2:
            return 0.0
        return float((len(self.t_s) - 1) / max(self.t_s[-1] - self.t_s[0], 1e-9))


@dataclass
class ParseReport:
    lines: int = 0
    parsed: int = 0
    skipped: int = 0  # headers, blank lines, non-CSI log lines (counted, explained)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    notes: list[str] = field(default_factory=list)  # what the parser decided for the whole capture

    def summary(self) -> str:
        head = f"{self.parsed} frames from {self.lines} lines, {self.skipped} non-CSI lines skipped"
        tail = "".join(f"; {n}" for n in self.notes)
        if not self.rejected:
            return head + ", 0 rejected" + tail
        first = "; ".join(f"line {n}: {why}" for n, why in self.rejected[:5])
        return f"{head}, {len(self.rejected)} rejected ({first}){tail}"


class CsiFormatError(ValueError):
    """A CSI line or buffer that does not follow its format; the message says what is wrong."""


def entries_to_centred(raw: np.ndarray, layout: str) -> np.ndarray:
    """(..., 128) int8 (imag, real) pairs -> complex64 (..., 64) in centred order."""
    raw = np.asarray(raw, dtype=np.float32)
    if raw.shape[-1] != 2 * N_SUB:
        raise CsiFormatError(f"expected {2 * N_SUB} int8 values (64 subcarriers), got {raw.shape[-1]}")
    c = (raw[..., 1::2] + 1j * raw[..., 0::2]).astype(np.complex64)
    if layout == "fft":
        return np.concatenate([c[..., 32:], c[..., :32]], axis=-1)
    if layout == "centred":
        return c
    raise CsiFormatError(f"unknown subcarrier layout {layout!r}; use 'fft' or 'centred'")


# Entries that hold no subcarrier (guards, DC) in each order, as every real capture here shows
# them (espectre: ESP32, S3, C3 in FFT order; C5, C6 in centred order): near-zero amplitude there
# (at most 0.08 of the capture's median entry) and data in the other order's (0.79 or more;
# tests/test_sensing_formats.py holds every espectre capture to both).
FFT_NULL_ENTRIES = tuple(range(29, 36))  # guard subcarriers +29..+31 and -32..-29
CENTRED_NULL_ENTRIES = (0, 1, 2, 3, 61, 62, 63)  # the same guards: -32..-29 and +29..+31
NULL_MAX, DATA_MIN = 0.25, 0.5


def guard_ratios(amplitudes: np.ndarray) -> tuple[float, float] | None:
    """Mean amplitude at the FFT order's and at the centred order's guard entries, each over the
    capture's median entry (None for an empty or all-zero capture)."""
    a = np.asarray(amplitudes, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != N_SUB or not len(a):
        return None
    mean = a.mean(axis=0)
    med = float(np.median(mean))
    if not np.isfinite(med) or med <= 0:
        return None
    return float(mean[list(FFT_NULL_ENTRIES)].mean() / med), float(
        mean[list(CENTRED_NULL_ENTRIES)].mean() / med
    )


def detect_layout(amplitudes: np.ndarray) -> str | None:
    """The subcarrier order a capture's guard subcarriers reveal: (N, 64) amplitudes per buffer
    entry, in the order the entries came -> "fft", "centred", or None when neither pattern is
    clear (the declared order then stands). Chips differ (C5/C6 log centred order with the
    secondary channel field saying nothing of it), and a wrong order scrambles the subcarriers
    the model reads without any error."""
    ratios = guard_ratios(amplitudes)
    if ratios is None:
        return None
    r_fft, r_centred = ratios
    if r_fft < NULL_MAX and r_centred > DATA_MIN:
        return "fft"
    if r_centred < NULL_MAX and r_fft > DATA_MIN:
        return "centred"
    return None


def _layout_note(n: int, declared: str, found: str, why: str) -> str:
    return (
        f"{n} frame(s) declared in {declared} order ({why}) have their guard subcarriers where "
        f"{found} order puts them: read in {found} order"
    )


def centred_to_entries(csi: np.ndarray) -> np.ndarray:
    """Inverse of `entries_to_centred(..., 'fft')`: complex (..., 64) -> int8 (..., 128)."""
    fft = np.concatenate([csi[..., 32:], csi[..., :32]], axis=-1)
    out = np.empty(csi.shape[:-1] + (2 * N_SUB,), dtype=np.int8)
    out[..., 0::2] = np.clip(np.round(fft.imag), -128, 127)
    out[..., 1::2] = np.clip(np.round(fft.real), -128, 127)
    return out


def _values(text: str) -> np.ndarray:
    body = text.strip().strip('"').strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise CsiFormatError("CSI data must be a bracketed list [..]")
    parts = body[1:-1].replace(",", " ").split()
    try:
        vals = np.array([int(p) for p in parts], dtype=np.int64)
    except ValueError:
        raise CsiFormatError("CSI data holds a non-integer value") from None
    if vals.size and (vals.min() < -128 or vals.max() > 127):
        raise CsiFormatError("CSI data value outside int8 range")
    return vals


def _pick_layout(secondary_channel: int) -> str:
    if secondary_channel == 0:
        return "fft"
    if secondary_channel == 1:
        return "centred"
    raise CsiFormatError(f"secondary channel {secondary_channel} (below): LLTF layout not supported")


def one_transmitter(macs: list[str], report: ParseReport) -> list[int] | None:
    """Indices of the frames of the transmitter heard most (None when there is one): a CSI
    capture is one link, and a receiver that also logs other transmitters interleaves channels
    that differ packet to packet as no movement makes them. The others are noted, not mixed in."""
    from collections import Counter

    counts = Counter(macs)
    if len(counts) < 2:
        return None
    kept, n_kept = counts.most_common(1)[0]
    others = [m for m in counts if m != kept]
    report.notes.append(
        f"{len(macs) - n_kept} frame(s) from {len(others)} other transmitter(s) "
        f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}) left out: one capture is one "
        f"link; kept the {n_kept} frames of {kept}"
    )
    return [i for i, m in enumerate(macs) if m == kept]


def ordered_entries(raw: np.ndarray, layouts: list[str], report: ParseReport, why: str) -> np.ndarray:
    """(N, 128) int8 entries -> (N, 64) centred CSI, each frame in its declared order unless the
    capture's guard subcarriers show the other one (`detect_layout`; noted in the report)."""
    found = detect_layout(np.hypot(raw[:, 0::2].astype(np.float32), raw[:, 1::2].astype(np.float32)))
    if found is not None:
        wrong = [lay for lay in layouts if lay != found]
        if wrong:
            report.notes.append(_layout_note(len(wrong), wrong[0], found, why))
        layouts = [found] * len(layouts)
    out = np.empty((len(raw), N_SUB), np.complex64)
    for lay in set(layouts):
        m = np.array([x == lay for x in layouts])
        out[m] = entries_to_centred(raw[m], lay)
    return out


def parse_lines(lines: list[str] | io.TextIOBase, source: str = "csi") -> tuple[CsiCapture, ParseReport]:
    """Parse esp-csi and ESP32-CSI-Tool lines (mixed is fine) into one capture."""
    report = ParseReport()
    frames, layouts, macs, ts, rssi = [], [], [], [], []
    for n, line in enumerate(lines, start=1):
        report.lines += 1
        line = line.strip()
        if not line or line.startswith("type,") or not line.startswith("CSI_DATA"):
            report.skipped += 1
            continue
        try:
            if len(line) > MAX_LINE_CHARS:  # the csv module raises past 131,072 characters
                raise CsiFormatError(
                    f"{len(line)} characters; an ESP32 CSI line has at most {MAX_LINE_CHARS}"
                )
            fields = next(csv.reader([line]))
            if len(fields) == len(_ESP_CSI_FIELDS):  # espressif esp-csi
                vals = _values(fields[-1])
                layout = _pick_layout(int(fields[17]))
                t = int(fields[18]) / 1e6
                rs = int(fields[3])
            elif len(fields) == 26:  # ESP32-CSI-Tool
                vals = _values(fields[-1])
                layout = _pick_layout(int(fields[17]))
                t = int(fields[18]) / 1e6
                rs = int(fields[3])
            else:
                raise CsiFormatError(f"{len(fields)} fields; esp-csi has 25, ESP32-CSI-Tool 26")
            if vals.size < 2 * N_SUB:
                raise CsiFormatError(f"{vals.size} CSI values, need at least 128 (64 subcarriers)")
            # HT40 frames print LLTF first: the first 128 values are the 64 LLTF entries
            frames.append(np.asarray(vals[: 2 * N_SUB], dtype=np.int8))
            layouts.append(layout)
            macs.append(fields[2].strip().lower())
            ts.append(t)
            rssi.append(rs)
            report.parsed += 1
        except (CsiFormatError, ValueError, IndexError, csv.Error) as exc:
            report.rejected.append((n, str(exc)[:300]))
    keep = one_transmitter(macs, report)
    if keep is not None:
        frames, layouts, ts, rssi = ([x[i] for i in keep] for x in (frames, layouts, ts, rssi))
    csi = (
        ordered_entries(np.stack(frames), layouts, report, "secondary channel field")
        if frames
        else np.zeros((0, N_SUB), np.complex64)
    )
    t = np.asarray(ts, dtype=np.float64)
    if len(t) > 1 and np.any(np.diff(t) < 0):  # the ESP32 us counter wraps at 2^32 us
        t = np.concatenate([[t[0]], t[0] + np.cumsum(np.mod(np.diff(t), 2**32 / 1e6))])
    meta = {"transmitter": macs[keep[0]] if keep else macs[0]} if macs else {}
    return CsiCapture(csi, t, np.asarray(rssi, dtype=np.int16), source, meta), report


def read_csi_file(path: Path) -> tuple[CsiCapture, ParseReport]:
    path = Path(path)
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        return parse_lines(fh, source=str(path))


def load_espectre_npz(path: Path) -> CsiCapture:
    """An espectre recording: int8 (N, 128), label, chip; timing from duration_ms (uniform)."""
    with np.load(Path(path)) as z:
        raw = z["csi_data"]
        chip = str(z["chip"]).lower()
        label = str(z["label"])
        duration_s = float(z["duration_ms"]) / 1000.0
    layout = "centred" if chip in ("c5", "c6") else "fft"
    csi = entries_to_centred(raw, layout)
    if chip == "esp32":  # the first word (entries 0-1) is invalid on the plain ESP32
        csi[:, 32] = 0
        csi[:, 33] = 0
    t = np.linspace(0.0, duration_s, len(csi), endpoint=False)
    return CsiCapture(csi, t, np.zeros(len(csi), np.int16), str(path), {"label": label, "chip": chip})


AMPLITUDE_MAX = 128 * 2**0.5  # |int8 + j int8| can never exceed this
# firmwares print amplitudes rounded (|-128 - 128j| = 181.019... is logged as 181.02): accept
# the rounding, clip to AMPLITUDE_MAX
AMPLITUDE_ROUNDING = 0.05
AMPLITUDE_LABELS = ("empty", "walk", "sit", "fall")
MAX_RATE_HZ = 1000.0


def parse_amplitude_csv(
    lines, rate_hz: float, source: str = "amplitude-csv"
) -> tuple[CsiCapture, ParseReport]:
    """Parse amplitude-only CSV rows (see the module docstring) at a declared `rate_hz`.

    Returns the capture (meta: `amplitude_only=True`, `labels` when a label column is present)
    and a report; a bad row is rejected with its line number and reason (wrong number of
    columns, a value that is not a finite number in 0..181, an unknown label)."""
    if not (isinstance(rate_hz, (int, float)) and np.isfinite(rate_hz) and 1.0 <= rate_hz <= MAX_RATE_HZ):
        raise CsiFormatError(
            f"rate_hz must be a number in 1..{MAX_RATE_HZ:g} Hz for amplitude CSV, got {rate_hz!r}"
        )
    report = ParseReport()
    rows, labels = [], []
    has_label = None
    for n, line in enumerate(lines, start=1):
        report.lines += 1
        text = line.strip()
        if not text:
            report.skipped += 1
            continue
        if len(text) > MAX_LINE_CHARS:
            report.rejected.append(
                (n, f"{len(text)} characters; an amplitude row has at most {MAX_LINE_CHARS}")
            )
            continue
        fields = [f.strip() for f in text.split(",")]
        if n == report.skipped + 1 and not rows and not report.rejected and _is_header(fields):
            report.skipped += 1
            continue
        try:
            if len(fields) not in (N_SUB, N_SUB + 1):
                raise CsiFormatError(f"{len(fields)} columns; amplitude CSV has 64 (or 65 with a label)")
            labelled = len(fields) == N_SUB + 1
            if has_label is not None and has_label != labelled:
                raise CsiFormatError(
                    f"{len(fields)} columns where earlier rows have {N_SUB + int(has_label)} (label column changes)"
                )
            try:
                vals = np.array([float(f) for f in fields[:N_SUB]], dtype=np.float64)
            except ValueError:
                raise CsiFormatError("an amplitude is not a number") from None
            if not np.all(np.isfinite(vals)):
                raise CsiFormatError("an amplitude is NaN or infinite")
            if vals.min() < 0 or vals.max() > AMPLITUDE_MAX + AMPLITUDE_ROUNDING:
                raise CsiFormatError(f"amplitudes must lie in 0..{AMPLITUDE_MAX:.0f} (sqrt(I^2+Q^2) of int8)")
            vals = np.minimum(vals, AMPLITUDE_MAX)
            if labelled:
                lab = fields[N_SUB].lower()
                if lab not in AMPLITUDE_LABELS:
                    raise CsiFormatError(
                        f"label {fields[N_SUB][:20]!r} is not one of {', '.join(AMPLITUDE_LABELS)}"
                    )
                labels.append(lab)
            has_label = labelled
            rows.append(vals)
            report.parsed += 1
        except CsiFormatError as exc:
            report.rejected.append((n, str(exc)))
    amp = np.stack(rows) if rows else np.zeros((0, N_SUB))
    if detect_layout(amp) == "centred":  # the format says FFT order; the guards say otherwise
        report.notes.append(_layout_note(len(amp), "fft", "centred", "amplitude CSV is FFT order"))
        csi = amp.astype(np.complex64)
    else:
        csi = np.concatenate([amp[:, 32:], amp[:, :32]], axis=1).astype(np.complex64)  # FFT -> centred
    t = np.arange(len(csi)) / float(rate_hz)
    meta = {"amplitude_only": True, "rate_hz": float(rate_hz)}
    if has_label:
        meta["labels"] = labels
    return CsiCapture(csi, t, np.zeros(len(csi), np.int16), source, meta), report


def _is_header(fields: list[str]) -> bool:
    try:
        [float(f) for f in fields[:N_SUB]]
        return False
    except ValueError:
        return True


def write_amplitude_csv(
    csi: np.ndarray, labels: list[str] | None = None, header: bool = True, decimals: int = 2
) -> list[str]:
    """Centred complex (or real amplitude) CSI -> amplitude CSV rows (FFT order)."""
    amp = np.abs(np.asarray(csi))
    fft = np.concatenate([amp[:, 32:], amp[:, :32]], axis=1)
    out = []
    if header:
        out.append(",".join([f"a{i}" for i in range(N_SUB)] + (["label"] if labels is not None else [])))
    for i, row in enumerate(fft):
        cells = [f"{v:.{decimals}f}" for v in row]
        if labels is not None:
            cells.append(labels[i])
        out.append(",".join(cells))
    return out


def to_legacy_amplitude(cap: CsiCapture, rate_hz: float = 100.0) -> CsiCapture:
    """What an amplitude-only legacy-LLTF firmware logging at `rate_hz` would have recorded of
    `cap`: one packet per 1/rate_hz (the nearest real packet: decimation, never interpolation,
    so single glitch packets stay single), amplitudes only, the 52 LLTF subcarriers +-1..+-26."""
    t = cap.t_s
    grid = t[0] + np.arange(int(np.floor((t[-1] - t[0]) * rate_hz)) + 1) / rate_hz
    idx = np.clip(np.searchsorted(t, grid), 0, len(t) - 1)
    prev = np.clip(idx - 1, 0, len(t) - 1)
    idx = np.where(np.abs(t[prev] - grid) < np.abs(t[idx] - grid), prev, idx)
    amp = np.abs(cap.csi[idx]).astype(np.float32)
    k = np.arange(-32, 32)
    amp[:, (k == 0) | (np.abs(k) > 26)] = 0.0
    meta = dict(cap.meta) | {"amplitude_only": True, "rate_hz": rate_hz, "converted_from": cap.source}
    return CsiCapture(
        amp.astype(np.complex64), grid - grid[0], np.zeros(len(grid), np.int16), cap.source, meta
    )


def write_esp_csi_lines(
    csi: np.ndarray,
    t_s: np.ndarray,
    rssi: np.ndarray | None = None,
    channel: int = 6,
    mac: str = "24:0a:c4:00:00:01",
) -> list[str]:
    """Simulated (or any) centred complex CSI -> esp-csi lines (FFT order, HT20, no secondary)."""
    raw = centred_to_entries(csi)
    rssi = np.full(len(csi), -55) if rssi is None else rssi
    out = [ESP_CSI_HEADER]
    for i in range(len(csi)):
        data = "[" + ",".join(str(int(v)) for v in raw[i]) + "]"
        first_word = int(raw[i, 0]) & 0xFF
        out.append(
            f"CSI_DATA,{i},{mac},{int(rssi[i])},11,1,0,0,1,0,0,0,0,0,-92,0,{channel},0,"
            f'{int(round(t_s[i] * 1e6))},0,0,0,{2 * N_SUB},{first_word},"{data}"'
        )
    return out


CAPTURE_FORMATS = ("auto", "esp-csi", "esp32-csi-tool", "espectre-npz", "amplitude-csv")
MAX_CAPTURE_BYTES = 64 * 2**20


def read_capture(
    path: Path, fmt: str = "auto", rate_hz: float | None = None
) -> tuple[CsiCapture, ParseReport, bool]:
    """Any supported capture file -> (capture, report, has_timestamps).

    `fmt` "auto" picks by content: `.npz` is an espectre recording, text starting with
    CSI_DATA lines (or the esp-csi header) is esp-csi / ESP32-CSI-Tool, anything else is tried as
    amplitude CSV, which needs `rate_hz`. Espectre and amplitude CSV captures have no per-packet
    timestamps (their times come from a duration or a rate): has_timestamps is False for them."""
    path = Path(path)
    if fmt not in CAPTURE_FORMATS:
        raise CsiFormatError(f"format {fmt!r}: use one of {', '.join(CAPTURE_FORMATS)}")
    if not path.is_file():
        raise CsiFormatError(f"{path}: no such capture file")
    size = path.stat().st_size
    if size > MAX_CAPTURE_BYTES:
        raise CsiFormatError(
            f"{path.name}: {size / 2**20:.0f} MiB is over the {MAX_CAPTURE_BYTES // 2**20} MiB limit"
        )
    if fmt == "espectre-npz" or (fmt == "auto" and path.suffix.lower() == ".npz"):
        try:
            cap = load_espectre_npz(path)
        except (KeyError, ValueError, OSError) as e:
            raise CsiFormatError(f"{path.name}: not an espectre .npz recording ({e})") from None
        return cap, ParseReport(lines=len(cap.csi), parsed=len(cap.csi)), False
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    if fmt == "auto":
        first = next((ln.strip() for ln in lines if ln.strip()), "")
        fmt = "esp-csi" if first.startswith(("CSI_DATA", "type,")) else "amplitude-csv"
    if fmt == "amplitude-csv":
        if rate_hz is None:
            raise CsiFormatError(
                f"{path.name}: amplitude CSV has no timestamps; give its packet rate (rate_hz)"
            )
        cap, rep = parse_amplitude_csv(lines, rate_hz, source=str(path))
        return cap, rep, False
    cap, rep = parse_lines(lines, source=str(path))
    return cap, rep, True
