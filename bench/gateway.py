"""Gateway streams: detections fanned out to 100 concurrent WebSocket clients on loopback,
next to the rate at which a DAC capsule's own `/v1/stream` produces detections in the same run
(the baseline: the gateway only has to keep up with what capsules emit), and the p99 latency
from a detection's publication to its arrival at a client.

Detections are published by the bench (the edge stream's producer side); the capsule is the
small test DAC, fed with 60 s of twin CSI (SIMULATED) as fast as it answers.

    .venv/bin/python bench/gateway.py
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CLIENTS, MESSAGES, RATE_HZ = 100, 200, 50.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(app) -> tuple[str, object]:
    import uvicorn

    port = _port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"127.0.0.1:{port}", server


async def capsule_rate(tmp: Path) -> tuple[float, int]:
    """Detections per second the capsule's /v1/stream emits for 60 s of twin CSI."""
    import websockets

    from iv_app.sample import make_small_dac
    from iv_pipelines.packaging.dac import build_dac_package
    from iv_pipelines.proof.dsse import load_or_create_signing_key
    from iv_pipelines.runtime.app import create_app
    from iv_pipelines.sensing.formats import write_esp_csi_lines
    from iv_pipelines.sensing.pipeline import random_rooms
    from iv_pipelines.sensing.twin import simulate_dataset

    root = tmp / "iv"
    root.mkdir()
    key = load_or_create_signing_key(tmp / "keys")
    make_small_dac(root, key)
    energy = {"E_state": 1.0, "dE_dt": 1.0, "S_state": 0.5, "method": "bench"}
    pkg, _, _ = build_dac_package(root, "fall-detection-acme", key, key.public, energy, "bench", [])
    addr, server = _serve(create_app(pkg.directory))
    eps = simulate_dataset(random_rooms(1, 0), 4, 0, duration_s=4.0)[:15]  # 60 s
    csi = np.concatenate([e.csi for e in eps])
    t = np.concatenate([e.t_s - e.t_s[0] + 4.01 * i for i, e in enumerate(eps)])
    lines = write_esp_csi_lines(csi, t)[1:]
    chunks = ["\n".join(lines[i : i + 100]) for i in range(0, len(lines), 100)]
    for _ in range(100):  # the model loads in the background
        try:
            async with websockets.connect(f"ws://{addr}/v1/stream") as ws:
                await ws.send(chunks[0])
                first = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if "error" not in first or first.get("error") is None:
                    break
        except Exception:  # noqa: BLE001
            pass
        await asyncio.sleep(0.2)
    n, t0 = 0, time.perf_counter()
    async with websockets.connect(f"ws://{addr}/v1/stream") as ws:

        async def send():
            for c in chunks:
                await ws.send(c)

        sender = asyncio.create_task(send())
        expected = int(t[-1] - t[0]) - 1
        while n < expected:
            try:
                json.loads(await asyncio.wait_for(ws.recv(), 10))
                n += 1
            except TimeoutError:
                break
        await sender
    server.should_exit = True
    return n / (time.perf_counter() - t0), n


async def gateway_fanout(tmp: Path) -> tuple[float, list[float], int]:
    """(messages/s delivered in total, latencies in ms, messages received) for CLIENTS sockets."""
    import httpx
    import websockets

    from iv_pipelines.edge.forward import DetectionStream, DeviceDetection
    from iv_pipelines.gateway.app import create_gateway_app
    from iv_pipelines.gateway.keys import ApiKeys
    from iv_pipelines.storage import StorageLayout

    layout = StorageLayout(tmp / "gw")
    layout.dac_dir("dac-1")
    layout.dac_request_file("dac-1").write_text(json.dumps({"dac_id": "dac-1", "client_id": "c1"}))
    _, key = ApiKeys(layout.root / "gateway").create("c1")
    stream = DetectionStream()
    addr, server = _serve(create_gateway_app(layout.root, detections=stream))
    async with httpx.AsyncClient() as http:
        tokens = [
            (
                await http.post(f"http://{addr}/v1/stream-token", headers={"Authorization": f"Bearer {key}"})
            ).json()["token"]
            for _ in range(CLIENTS)
        ]
    lat: list[float] = []
    got = 0

    async def client(tok):
        nonlocal got
        async with websockets.connect(f"ws://{addr}/v1/streams/detections?token={tok}", max_queue=None) as ws:
            for _ in range(MESSAGES):
                m = json.loads(await asyncio.wait_for(ws.recv(), 30))
                lat.append(time.time() * 1000 - m["timestamp_us"] / 1000)
                got += 1

    tasks = [asyncio.create_task(client(tok)) for tok in tokens]
    await asyncio.sleep(1.0)  # every socket open and subscribed

    def publish():
        for i in range(MESSAGES):
            stream.publish(
                DeviceDetection(
                    "esp",
                    "dac-1",
                    i,
                    int(time.time() * 1e6),
                    "walk",
                    0.8,
                    {"walk": 0.8},
                    "1",
                    "simulation_only",
                )
            )
            time.sleep(1 / RATE_HZ)

    t0 = time.perf_counter()
    await asyncio.to_thread(publish)
    await asyncio.gather(*tasks, return_exceptions=True)
    dt = time.perf_counter() - t0
    server.should_exit = True
    return got / dt, lat, got


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        cap_rate, n_cap = asyncio.run(capsule_rate(Path(tmp)))
        rate, lat, got = asyncio.run(gateway_fanout(Path(tmp)))
    p50, p99 = np.percentile(lat, [50, 99]) if lat else (float("nan"), float("nan"))
    print(
        f"capsule /v1/stream: {n_cap} detections at {cap_rate:,.0f} detections/s (60 s of SIMULATED CSI, as fast as it answers)"
    )
    print(
        f"gateway: {got} of {CLIENTS * MESSAGES} messages to {CLIENTS} WebSocket clients, {rate:,.0f} messages/s in total "
        f"({rate / CLIENTS:,.0f}/s per client at {RATE_HZ:.0f} published/s); publication -> arrival p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )
    print(
        f"ratio: the gateway delivers {rate / CLIENTS / cap_rate:.1f}x one capsule's detection rate to each of {CLIENTS} clients"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
