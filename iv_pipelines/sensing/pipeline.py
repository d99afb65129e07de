"""Recipes the sensing assets call: twin datasets, base-model pretraining, LoRA adaptation.

Data hygiene: pretraining rooms, held-out evaluation rooms and the client's room are drawn
from disjoint seeds; client-room episodes for adaptation and for evaluation are disjoint;
real captures are only ever used for evaluation (never for training or tuning).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iv_pipelines.request import DacRequest
from iv_pipelines.sensing.features import drop_phase, windows_from_capture
from iv_pipelines.sensing.formats import load_espectre_npz
from iv_pipelines.sensing.twin import ACTIVITIES, RESIDENTS, Episode, Resident, Room, simulate_dataset

EPISODE_S = 2.2  # one 2 s window per episode, with margin for jitter


def dataset(
    rooms: list[Room], per_activity: int, seed: int, resident: Resident = RESIDENTS["adult"]
) -> tuple[np.ndarray, np.ndarray, list[Episode]]:
    eps = simulate_dataset(rooms, per_activity, seed, duration_s=EPISODE_S, resident=resident)
    x = np.stack([windows_from_capture(e.csi, e.t_s)[0] for e in eps])
    y = np.array([ACTIVITIES.index(e.activity) for e in eps])
    return x, y, eps


def _windows_chunk(args) -> tuple[np.ndarray, np.ndarray]:
    rooms, per_activity, seed, resident, first = args
    eps = simulate_dataset(
        rooms, per_activity, seed, duration_s=EPISODE_S, resident=resident, first_room_index=first
    )
    x = np.stack([windows_from_capture(e.csi, e.t_s)[0] for e in eps])
    return x, np.array([ACTIVITIES.index(e.activity) for e in eps])


def windows_dataset(
    rooms: list[Room], per_activity: int, seed: int, resident: Resident = RESIDENTS["adult"], workers: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Feature windows and labels, simulated in `workers` processes (rooms split into
    contiguous chunks numbered from their index, so the result does not depend on `workers`)."""
    workers = max(1, min(workers, len(rooms)))
    bounds = np.linspace(0, len(rooms), workers + 1).astype(int)
    jobs = [
        (rooms[a:b], per_activity, seed, resident, int(a))
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
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def amplitude_only(x: np.ndarray) -> np.ndarray:
    return drop_phase(x.copy())


def amplitude_only_metrics(model, x: np.ndarray, y: np.ndarray, prefix: str) -> dict:
    """The same metrics with the phase channel removed, keys `<prefix>amp_only_*`."""
    from iv_pipelines.sensing.evaluate import classification_metrics
    from iv_pipelines.sensing.model import predict_proba

    return classification_metrics(predict_proba(model, amplitude_only(x)), y, f"{prefix}amp_only_")


def random_rooms(n: int, seed: int) -> list[Room]:
    rng = np.random.default_rng(seed)
    return [Room.random(rng) for _ in range(n)]


def client_room(request: DacRequest) -> Room:
    """The client's room: the request's geometry, device placement seeded by the request digest."""
    seed = int(hashlib.sha256(request.digest().encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed)
    r = request.environment.room
    size = (r.width_m, r.depth_m, r.height_m) if r else None
    return Room.random(rng, size=size)


_ELDERLY = re.compile(r"\b(elderly|older (adults?|people|persons?)|seniors?|aged care|frail)\b", re.I)


def client_resident(request: DacRequest) -> Resident:
    """The resident profile the client's twin simulates: `elderly` when the request says so
    (text or environment), else `adult` (the profile the base model is pretrained on)."""
    words = f"{request.text} {request.environment.description if request.environment else ''}"
    return RESIDENTS["elderly" if _ELDERLY.search(words) else "adult"]


@dataclass
class BaseModelResult:
    model: object
    cfg: object
    metrics: dict
    losses: list[float]
    train_seconds: float
    n_train: int
    confusion: np.ndarray


def pretrain_base(
    n_rooms: int = 576,
    per_activity: int = 12,
    epochs: int = 10,
    seed: int = 0,
    n_eval_rooms: int = 32,
    eval_per_activity: int = 10,
    log=lambda _m: None,
    workers: int = 1,
    eval_seed: int | None = None,
) -> BaseModelResult:
    import torch

    from iv_pipelines.sensing.evaluate import classification_metrics, confusion
    from iv_pipelines.sensing.model import ModelConfig, build_model, predict_proba, train

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    x, y = windows_dataset(random_rooms(n_rooms, seed), per_activity, seed + 1, workers=workers)
    es = seed if eval_seed is None else eval_seed  # held-out rooms: fixed when comparing models
    xe, ye = windows_dataset(
        random_rooms(n_eval_rooms, es + 10_000), eval_per_activity, es + 2, workers=workers
    )
    log(f"simulated {len(x)} training and {len(xe)} held-out windows in {time.perf_counter() - t0:.1f} s")
    cfg = ModelConfig()
    model = build_model(cfg)
    rep = train(model, x, y, epochs=epochs, seed=seed, log=log)
    p = predict_proba(model, xe)
    metrics = classification_metrics(p, ye, "heldout_rooms_") | amplitude_only_metrics(
        model, xe, ye, "heldout_rooms_"
    )
    return BaseModelResult(model, cfg, metrics, rep.losses, rep.seconds, len(x), confusion(ye, p.argmax(1)))


def real_presence(model, data_dir: Path) -> tuple[dict, dict]:
    """Presence (1 - P(empty)) on real espectre captures: AUROC of movement vs baseline windows."""
    from iv_pipelines.sensing.evaluate import EMPTY, presence_auroc
    from iv_pipelines.sensing.model import predict_proba

    per_file = {}
    for f in sorted(Path(data_dir).glob("*/*.npz")):
        cap = load_espectre_npz(f)
        label = cap.meta["label"]
        if label not in ("baseline", "movement"):
            continue
        w = windows_from_capture(cap.csi, cap.t_s, hop_s=0.5)
        per_file[f.name] = (label, 1.0 - predict_proba(model, w)[:, EMPTY])
    summary = presence_auroc(per_file)
    means = {name: float(s.mean()) for name, (_, s) in per_file.items()}
    return summary, means


@dataclass
class AdapterResult:
    model: object  # peft-wrapped
    base_metrics: dict
    adapter_metrics: dict
    losses: list[float]
    train_seconds: float
    trainable_params: int
    total_params: int
    n_train: int
    confusion: np.ndarray
    room: Room
    resident: str


def adapt_lora(
    base_dir: Path,
    room: Room,
    resident: Resident = RESIDENTS["adult"],
    per_activity: int = 80,
    eval_per_activity: int = 150,
    epochs: int = 15,
    seed: int = 0,
    rank: int = 4,
    lr: float = 1e-3,
    log=lambda _m: None,
) -> AdapterResult:
    """Train a LoRA adapter on the client room's twin episodes (with the client's resident
    profile); compare with the base on held-out episodes of the same room and resident."""
    import torch

    from iv_pipelines.sensing.evaluate import classification_metrics, confusion
    from iv_pipelines.sensing.model import add_lora, load_model, predict_proba, train

    torch.manual_seed(seed)
    x, y, _ = dataset([room], per_activity, seed + 101, resident)
    xe, ye, _ = dataset([room], eval_per_activity, seed + 202, resident)
    base, _ = load_model(base_dir)
    base_metrics = classification_metrics(predict_proba(base, xe), ye, "client_room_")
    model = add_lora(base, r=rank)
    rep = train(model, x, y, epochs=epochs, lr=lr, seed=seed, log=log)
    p = predict_proba(model, xe)
    adapter_metrics = classification_metrics(p, ye, "client_room_") | amplitude_only_metrics(
        model, xe, ye, "client_room_"
    )
    return AdapterResult(
        model,
        base_metrics,
        adapter_metrics,
        rep.losses,
        rep.seconds,
        rep.trainable_params,
        rep.total_params,
        len(x),
        confusion(ye, p.argmax(1)),
        room,
        resident.name,
    )


def adapter_beats_base(base: dict, adapter: dict) -> tuple[bool, str]:
    """The adapter must be better on the client room's held-out episodes: higher accuracy, or
    equal accuracy with lower log-loss (NLL)."""
    ba, aa = base["client_room_accuracy"], adapter["client_room_accuracy"]
    bn, an = base["client_room_nll"], adapter["client_room_nll"]
    ok = aa > ba or (aa == ba and an < bn)
    return ok, f"accuracy {aa:.3f} vs base {ba:.3f}; NLL {an:.3f} vs base {bn:.3f}"


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


def twin_context(
    request: DacRequest, domain: str, episodes_per_activity: int = 2, seed: int = 0
) -> TwinContext:
    from iv_pipelines.sensing.twin import SIM_VERSION, static_response

    if domain != "wifi-sensing":
        return TwinContext(domain, "none", None, [], hashlib.sha256(b"").hexdigest())
    room = client_room(request)
    resident = client_resident(request)
    eps = simulate_dataset([room], episodes_per_activity, seed, resident=resident)
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
        f"{resident.walk_speed_ms[0]:.1f}-{resident.walk_speed_ms[1]:.1f} m/s, sitting down in "
        f"{resident.sit_s[0]:.1f}-{resident.sit_s[1]:.1f} s",
        f"Static multipath makes subcarrier amplitudes vary by {100 * fading:.0f}% across the 20 MHz band",
    ]
    return TwinContext(domain, SIM_VERSION, room, facts, h.hexdigest(), eps, resident.name)


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
