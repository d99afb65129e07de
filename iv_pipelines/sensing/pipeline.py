"""Recipes the sensing assets call: base-model pretraining and the Shadow Twin context of a
client request (plots live here too). Per-client adaptation is in `client.py`, datasets in
`datasets.py`, real-capture evaluation in `realeval.py`.

Data hygiene: pretraining rooms, held-out evaluation rooms and the client's room are drawn
from disjoint seeds; real public captures are only ever used for evaluation (never for
training or tuning); a client's own captures follow the by-capture split of `client.py`.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iv_pipelines.request import DacRequest
from iv_pipelines.sensing.datasets import EPISODE_S, windows_dataset
from iv_pipelines.sensing.device import DEFAULT_PRIOR, DevicePrior
from iv_pipelines.sensing.features import drop_phase
from iv_pipelines.sensing.twin import RESIDENTS, Episode, Resident, Room, simulate_dataset

PRETRAIN_RESIDENT = "mixed"


def amplitude_only(x: np.ndarray) -> np.ndarray:
    return drop_phase(x.copy())


def random_rooms(n: int, seed: int) -> list[Room]:
    rng = np.random.default_rng(seed)
    return [Room.random(rng) for _ in range(n)]


def client_room(request: DacRequest) -> Room:
    """The client's room: the request's geometry, device placement seeded by the client, the
    DAC and the environment description (not by the calibration captures or the constraints:
    the room a capture was recorded in does not move when the capture is added)."""
    import json

    key = json.dumps(
        [request.client_id, request.dac_id, request.environment.model_dump(mode="json")], sort_keys=True
    )
    seed = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed)
    r = request.environment.room
    size = (r.width_m, r.depth_m, r.height_m) if r else None
    return Room.random(rng, size=size)


_ELDERLY = re.compile(r"\b(elderly|older (adults?|people|persons?)|seniors?|aged care|frail)\b", re.I)


def client_resident(request: DacRequest) -> Resident:
    """The resident profile the client's twin simulates: `elderly` when the request says so
    (text or environment), else `adult`."""
    words = f"{request.text} {request.environment.description if request.environment else ''}"
    return RESIDENTS["elderly" if _ELDERLY.search(words) else "adult"]


@dataclass
class BaseModelResult:
    model: object
    cfg: object
    metrics: dict
    losses: list[float]
    train_seconds: float
    sim_seconds: float
    n_train: int
    confusion: np.ndarray
    heldout: tuple | None = None  # (windows, labels, contexts) of the held-out homes


def pretrain_base(
    n_rooms: int = 480,
    per_activity: int = 10,
    epochs: int = 8,
    seed: int = 0,
    n_eval_rooms: int = 32,
    eval_per_activity: int = 10,
    log=lambda _m: None,
    workers: int = 1,
    eval_seed: int | None = None,
    prior: DevicePrior = DEFAULT_PRIOR,
    ctx_dropout: float = 0.3,
) -> BaseModelResult:
    """Pretrain on `n_rooms` simulated homes, each with its own device drawn from `prior` and
    its own simulated calibration context (dropped at random so uncalibrated devices are
    served too); evaluate on `n_eval_rooms` other homes, with and without their context, at the
    default decision (argmax, fall threshold 0.5)."""
    import torch

    from iv_pipelines.sensing.evaluate import (
        DEFAULT_FALL_THRESHOLD,
        classification_metrics,
        confusion,
        decide,
        decision_metrics,
    )
    from iv_pipelines.sensing.model import ModelConfig, build_model, predict_proba, train

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    resident = RESIDENTS[PRETRAIN_RESIDENT]
    x, y, ctx = windows_dataset(
        random_rooms(n_rooms, seed), per_activity, seed + 1, resident, workers=workers, prior=prior
    )
    es = seed if eval_seed is None else eval_seed  # held-out rooms: fixed when comparing models
    xe, ye, ce = windows_dataset(
        random_rooms(n_eval_rooms, es + 10_000),
        eval_per_activity,
        es + 2,
        resident,
        workers=workers,
        prior=prior,
    )
    sim_s = time.perf_counter() - t0
    log(f"simulated {len(x)} training and {len(xe)} held-out windows in {sim_s:.1f} s")
    cfg = ModelConfig()
    model = build_model(cfg)
    rep = train(model, x, y, epochs=epochs, seed=seed, log=log, ctx=ctx, ctx_dropout=ctx_dropout)
    p = predict_proba(model, xe, ctx=ce)
    p0 = predict_proba(model, xe)
    pa = predict_proba(model, amplitude_only(xe), ctx=ce)
    metrics = (
        classification_metrics(p, ye, "heldout_rooms_")
        | {
            k: v
            for k, v in decision_metrics(p, ye, DEFAULT_FALL_THRESHOLD, "heldout_rooms_decision_").items()
        }
        | classification_metrics(p0, ye, "heldout_rooms_uncalibrated_")
        | classification_metrics(pa, ye, "heldout_rooms_amp_only_")
    )
    return BaseModelResult(
        model,
        cfg,
        metrics,
        rep.losses,
        rep.seconds,
        sim_s,
        len(x),
        confusion(ye, decide(p, DEFAULT_FALL_THRESHOLD)),
        (xe, ye, ce),
    )


@dataclass
class TwinContext:
    """What the Shadow Twin says about the client's environment (lifecycle step 3)."""

    domain: str
    simulator: str  # simulator version, or "none" for domains without a twin yet
    room: Room | None
    facts: list[str]
    dataset_digest: str
    episodes: list[Episode] = field(default_factory=list)
    resident: str = "adult"
    calibration: object | None = None  # client.ClientCalibration


