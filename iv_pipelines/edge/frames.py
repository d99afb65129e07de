"""CSI frames on the wire: encode, decode and verify (the firmware core's format).

A datagram is one `Frame {data, hmac}`: `data` is a serialized `CSIData`, `hmac` is
HMAC-SHA256(device key, data). `decode` refuses, with a `FrameError` naming why, anything
that is not exactly that: oversized input, bytes that are not a Frame, a missing or wrong
HMAC, a CSIData over the firmware's limits. The key is looked up by the device id *inside*
the verified data only after the HMAC matched one of the candidate keys, so a stranger can
neither inject frames nor learn which device ids exist.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import numpy as np
from google.protobuf.message import DecodeError

from iv_pipelines.edge import csi_data_pb2 as pb

MAX_FRAME_BYTES = 581  # iv_csi_v1_Frame_size (nanopb): nothing longer is a frame
MAX_CSI_BYTES = 384
MAX_DEVICE_ID = 31
HMAC_LEN = 32
LAYOUTS = {
    pb.HT20_LLTF_FFT: 64,
    pb.HT20_LLTF_CENTRED: 64,
    pb.HT20_LLTF_HTLTF_FFT: 128,
    pb.HT40_LLTF_HTLTF_FFT: 192,
}


class FrameError(ValueError):
    """A datagram that is not a valid frame; `kind` is the counter it belongs to."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # oversized | malformed | bad_hmac | invalid


@dataclass(frozen=True)
class Csi:
    """A verified CSIData, decoded."""

    device_id: str
    seq: int
    timestamp_us: int
    layout: int
    raw: bytes  # the ESP32 buffer: int8 (imaginary, real) pairs, in `layout` order
    rssi: int
    noise_floor: int
    channel: int
    rate_hz: int
    event: tuple[str, float] | None  # (type, confidence) of a decision made on the device

    @property
    def iq(self) -> np.ndarray:
        """complex64, one value per subcarrier entry (real + j imag), decoded on demand (the
        ingest path itself never needs it: it stores and forwards the raw buffer)."""
        pairs = np.frombuffer(self.raw, np.int8).reshape(-1, 2).astype(np.float32)
        return (pairs[:, 1] + 1j * pairs[:, 0]).astype(np.complex64)


def csi_bytes(iq: np.ndarray) -> bytes:
    """Complex CSI as the ESP32 buffer: int8 (imaginary, real) pairs, saturated."""
    iq = np.asarray(iq)
    pairs = np.empty((iq.size, 2), np.float64)
    pairs[:, 0], pairs[:, 1] = iq.imag.ravel(), iq.real.ravel()
    return np.clip(np.rint(pairs), -128, 127).astype(np.int8).tobytes()


def encode(msg: pb.CSIData, key: bytes) -> bytes:
    """One datagram: the Frame with `msg` and its HMAC under `key`."""
    if len(msg.csi) > MAX_CSI_BYTES or len(msg.device_id) > MAX_DEVICE_ID:
        raise FrameError("invalid", f"CSIData over the firmware's limits ({len(msg.csi)} CSI bytes)")
    data = msg.SerializeToString()
    return pb.Frame(data=data, hmac=hmac.digest(key, data, "sha256")).SerializeToString()


def decode(datagram: bytes, key_for) -> Csi:
    """Verify and decode one datagram. `key_for(device_id) -> bytes | None` gives a device's
    key; the device id is read from the unverified data only to pick the key, and nothing of
    it is trusted (or returned) until the HMAC matches."""
    if len(datagram) > MAX_FRAME_BYTES:
        raise FrameError("oversized", f"{len(datagram)} bytes > {MAX_FRAME_BYTES}")
    frame, msg = pb.Frame(), pb.CSIData()
    try:
        frame.ParseFromString(datagram)
        msg.ParseFromString(frame.data)
    except (DecodeError, RuntimeError) as e:
        raise FrameError("malformed", f"not a Frame: {e}") from None
    if len(frame.hmac) != HMAC_LEN or not frame.data:
        raise FrameError("malformed", "a Frame needs data and a 32-byte hmac")
    key = key_for(msg.device_id) if msg.device_id else None
    if key is None or not hmac.compare_digest(hmac.digest(key, frame.data, "sha256"), frame.hmac):
        raise FrameError("bad_hmac", "the HMAC does not match a known device key")
    if len(msg.csi) > MAX_CSI_BYTES or len(msg.csi) % 2 or len(msg.device_id) > MAX_DEVICE_ID:
        raise FrameError("invalid", f"CSIData over the firmware's limits ({len(msg.csi)} CSI bytes)")
    event = None
    if msg.HasField("event"):
        event = (pb.SensingEvent.Type.Name(msg.event.type), float(msg.event.confidence))
    return Csi(
        msg.device_id,
        msg.seq,
        msg.timestamp_us,
        msg.layout,
        msg.csi,
        msg.rssi,
        msg.noise_floor,
        msg.channel,
        msg.rate_hz,
        event,
    )


def fft_entries(c: Csi) -> np.ndarray:
    """The frame's first 64 subcarrier entries as the ESP32 buffer in FFT order: int8 (128,)
    (imag, real) pairs; a centred layout is reordered, longer layouts keep their L-LTF part."""
    pairs = np.frombuffer(c.raw, np.int8).reshape(-1, 2)
    if c.layout == pb.HT20_LLTF_CENTRED:
        pairs = np.concatenate([pairs[32:64], pairs[:32]])
    return pairs[:64].ravel()


def fft_entry_bytes(c: Csi) -> bytes:
    """`fft_entries` as bytes, without numpy for the common FFT layout (the ingest hot path)."""
    if c.layout in (pb.HT20_LLTF_FFT, pb.HT20_LLTF_HTLTF_FFT, pb.HT40_LLTF_HTLTF_FFT):
        return c.raw[:128]
    return fft_entries(c).tobytes()
