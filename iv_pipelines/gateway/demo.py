"""The live demo behind `iv gateway serve --demo`: a person opens /demo and watches a fall
being detected, through the same path a real device's CSI takes.

SIMULATED: a Shadow Twin of the client's room (its geometry and resident, from the stored
request) plays a scripted scene — empty room, walking, a fall, lying still, sitting — as a
registered demo device would: HMAC-signed protobuf frames over loopback UDP at 100 packets/s
-> the edge ingest service (verify, de-duplicate, store) -> 2 s windows to the DAC's running
capsule -> detections on the stream the gateway relays. Nothing in it is a real radio.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import urllib.request
from dataclasses import dataclass, field

import numpy as np

from iv_pipelines.storage import StorageLayout

DEMO_DEVICE = "demo-sensor-1"
# (activity, seconds): a fall early, so a visitor sees one within the first half minute
SCENE = (("empty", 4.0), ("walk", 6.0), ("fall", 4.0), ("empty", 4.0), ("sit", 4.0), ("walk", 4.0))
log = logging.getLogger("iv.gateway.demo")


@dataclass
class Scene:
    """The scene's twin episodes, each (activity, csi (T, 64) complex, t_s (T,) from 0)."""

    episodes: list[tuple[str, np.ndarray, np.ndarray]]
    loops: int = 0
    sent: int = 0
    # what was played: (start s, end s, activity) in device time
    schedule: list[tuple[float, float, str]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return float(sum(t[-1] - t[0] + 0.01 for _, _, t in self.episodes))


def build_scene(
    layout: StorageLayout, dac_id: str, seed: int = 0, scene=SCENE, fitted_device: bool = True
) -> Scene:
    """Twin episodes of the DAC's own room and resident, one per step of `scene`, each simulated
    at its step's length, on the device the DAC's calibration fitted (`fitted_device=False`:
    the twin's default device for the room, a device the DAC was not calibrated for)."""
    from iv_pipelines.intake import RequestStore
    from iv_pipelines.request import DacRequest
    from iv_pipelines.sensing.pipeline import client_resident, client_room
    from iv_pipelines.sensing.twin import simulate_dataset

    saved = layout.dac_request(dac_id)  # what the lifecycle trained on, else the stored request
    req = DacRequest.model_validate(saved) if saved else RequestStore(layout.root).get(dac_id)
    # the client's device as the DAC's calibration fitted it (the twin's default device for
    # the room otherwise): the device the DAC was trained and evaluated for, as in its smoke test
    import json

    from iv_pipelines.sensing.calibration import resident_at
    from iv_pipelines.sensing.device import Device

    cal_path = layout.dac_dir(dac_id, create=False) / "twin" / "calibration.json"
    fit = (json.loads(cal_path.read_text()) if cal_path.is_file() and fitted_device else {}).get("fit")
    device = [Device.from_dict(fit["device"])] if fit else None
    resident = resident_at(client_resident(req), (fit or {}).get("walk_speed_ms"))
    # each step is a whole twin episode of its own length (a cut episode could lose its event:
    # a fall late in a longer episode would be cut off its "fall" step)
    by_length: dict[float, dict[str, list]] = {}
    for k, seconds in enumerate(sorted({s for _, s in scene})):
        eps = simulate_dataset(
            [client_room(req)], 2, seed + 1000 * k, duration_s=seconds, resident=resident, devices=device
        )
        for e in eps:
            by_length.setdefault(seconds, {}).setdefault(e.activity, []).append(e)
    out = []
    for i, (activity, seconds) in enumerate(scene):
        pool = by_length.get(seconds, {}).get(activity)
        if not pool:
            raise ValueError(f"the twin produced no {activity!r} episode for {dac_id}")
        e = pool[i % len(pool)]
        out.append((activity, np.asarray(e.csi), e.t_s - e.t_s[0]))
    return Scene(out)


def demo_device_key(layout: StorageLayout, dac_id: str, device_id: str = DEMO_DEVICE) -> bytes:
    """The demo device's key, registered for `dac_id` on first use (so feedback on its alerts
    is accepted and stored with its CSI like any device's)."""
    from iv_pipelines.edge.ingest import DeviceKeys

    keys = DeviceKeys(layout.edge_devices_file())
    key = keys.key_for(device_id)
    if key is None or keys.dac_for(device_id) != dac_id:
        key = key or secrets.token_bytes(32)
        keys.add(device_id, key, dac_id)
    return key


def capsule_url(layout: StorageLayout, dac_id: str) -> str | None:
    """The DAC's deployed capsule if it answers /readyz, else None."""
    dep = layout.deployment(dac_id) or {}
    url = dep.get("url")
    if not url:
        return None
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=3) as r:
            return url if r.status == 200 else None
    except OSError:
        return None


