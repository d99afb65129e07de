"""Edge ingest throughput: 50 simulated devices (synthetic int8 CSI in real, HMAC-signed
frames) sent over loopback UDP, received (a) by a bare asyncio UDP socket that only counts
datagrams — the baseline, in the same run — and (b) by the ingest service (parse, HMAC,
sequence state, bounded queue, capture store on disk).

Two loads: the issue's (50 devices x 100 Hz = 5,000 frames/s offered for 4 s), where the
goals apply (>= 5,000 frames/s sustained and >= 0.8x what the bare socket receives in the
same run), and a blast as fast as one sender process can go, which shows the ceiling.

    .venv/bin/python bench/ingest.py
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEVICES, RATE_HZ, SECONDS = 50, 100, 4.0
KEY = b"bench-device-key-0123456789abcdef"


def datagrams(n_per_device: int) -> list[bytes]:
    from iv_pipelines.edge import csi_data_pb2 as pb
    from iv_pipelines.edge.frames import encode

    rng = np.random.default_rng(0)
    out = []
    for i in range(n_per_device):
        for d in range(DEVICES):
            raw = rng.integers(-40, 40, 128, dtype=np.int8).tobytes()
            msg = pb.CSIData(
                device_id=f"dev-{d:02d}",
                seq=i,
                timestamp_us=i * 10_000,
                layout=pb.HT20_LLTF_FFT,
                csi=raw,
                rssi=-50,
            )
            out.append(encode(msg, KEY))
    return out


def sender(port: int, frames: list[bytes], rate: float | None, ready) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ready.wait()
    t0 = time.perf_counter()
    for i, f in enumerate(frames):
        s.sendto(f, ("127.0.0.1", port))
        if rate and i % 50 == 49:
            ahead = t0 + (i + 1) / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
    s.close()


async def receive(kind: str, frames: list[bytes], rate: float | None) -> tuple[int, float]:
    """(datagrams received and processed, seconds from first to last)."""
    from iv_pipelines.edge.ingest import CaptureStore, IngestService, UdpIngest

    loop = asyncio.get_running_loop()
    times: list[float] = []
    tmp = tempfile.TemporaryDirectory()
    keys = {f"dev-{d:02d}": KEY for d in range(DEVICES)}
    svc = IngestService(keys.get, store=CaptureStore(Path(tmp.name)), queue_size=100_000)

    class Bare(asyncio.DatagramProtocol):
        n = 0

        def datagram_received(self, data, addr):
            Bare.n += 1
            times.append(time.perf_counter())

    class Timed(UdpIngest):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            times.append(time.perf_counter())

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    proto = Bare if kind == "bare" else (lambda: Timed(svc))
    transport, _ = await loop.create_datagram_endpoint(proto, sock=sock)
    ready = mp.Event()
    p = mp.Process(target=sender, args=(sock.getsockname()[1], frames, rate, ready))
    p.start()
    ready.set()
    last = -1
    while True:  # until the sender is done and nothing arrived for 0.3 s
        await asyncio.sleep(0.3)
        if kind != "bare":
            svc.drain()
        if not p.is_alive() and len(times) == last:
            break
        last = len(times)
    p.join()
    transport.close()
    svc.drain()
    svc.store.close()
    tmp.cleanup()
    n = Bare.n if kind == "bare" else svc.counters.accepted
    return n, (times[-1] - times[0]) if len(times) > 1 else float("nan")


def main() -> int:
    n_per_device = int(RATE_HZ * SECONDS)
    frames = datagrams(n_per_device)
    print(
        f"{len(frames)} frames ({DEVICES} devices x {n_per_device}), {len(frames[0])} bytes each (synthetic CSI, real frames)"
    )
    res = {}
    for load, rate in (("offered 5,000/s", DEVICES * RATE_HZ), ("blast", None)):
        for kind in ("bare", "ingest"):
            n, dt = asyncio.run(receive(kind, frames, rate))
            res[(load, kind)] = (n, n / dt)
            print(f"{load:>16} | {kind:>6}: {n} of {len(frames)} received, {n / dt:,.0f} frames/s")
    n_o, r_o = res[("offered 5,000/s", "ingest")]
    _, r_ob = res[("offered 5,000/s", "bare")]
    _, r_b = res[("blast", "bare")]
    n_i, r_i = res[("blast", "ingest")]
    ratio = r_o / r_ob
    print(
        f"goal (issue #16: 50 devices x 100 Hz): ingest sustains {r_o:,.0f} frames/s ({n_o / len(frames):.1%} accepted) "
        f"vs the bare socket's {r_ob:,.0f} in the same run, ratio {ratio:.2f}x | >= 5,000 frames/s: "
        f"{'met' if r_o >= 5000 else 'NOT met'}, >= 0.8x: {'met' if ratio >= 0.8 else 'NOT met'}"
    )
    print(
        f"ceiling (one sender blasting): ingest {r_i:,.0f} frames/s with {n_i / len(frames):.0%} of frames accepted, "
        f"bare {r_b:,.0f}, ratio {r_i / r_b:.2f}x (Python per frame: protobuf x2, HMAC, sequence, capture line)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
