"""Simulated devices: Shadow Twin CSI as the firmware would send it (CSIData in an
HMAC-signed Frame, one per UDP datagram), so the edge path runs end to end without a radio.

Simulated evidence: these frames come from the twin, never from a real ESP32.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import numpy as np

from iv_pipelines.edge import csi_data_pb2 as pb
from iv_pipelines.edge.frames import encode


def episode_frames(
    device_id: str, key: bytes, csi: np.ndarray, t_s: np.ndarray, first_seq: int = 0, rate_hz: int = 100
) -> Iterator[bytes]:
    """One datagram per packet of a twin episode: `csi` (T, 64) complex centred, `t_s` (T,)."""
    from iv_pipelines.sensing.formats import centred_to_entries

    raw = centred_to_entries(np.asarray(csi))  # int8 (imag, real) pairs, FFT order: the ESP32 buffer
    for i in range(len(raw)):
        msg = pb.CSIData(
            device_id=device_id,
            seq=(first_seq + i) & 0xFFFFFFFF,
            timestamp_us=int(round(float(t_s[i]) * 1e6)),
            layout=pb.HT20_LLTF_FFT,
            csi=raw[i].tobytes(),
            rssi=-55,
            noise_floor=-92,
            channel=6,
            rate_hz=rate_hz,
        )
        yield encode(msg, key)


def twin_stream(
    device_id: str, key: bytes, seconds: float, seed: int = 0, activity: str = "walk"
) -> list[bytes]:
    """`seconds` of one simulated room and resident doing `activity`, as datagrams."""
    from iv_pipelines.sensing.pipeline import random_rooms
    from iv_pipelines.sensing.twin import simulate_dataset

    room = random_rooms(1, seed)[0]
    out, seq = [], 0
    k = 0
    while len(out) < seconds * 100:
        eps = [
            e
            for e in simulate_dataset([room], 1, seed + k, duration_s=min(10.0, seconds))
            if e.activity == activity
        ]
        for e in eps:
            out += list(episode_frames(device_id, key, e.csi, e.t_s + len(out) / 100, first_seq=seq))
            seq += len(e.csi)
        k += 1
    return out[: int(seconds * 100)]


async def send_udp(streams: dict[str, list[bytes]], host: str, port: int, rate_hz: float = 100.0) -> int:
    """Send each device's datagrams at `rate_hz` (all devices interleaved); returns how many."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    n, start = 0, time.perf_counter()
    longest = max((len(s) for s in streams.values()), default=0)
    try:
        for i in range(longest):
            for frames in streams.values():
                if i < len(frames):
                    sock.sendto(frames[i], (host, port))
                    n += 1
            delay = start + (i + 1) / rate_hz - time.perf_counter()
            await asyncio.sleep(max(0.0, delay))
    finally:
        sock.close()
    return n
