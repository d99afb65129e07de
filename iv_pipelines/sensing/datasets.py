"""Twin datasets for the sensing models: feature windows, labels and device contexts.

Every simulated room has one device (drawn from a `DevicePrior`, or a fitted one), and that
device's context comes from calibration captures simulated in the same room the way a client
would record them (4 s empty, 6 s walking, 4 s sitting down; shorter than a client's
20 s, to keep pretraining fast). A share of the windows are
shorter than 2 s (1.0-2.0 s crops holding the fall or the sitting down), as the capsule sees
short captures.
"""

from __future__ import annotations

import numpy as np

from iv_pipelines.sensing.context import CTX_DIM, context_vector
from iv_pipelines.sensing.device import DEFAULT_PRIOR, Device, DevicePrior
from iv_pipelines.sensing.features import (
    MIN_WINDOW_S,
    WINDOW_S,
    clean_packets,
    packet_features,
    window_at,
    windows_from_capture,
)
from iv_pipelines.sensing.twin import (
    ACTIVITIES,
    CALIBRATION_VARIANT,
    RESIDENTS,
    Episode,
    Resident,
    Room,
    room_device,
    simulate_dataset,
    simulate_episode,
    stable_seed,
)

EPISODE_S = 2.2  # one 2 s window per episode, with margin for jitter
CALIBRATION_S = {"empty": 4.0, "walk": 6.0, "sit": 4.0}  # simulated calibration per home
SHORT_SHARE = 0.25


def episode_window(
    e: Episode, rng: np.random.Generator | None = None, short_share: float = 0.0
) -> np.ndarray:
    """The episode's 2 s window, or (with probability `short_share`) a 1.0-2.0 s crop that
    keeps the episode's event (the fall's fastest moment) at least 0.15 s inside."""
    csi, t_s = clean_packets(e.csi, e.t_s)
    amp, ph = packet_features(csi)
    t0, t1 = float(t_s[0]), float(t_s[-1])
    if rng is None or rng.random() >= short_share:
        return window_at(amp, ph, t_s, t0, WINDOW_S)
    length = float(rng.uniform(MIN_WINDOW_S, WINDOW_S))
    lo, hi = t0, t1 - length
    if e.event_s is not None:
        lo, hi = max(lo, e.event_s - length + 0.15), min(hi, e.event_s - 0.15)
    start = (
        float(rng.uniform(lo, hi)) if hi > lo else max(t0, min(t1 - length, (e.event_s or t0) - length / 2))
    )
    return window_at(amp, ph, t_s, start, length)


def simulated_context(room: Room, dev: Device, resident: Resident, seed: int) -> np.ndarray:
    """The context a client with this room and device would get from calibration captures."""
    wins = {}
    for i, (act, dur) in enumerate(CALIBRATION_S.items()):
        ep = simulate_episode(
            room,
            act,
            seed=stable_seed(2, seed, i),
            duration_s=dur,
            device=dev,
            resident=resident,
            variant=CALIBRATION_VARIANT.get(act),
        )
        wins[act] = windows_from_capture(ep.csi, ep.t_s, hop_s=1.0)
    return context_vector(wins)


def _windows_chunk(args) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rooms, per_activity, seed, resident, first, prior, devices, contexts, short_share = args
    devs = devices or [room_device(seed, first + i, prior) for i in range(len(rooms))]
    eps = simulate_dataset(
        rooms,
        per_activity,
        seed,
        duration_s=EPISODE_S,
        resident=resident,
        first_room_index=first,
        devices=devs,
    )
    # each episode's crop is drawn from its own seed: the same whatever the chunking
    x = np.stack([episode_window(e, np.random.default_rng([e.seed, 7]), short_share) for e in eps])
    y = np.array([ACTIVITIES.index(e.activity) for e in eps])
    per_room = len(ACTIVITIES) * per_activity
    if isinstance(contexts, np.ndarray):
        ctx = np.broadcast_to(contexts.astype(np.float32), (len(x), CTX_DIM)).copy()
    elif contexts == "simulate":
        rows = [
            simulated_context(r, d, resident, seed + first + i)
            for i, (r, d) in enumerate(zip(rooms, devs, strict=True))
        ]
        ctx = np.repeat(np.stack(rows), per_room, axis=0)
    else:
        ctx = np.zeros((len(x), CTX_DIM), np.float32)
    return x, y, ctx


def windows_dataset(
    rooms: list[Room],
    per_activity: int,
    seed: int,
    resident: Resident = RESIDENTS["adult"],
    workers: int = 1,
    prior: DevicePrior = DEFAULT_PRIOR,
    devices: list[Device] | None = None,
    contexts: str | np.ndarray | None = "simulate",
    short_share: float = SHORT_SHARE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature windows, labels and contexts, simulated in `workers` processes (rooms split into
    contiguous chunks numbered from their index, so the result does not depend on `workers`).
    `contexts`: "simulate" (each room's simulated calibration), one fixed context for all
    windows, or None (zeros)."""
    workers = max(1, min(workers, len(rooms)))
    bounds = np.linspace(0, len(rooms), workers + 1).astype(int)
    jobs = [
        (
            rooms[a:b],
            per_activity,
            seed,
            resident,
            int(a),
            prior,
            devices[a:b] if devices else None,
            contexts,
            short_share,
        )
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    if workers == 1:
        parts = [_windows_chunk(jobs[0])]
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # spawn: the parent may hold torch threads, which must never be forked
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
            parts = list(ex.map(_windows_chunk, jobs))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]
