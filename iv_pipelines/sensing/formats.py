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
complex (T, 64) array in centred order (index k + 32 for subcarrier k).

Malformed lines are never dropped silently: each is counted with its line number and reason.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

N_SUB = 64
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

    def summary(self) -> str:
        head = f"{self.parsed} frames from {self.lines} lines, {self.skipped} non-CSI lines skipped"
        if not self.rejected:
            return head + ", 0 rejected"
        first = "; ".join(f"line {n}: {why}" for n, why in self.rejected[:5])
        return f"{head}, {len(self.rejected)} rejected ({first})"


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


def parse_lines(lines: list[str] | io.TextIOBase, source: str = "csi") -> tuple[CsiCapture, ParseReport]:
    """Parse esp-csi and ESP32-CSI-Tool lines (mixed is fine) into one capture."""
    report = ParseReport()
    frames, ts, rssi = [], [], []
    for n, line in enumerate(lines, start=1):
        report.lines += 1
        line = line.strip()
        if not line or line.startswith("type,") or not line.startswith("CSI_DATA"):
            report.skipped += 1
            continue
        try:
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
            frames.append(entries_to_centred(vals[: 2 * N_SUB], layout))
            ts.append(t)
            rssi.append(rs)
            report.parsed += 1
        except (CsiFormatError, ValueError, IndexError) as exc:
            report.rejected.append((n, str(exc)))
    csi = np.stack(frames) if frames else np.zeros((0, N_SUB), np.complex64)
    t = np.asarray(ts, dtype=np.float64)
    if len(t) > 1 and np.any(np.diff(t) < 0):  # the ESP32 us counter wraps at 2^32 us
        t = np.concatenate([[t[0]], t[0] + np.cumsum(np.mod(np.diff(t), 2**32 / 1e6))])
    return CsiCapture(csi, t, np.asarray(rssi, dtype=np.int16), source), report


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
