"""The edge ingest service's core: datagrams in, verified frames out, nothing trusted early.

    UDP datagram / HTTP body item
        -> IngestService.handle(): size, parse, HMAC (per-device key), limits, sequence
           (duplicates and late or replayed frames dropped, gaps counted) -> bounded queue
        -> IngestService.drain(): the rolling capture store per device (esp-csi lines, the
           format calibration and the twin read) and the forwarder (the DAC capsule)

Every datagram ends in exactly one counter (`Counters`): accepted, oversized, malformed,
bad_hmac, invalid, duplicate, late or queue_full. State grows only with *verified* frames of
*registered* devices, so garbage from strangers costs a counter increment, never memory.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from iv_pipelines.edge.frames import Csi, FrameError, decode, fft_entry_bytes

OUTCOMES = ("accepted", "oversized", "malformed", "bad_hmac", "invalid", "duplicate", "late", "queue_full")
SEQ_WINDOW = 1 << 31
RECV_BUFFER_BYTES = 8 << 20  # sequence numbers wrap at 2^32; a distance is signed 32-bit


def seq_delta(prev: int, cur: int) -> int:
    """Signed distance prev -> cur modulo 2^32 (the C core's csi_seq_delta)."""
    d = (cur - prev) & 0xFFFFFFFF
    return d - (1 << 32) if d >= SEQ_WINDOW else d


@dataclass
class Counters:
    received: int = 0
    accepted: int = 0
    oversized: int = 0
    malformed: int = 0
    bad_hmac: int = 0
    invalid: int = 0
    duplicate: int = 0
    late: int = 0
    queue_full: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DeviceState:
    device_id: str
    last_seq: int
    frames: int = 0
    gaps: int = 0  # frames missing between accepted ones
    duplicates: int = 0
    late: int = 0
    rssi_sum: float = 0.0
    first_rx: float = field(default_factory=time.monotonic)
    last_rx: float = field(default_factory=time.monotonic)
    recent: collections.deque = field(default_factory=lambda: collections.deque(maxlen=256))  # rx times

    def rate_hz(self) -> float:
        if len(self.recent) < 2 or self.recent[-1] <= self.recent[0]:
            return 0.0
        return (len(self.recent) - 1) / (self.recent[-1] - self.recent[0])

    def summary(self) -> dict:
        return {
            "device_id": self.device_id,
            "frames": self.frames,
            "last_seq": self.last_seq,
            "gaps": self.gaps,
            "duplicates": self.duplicates,
            "late": self.late,
            "mean_rssi": round(self.rssi_sum / self.frames, 1) if self.frames else None,
            "rate_hz": round(self.rate_hz(), 1),
        }


class DeviceKeys:
    """Registered devices: id -> HMAC key and the DAC it feeds, in one JSON file
    (`<storage>/edge/devices.json`), written atomically."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._devices: dict[str, dict] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def add(self, device_id: str, key: bytes, dac_id: str | None = None) -> None:
        from iv_pipelines.edge.frames import MAX_DEVICE_ID
        from iv_pipelines.paths import atomic_write_text
        from iv_pipelines.request import DEVICE_ID_PATTERN

        if not re.match(DEVICE_ID_PATTERN, device_id or "") or len(device_id) > MAX_DEVICE_ID:
            raise ValueError(
                f"device id {device_id!r}: 1..{MAX_DEVICE_ID} printable characters, letters, digits, "
                "'.', '_', ':' or '-', starting with a letter or digit (it names the device's capture folder)"
            )
        if len(key) < 16:
            raise ValueError("a device key needs at least 16 bytes")
        self._devices[device_id] = {"key_hex": key.hex(), "dac_id": dac_id}
        atomic_write_text(self.path, json.dumps(self._devices, indent=2, sort_keys=True) + "\n")

    def key_for(self, device_id: str) -> bytes | None:
        d = self._devices.get(device_id)
        return bytes.fromhex(d["key_hex"]) if d else None

    def dac_for(self, device_id: str) -> str | None:
        d = self._devices.get(device_id)
        return d.get("dac_id") if d else None

    def ids(self) -> list[str]:
        return sorted(self._devices)

    def __len__(self) -> int:
        return len(self._devices)


_INT8 = [str(v - 256 if v > 127 else v) for v in range(256)]  # byte -> its int8 value as text


def esp_csi_line(c: Csi) -> str:
    """One verified frame as an esp-csi `CSI_DATA` line (64 subcarriers, FFT order)."""
    raw = fft_entry_bytes(c)
    data = ",".join([_INT8[b] for b in raw])
    return (
        f"CSI_DATA,{c.seq},{c.device_id},{c.rssi},11,1,0,0,1,0,0,0,0,0,{c.noise_floor},0,{c.channel},0,"
        f'{c.timestamp_us},0,0,0,{len(raw)},{raw[0] if raw else 0},"[{data}]"'
    )


class CaptureStore:
    """Rolling per-device capture files: `<root>/<device>/<YYYYMMDD-HH>.csv` (UTC hour of
    arrival), esp-csi lines with a header, appended as frames arrive."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.time):
        self.root = Path(root)
        self.clock = clock  # arrival time (UTC epoch seconds): which hourly file a frame goes to
        self._open: dict[str, tuple[str, object]] = {}

    def append(self, c: Csi) -> Path:
        from iv_pipelines.sensing.formats import ESP_CSI_HEADER

        hour = time.strftime("%Y%m%d-%H", time.gmtime(self.clock()))
        path = self.root / c.device_id / f"{hour}.csv"
        cur = self._open.get(c.device_id)
        if cur is None or cur[0] != str(path):
            if cur is not None:
                cur[1].close()
            path.parent.mkdir(parents=True, exist_ok=True)
            new = not path.exists()
            fh = open(path, "a", buffering=1 << 16)  # noqa: SIM115 (kept open while the hour lasts)
            if new:
                fh.write(ESP_CSI_HEADER + "\n")
            self._open[c.device_id] = (str(path), fh)
        self._open[c.device_id][1].write(esp_csi_line(c) + "\n")
        return path

    def flush(self) -> None:
        for _, fh in self._open.values():
            fh.flush()

    def close(self) -> None:
        for _, fh in self._open.values():
            fh.close()
        self._open.clear()


class IngestService:
    """Verify, de-duplicate and queue frames; `drain` stores and forwards them."""

    def __init__(
        self,
        keys: DeviceKeys | Callable[[str], bytes | None],
        store: CaptureStore | None = None,
        forward: Callable[[Csi], None] | None = None,
        queue_size: int = 10_000,
    ):
        self.key_for = keys.key_for if isinstance(keys, DeviceKeys) else keys
        self.store = store
        self.forward = forward
        self.queue: collections.deque[Csi] = collections.deque()
        self.queue_size = queue_size
        self.counters = Counters()
        self.devices: dict[str, DeviceState] = {}
        self.max_queued = 0

    def handle(self, datagram: bytes) -> str:
        """One datagram -> the counter it went to."""
        self.counters.received += 1
        try:
            c = decode(datagram, self.key_for)
        except FrameError as e:
            return self._count(e.kind)
        st = self.devices.get(c.device_id)
        now = time.monotonic()
        if st is None:
            st = self.devices[c.device_id] = DeviceState(c.device_id, (c.seq - 1) & 0xFFFFFFFF)
        d = seq_delta(st.last_seq, c.seq)
        if d == 0:
            st.duplicates += 1
            return self._count("duplicate")
        if d < 0:  # late, reordered or replayed: the stream moved on
            st.late += 1
            return self._count("late")
        if len(self.queue) >= self.queue_size:
            return self._count("queue_full")  # the sequence is not advanced: a resend may still land
        st.gaps += d - 1
        st.last_seq = c.seq
        st.frames += 1
        st.rssi_sum += c.rssi
        st.last_rx = now
        st.recent.append(now)
        self.queue.append(c)
        self.max_queued = max(self.max_queued, len(self.queue))
        return self._count("accepted")

    def _count(self, kind: str) -> str:
        setattr(self.counters, kind, getattr(self.counters, kind) + 1)
        return kind

    def drain(self, limit: int | None = None) -> int:
        """Store and forward queued frames (all, or up to `limit`); returns how many."""
        n = 0
        while self.queue and (limit is None or n < limit):
            c = self.queue.popleft()
            if self.store is not None:
                self.store.append(c)
            if self.forward is not None:
                self.forward(c)
            n += 1
        return n

    def stats(self) -> dict:
        return {
            "counters": self.counters.to_dict(),
            "queued": len(self.queue),
            "devices": {d: s.summary() for d, s in sorted(self.devices.items())},
        }


class UdpIngest(asyncio.DatagramProtocol):
    """One frame per datagram, handled inline (handle() is bounded work); a drain task empties
    the queue in the background."""

    def __init__(self, service: IngestService):
        self.service = service

    def datagram_received(self, data: bytes, addr) -> None:
        self.service.handle(data)


async def serve_udp(service: IngestService, host: str = "127.0.0.1", port: int = 5566):
    """Start the UDP endpoint and the drain loop; returns (transport, drain task)."""
    import socket

    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # a large receive buffer rides out pauses of the loop (the kernel caps it at rmem_max)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER_BYTES)
    sock.bind((host, port))
    transport, _ = await loop.create_datagram_endpoint(lambda: UdpIngest(service), sock=sock)

    async def drain_forever():
        while True:
            if not service.drain(limit=2_000):
                await asyncio.sleep(0.005)
            else:
                await asyncio.sleep(0)

    return transport, asyncio.create_task(drain_forever())