async def play(
    layout: StorageLayout,
    dac_id: str,
    url: str,
    stream,
    scene: Scene,
    rate_hz: float = 100.0,
    loops: int | None = None,
    device_id: str = DEMO_DEVICE,
) -> Scene:
    """Play `scene` (forever, or `loops` times) through a loopback ingest service into the
    capsule at `url`; detections go to `stream` (a DetectionStream)."""
    from iv_pipelines.edge.forward import CapsuleForwarder
    from iv_pipelines.edge.ingest import CaptureStore, IngestService, serve_udp
    from iv_pipelines.edge.simulate import episode_frames, send_udp

    key = demo_device_key(layout, dac_id, device_id)
    fwd = CapsuleForwarder(lambda d: (url, dac_id) if d == device_id else None, stream)
    svc = IngestService({device_id: key}.get, store=CaptureStore(layout.edge_captures_dir()), forward=fwd)
    transport, drain = await serve_udp(svc, "127.0.0.1", 0)
    port = transport.get_extra_info("sockname")[1]
    # device time continues from the newest stored frame: the capture store is append-only
    t0 = _last_stored_s(layout, device_id)
    seq = 0
    try:
        while loops is None or scene.loops < loops:
            frames = []
            for activity, csi, t in scene.episodes:
                scene.schedule.append((t0, t0 + float(t[-1]), activity))
                frames += list(episode_frames(device_id, key, csi, t + t0, first_seq=seq))
                t0 += float(t[-1]) + 0.01
                seq += len(csi)
            scene.sent += await send_udp({device_id: frames}, "127.0.0.1", port, rate_hz=rate_hz)
            scene.loops += 1
            log.info("demo scene %d played (%d frames, %s)", scene.loops, len(frames), svc.stats())
        for _ in range(200):  # let the last windows reach the capsule
            if not svc.queue:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.0)
    finally:
        transport.close()
        drain.cancel()
        fwd.close()
        svc.store.close()
    return scene


def window_truth(schedule: list[tuple[float, float, str]], end_us: int, window_s: float = 2.0) -> str | None:
    """What the scene played during the window ending at `end_us` (device time), or None when
    the window spans two steps of the scene (a transition has no single truth)."""
    lo, hi = end_us / 1e6 - window_s, end_us / 1e6
    for start, end, activity in schedule:
        if start - 0.02 <= lo and hi <= end + 0.02:
            return activity
    return None


def scene_confusion(schedule, detections) -> dict[str, dict[str, int]]:
    """{truth: {label: count}} over detections whose window lies inside one step of the scene."""
    out: dict[str, dict[str, int]] = {}
    for d in detections:
        truth = window_truth(schedule, d.timestamp_us)
        if truth is not None:
            row = out.setdefault(truth, {})
            row[d.label] = row.get(d.label, 0) + 1
    return out


def _last_stored_s(layout: StorageLayout, device_id: str) -> float:
    from iv_pipelines.edge.captures import newest_timestamp_us

    us = newest_timestamp_us(layout.edge_captures_dir(), device_id)
    return 0.0 if us is None else us / 1e6 + 1.0
