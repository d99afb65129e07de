"""From verified frames to detections: per-device windows posted to the DAC capsule deployed
for that device, and a stream of detections other services subscribe to.

`CapsuleForwarder` keeps the last `window_s` of each device's frames; every `hop_s` of device
time it posts them to the device's capsule (`POST /v1/predict`, `frames` in FFT layout, the
contract every capsule serves) and publishes the newest window's decision on a
`DetectionStream`. Posting runs on a small thread pool so the ingest loop never waits on
HTTP; when the pool is busy a window is skipped and counted (`skipped_busy`), never queued
without bound.
"""

from __future__ import annotations

import collections
import json
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from iv_pipelines.edge.frames import Csi, fft_entries


@dataclass(frozen=True)
class DeviceDetection:
    device_id: str
    dac_id: str | None
    seq: int  # the newest frame of the window
    timestamp_us: int
    label: str
    confidence: float
    probabilities: dict[str, float]
    model_version: str
    validated_on: str  # what the capsule's accuracy rests on (simulation_only / client_device / ...)
    window_id: str | None = None  # in the capsule's inference log: feedback names the window with it

    def to_dict(self) -> dict:
        return asdict(self)


class DetectionStream:
    """In-process publish/subscribe: each subscriber gets a bounded queue; a slow subscriber
    loses its oldest detections (counted), never blocks the publisher."""

    def __init__(self):
        self._subs: list[queue.Queue] = []
        self._lock = threading.Lock()
        self.published = 0
        self.dropped = 0

    def subscribe(self, maxsize: int = 1000) -> queue.Queue:
        q: queue.Queue = queue.Queue(maxsize)
        with self._lock:
            self._subs.append(q)
        return q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self._lock:
            if q in self._subs:
                self._subs.remove(q)

    @staticmethod
    async def iterate(sub: queue.Queue, poll_s: float = 0.02):
        """A subscription as an async iterator (for WebSocket handlers on an event loop)."""
        import asyncio

        while True:
            try:
                yield sub.get_nowait()
            except queue.Empty:
                await asyncio.sleep(poll_s)

    def publish(self, det: DeviceDetection) -> None:
        with self._lock:
            self.published += 1
            for q in self._subs:
                while True:
                    try:
                        q.put_nowait(det)
                        break
                    except queue.Full:
                        try:
                            q.get_nowait()
                            self.dropped += 1
                        except queue.Empty:
                            pass


def http_post(url: str, body: dict, timeout_s: float = 5.0) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:  # noqa: S310 (a configured capsule URL)
            return json.loads(r.read())
    except urllib.error.HTTPError as e:  # keep what the capsule said was wrong
        raise RuntimeError(f"{url}: HTTP {e.code}: {e.read()[:500].decode(errors='replace')}") from None


class CapsuleForwarder:
    """Callable on each verified frame (the ingest service's `forward`)."""

    def __init__(
        self,
        endpoint_for: Callable[[str], tuple[str, str | None] | None],
        stream: DetectionStream,
        post: Callable[[str, dict], dict] = http_post,
        window_s: float = 2.0,
        hop_s: float = 1.0,
        workers: int = 2,
        route: Callable[[str, tuple[str, str | None]], tuple[str, str | None]] | None = None,
    ):
        self.endpoint_for = endpoint_for  # device id -> (capsule base URL, dac id) or None
        self.route = route  # per window: a canary's share goes to the candidate (deploy/canary.py)
        self.stream = stream
        self.post = post
        self.window_us = int(window_s * 1e6)
        self.hop_us = int(hop_s * 1e6)
        self._buf: dict[str, collections.deque] = {}
        self._next_us: dict[str, int] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="iv-forward")
        self._inflight = threading.Semaphore(workers * 2)
        self.sent = 0
        self.skipped_busy = 0
        self.unmapped = 0
        self.errors: collections.deque[str] = collections.deque(maxlen=20)
        self._without_device_id: set[str] = set()  # capsules packaged before requests carried it

    def __call__(self, c: Csi) -> None:
        target = self.endpoint_for(c.device_id)
        if target is None:
            self.unmapped += 1
            return
        buf = self._buf.setdefault(c.device_id, collections.deque(maxlen=4096))
        buf.append(c)
        while buf and c.timestamp_us - buf[0].timestamp_us > self.window_us:
            buf.popleft()
        nxt = self._next_us.setdefault(c.device_id, buf[0].timestamp_us + self.window_us)
        if c.timestamp_us < nxt:
            return
        self._next_us[c.device_id] = c.timestamp_us + self.hop_us
        if not self._inflight.acquire(blocking=False):
            self.skipped_busy += 1
            return
        window = list(buf)
        if self.route is not None:
            target = self.route(c.device_id, target)
        self._pool.submit(self._send, target, window)

    def _send(self, target: tuple[str, str | None], window: list[Csi]) -> None:
        url, dac_id = target
        try:
            t0 = window[0].timestamp_us
            frames = []
            for c in window:
                frames.append({"t_s": (c.timestamp_us - t0) / 1e6, "iq": fft_entries(c).tolist()})
            body = {"frames": frames, "layout": "fft", "hop_s": 1.0}
            if url not in self._without_device_id:
                body["device_id"] = window[-1].device_id
            try:
                r = self.post(url.rstrip("/") + "/v1/predict", body)
            except RuntimeError as e:
                if "HTTP 422" not in str(e) or "device_id" not in str(e) or "device_id" not in body:
                    raise
                self._without_device_id.add(url)  # an older capsule: its contract has no device_id
                del body["device_id"]
                r = self.post(url.rstrip("/") + "/v1/predict", body)
            w = r["windows"][-1]
            last = window[-1]
            self.stream.publish(
                DeviceDetection(
                    last.device_id,
                    dac_id or r.get("dac_id"),
                    last.seq,
                    last.timestamp_us,
                    w["label"],
                    float(w["confidence"]),
                    dict(zip(r["classes"], map(float, w["probabilities"]), strict=True)),
                    r.get("model_version", ""),
                    r.get("validated_on", ""),
                    w.get("window_id"),
                )
            )
            self.sent += 1
        except Exception as e:  # noqa: BLE001 (a capsule down must not stop ingest; kept for /v1/devices)
            self.errors.append(f"{window[-1].device_id}: {type(e).__name__}: {e}")
        finally:
            self._inflight.release()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
