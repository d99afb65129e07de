"""What one request may cost a capsule, and how many may wait for the model.

A request's cost grows with the frames it carries (parsing, resampling) and the windows it
makes (features, model); a capsule that accepts whatever the contract's ceilings allow can be
made to spend minutes and gigabytes on one request (issue #14, R4: 0.58 MB of frames with
`hop_s: 0.1` took 14.9 s and 380 MiB). The package measures both costs when it is built
(`packaging.build.probe`) and `limits_for` turns them into per-request limits so that the
most expensive accepted request costs at most WORST_OVER_ORDINARY times an ordinary one (2 s of
CSI at 100 Hz: 200 frames, one window), and its working memory stays within a share of the
package's memory limit. Beyond a limit the capsule answers 413 naming it; beyond the queue,
429 with `Retry-After`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass

import numpy as np

WORST_OVER_ORDINARY = 20.0  # issue #14's goal for the costliest accepted request
ORDINARY_FRAMES, ORDINARY_WINDOWS = 200, 1
WINDOW_BYTES = 1 << 20  # working memory per window, generous (features, resampling, the model)
FRAME_BYTES = 4 << 10  # per parsed frame (text, complex CSI, times)


class LimitExceeded(ValueError):
    """The request is larger than this capsule takes (HTTP 413); the message names the limit."""


class Overloaded(RuntimeError):
    """Too many requests are waiting for the model (HTTP 429)."""


@dataclass(frozen=True)
class RequestLimits:
    max_frames: int = 4_000  # per request (and per stream chunk)
    max_windows: int = 40  # per request
    max_stream_buffer_frames: int = 4_000  # frames a stream keeps between windows
    concurrency: int = 1  # inferences at once
    queue_depth: int = 4  # requests waiting for an inference slot

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> RequestLimits:
        if not d:
            return cls()
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def limits_for(
    frame_seconds: float, window_seconds: float, peak_rss_mib: float, memory_limit_mib: float
) -> RequestLimits:
    """Per-request limits from a package's measured costs: seconds per parsed frame and per
    window (features + model), its peak memory and its memory limit. Half of the extra budget
    (WORST_OVER_ORDINARY - 1 ordinary requests) goes to frames, half to windows; the memory of
    a maximal request stays within half the headroom between peak RSS and the limit."""
    ordinary = ORDINARY_FRAMES * frame_seconds + ORDINARY_WINDOWS * window_seconds
    extra = (WORST_OVER_ORDINARY - 1.0) * ordinary / 2
    headroom = max(memory_limit_mib - peak_rss_mib, 16.0) * (1 << 20) / 2
    frames = min(extra / max(frame_seconds, 1e-7), headroom / 2 / FRAME_BYTES)
    windows = min(extra / max(window_seconds, 1e-7), headroom / 2 / WINDOW_BYTES)
    frames = int(np.clip(frames, ORDINARY_FRAMES * 5, 60_000))
    windows = int(np.clip(windows, 4, 600))
    return RequestLimits(max_frames=frames, max_windows=windows, max_stream_buffer_frames=frames)


def expected_windows(t_s: np.ndarray, hop_s: float, max_gap_s: float) -> int:
    """How many windows `predictor.windows` would make of these packet times (from the times
    alone, before any feature is computed)."""
    from iv_pipelines.sensing.features import stretches, window_starts

    t = np.asarray(t_s, dtype=np.float64)
    if len(t) < 2:
        return 0
    return sum(len(window_starts(t[seg], hop_s)[0]) for seg in stretches(t, max_gap_s) if len(seg) > 1)


class InferenceGate:
    """At most `concurrency` inferences at once (they run off the event loop) and at most
    `queue_depth` requests waiting for one; a request beyond that is refused at once
    (`Overloaded`) instead of piling up memory and latency."""

    def __init__(self, concurrency: int, queue_depth: int):
        self.concurrency, self.queue_depth = max(1, concurrency), max(0, queue_depth)
        self._sem: asyncio.Semaphore | None = None
        self.inside = 0  # running + waiting

    @contextlib.asynccontextmanager
    async def slot(self):
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        if self.inside >= self.concurrency + self.queue_depth:
            raise Overloaded(
                f"{self.inside} requests are already running or waiting for the model "
                f"(at most {self.concurrency} + {self.queue_depth} queued); retry shortly"
            )
        self.inside += 1
        try:
            async with self._sem:
                yield
        finally:
            self.inside -= 1