def twin_context(
    request: DacRequest,
    domain: str,
    episodes_per_activity: int = 2,
    seed: int = 0,
    calibrations: list | None = None,
    evaluations: list | None = None,
) -> TwinContext:
    """The client room, its resident and (with calibration captures: (Calibration, origin)
    pairs) the fitted device; the sample episodes are simulated with that device. The
    request's evaluation captures (Calibration objects) join the calibration's captures as
    `test` captures: evidence only (`client.py`)."""
    from iv_pipelines.sensing.client import calibrate_client, evaluation_captures, uncalibrated
    from iv_pipelines.sensing.twin import SIM_VERSION, static_response

    if domain != "wifi-sensing":
        return TwinContext(domain, "none", None, [], hashlib.sha256(b"").hexdigest())
    room = client_room(request)
    resident = client_resident(request)
    cal = calibrate_client(room, resident, calibrations, seed) if calibrations else uncalibrated(resident)
    calibrated = list(cal.captures)
    if evaluations:
        cal.captures = calibrated + evaluation_captures(evaluations, cal.amplitude_only)
    devices = [cal.fit.device] if cal.fit else None
    eps = simulate_dataset(
        [room], episodes_per_activity, seed, duration_s=EPISODE_S, resident=cal.resident, devices=devices
    )
    h = hashlib.sha256()
    for e in eps:
        h.update(e.activity.encode())
        h.update(e.csi.tobytes())
        h.update(e.t_s.tobytes())
    static = np.abs(static_response(room))
    fading = float(static[np.abs(np.arange(-32, 32)) <= 26].std() / static.mean())
    ap = ", ".join(f"{v:.1f}" for v in room.ap)
    esp = ", ".join(f"{v:.1f}" for v in room.esp)
    facts = [
        f"The client room measures {room.width_m:.1f} by {room.depth_m:.1f} by {room.height_m:.1f} metres with "
        f"{room.wall_material} walls and {len(room.furniture)} furniture reflectors",
        f"The access point sits at ({ap}) m and the ESP32 sensor at ({esp}) m on 2.4 GHz channel 6",
        "Simulated ESP32 CSI at about 100 Hz covers empty room, walking, sitting down and falls",
        f"The simulated resident follows the {resident.name} profile: walking at "
        f"{cal.resident.walk_speed_ms[0]:.1f}-{cal.resident.walk_speed_ms[1]:.1f} m/s, sitting down in "
        f"{resident.sit_s[0]:.1f}-{resident.sit_s[1]:.1f} s",
        f"Static multipath makes subcarrier amplitudes vary by {100 * fading:.0f}% across the 20 MHz band",
    ]
    if cal.fit:
        d = cal.fit.device
        acts = ", ".join(sorted({c.activity for c in calibrated}))
        facts.append(
            f"The client's device was calibrated on {len(calibrated)} capture(s) ({acts}): "
            f"{d.rate_hz:.0f} packets/s, gain jitter {d.gain_jitter:.3f}, SNR {d.snr_db:.0f} dB, "
            f"motion noise {d.motion_noise:.3f}, body gain {d.body_gain:.1f}"
            + (", amplitude-only firmware" if cal.amplitude_only else "")
        )
    else:
        facts.append("No calibration captures: the device is unknown, so the twin covers the device prior")
    return TwinContext(domain, SIM_VERSION, room, facts, h.hexdigest(), eps, resident.name, cal)


def spectrogram_png(episodes: list[Episode], path: Path) -> Path:
    """Amplitude (subcarrier x time) and its Doppler spectrum, one column per activity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from iv_pipelines.sensing.features import packet_features, resample

    picks = {}
    for e in episodes:
        picks.setdefault(e.activity, e)
    fig, axes = plt.subplots(2, len(picks), figsize=(3 * len(picks), 4.6), dpi=100)
    for col, (act, e) in enumerate(picks.items()):
        amp, _ = packet_features(e.csi)
        a = resample(amp, e.t_s, e.t_s[0])
        rel = a / a.mean(0) - 1
        axes[0, col].imshow(
            rel.T,
            aspect="auto",
            origin="lower",
            cmap="RdBu_r",
            vmin=-0.3,
            vmax=0.3,
            extent=[0, len(rel) / 100, -26, 26],
        )
        axes[0, col].set_title(act)
        axes[0, col].set_xlabel("s")
        spec = np.abs(np.fft.rfft(rel - rel.mean(0), axis=0)).mean(1)
        axes[1, col].plot(np.fft.rfftfreq(len(rel), 0.01), spec)
        axes[1, col].set_xlabel("Hz")
    axes[0, 0].set_ylabel("subcarrier")
    axes[1, 0].set_ylabel("|FFT| of amplitude")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def training_curve_png(losses: list[float], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2.6), dpi=100)
    ax.plot(range(1, len(losses) + 1), losses, marker="o", ms=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
