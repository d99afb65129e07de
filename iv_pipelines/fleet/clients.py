"""Simulated fleet clients (SIMULATED evidence only): a room, a device drawn from the device
prior, a resident, the device context a client's calibration would give, and three disjoint
window sets simulated there — `train` (what the client's adapter learns from), `fit` (the
M2N2 fitness windows) and `test` (held out). Used by `bench/fleet.py` and the fleet tests to
build a library of adapters, as the factory would have produced them for 64-128 homes.

Each client also has the request-like text and numbers the Text-to-LoRA hypernetwork reads
(`iv_pipelines/fleet/t2l.py`): what a request says (room type and size, resident, device)
and the device-calibration statistics (its context vector)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iv_pipelines.fleet.merge import WindowSet
from iv_pipelines.sensing.context import CTX_DIM
from iv_pipelines.sensing.device import DEFAULT_PRIOR, Device
from iv_pipelines.sensing.twin import RESIDENTS, Resident, Room, room_device

ROOM_KINDS = ("bedroom", "living room", "kitchen", "bathroom", "hallway", "studio flat", "care-home room")


@dataclass
class FleetClient:
    name: str
    room: Room
    device: Device
    resident: Resident
    ctx: np.ndarray
    text: str
    train: WindowSet
    fit: WindowSet
    test: WindowSet

    def numbers(self) -> np.ndarray:
        """Room geometry (m) and the device-calibration context, as the hypernetwork reads them."""
        geo = np.array([self.room.width_m, self.room.depth_m, self.room.height_m], np.float32)
        return np.concatenate([geo, self.ctx.astype(np.float32)])


def _windows(room, dev, resident, ctx, per_activity: int, seed: int) -> WindowSet:
    from iv_pipelines.sensing.datasets import windows_dataset

    x, y, c = windows_dataset([room], per_activity, seed, resident, devices=[dev], contexts=ctx)
    return WindowSet(x, y, c)


def make_client(seed: int, index: int, per_activity: tuple[int, int, int] = (24, 12, 12)) -> FleetClient:
    """Client `index` of fleet `seed` (the same client whenever asked)."""
    from iv_pipelines.sensing.datasets import simulated_context

    rng = np.random.default_rng([seed, index, 2020])
    room = Room.random(rng)
    dev = room_device(seed + 7919, index, DEFAULT_PRIOR)
    resident = RESIDENTS[("elderly", "mixed", "adult")[int(rng.integers(3))]]
    ctx = simulated_context(room, dev, resident, seed * 100_003 + index).astype(np.float32)
    assert ctx.shape == (CTX_DIM,)
    kind = ROOM_KINDS[int(rng.integers(len(ROOM_KINDS)))]
    text = (
        f"Fall detection for {'an' if resident.name[0] in 'aeiou' else 'a'} {resident.name} resident living in a {kind} of "
        f"{room.width_m:.1f} x {room.depth_m:.1f} m, ceiling {room.height_m:.1f} m, sensed by one ESP32 "
        f"receiving WiFi CSI at {dev.rate_hz:.0f} Hz from the access point."
    )
    base = (seed * 1_000 + index) * 10
    tr, fi, te = per_activity
    return FleetClient(
        name=f"client-{seed}-{index:03d}",
        room=room,
        device=dev,
        resident=resident,
        ctx=ctx,
        text=text,
        train=_windows(room, dev, resident, ctx, tr, base + 1),
        fit=_windows(room, dev, resident, ctx, fi, base + 2),
        test=_windows(room, dev, resident, ctx, te, base + 3),
    )


def concat(sets: list[WindowSet]) -> WindowSet:
    return WindowSet(
        np.concatenate([s.x for s in sets]),
        np.concatenate([s.y for s in sets]),
        np.concatenate([s.ctx for s in sets]),
    )


def train_adapter(base_model, ws: WindowSet, rank: int = 4, epochs: int = 8, seed: int = 0, init=None):
    """A client's LoRA adapter on `ws` (peft, the lifecycle's own `add_lora` and `train`); `init`:
    a peft state to start from (T2L) instead of peft's zero-initialised B."""
    import copy

    from iv_pipelines.sensing.model import add_lora, load_peft_state, train

    model = add_lora(copy.deepcopy(base_model), r=rank)
    if init is not None:
        load_peft_state(model, init)
    train(model, ws.x, ws.y, epochs=epochs, lr=2e-3, seed=seed, ctx=ws.ctx)
    return model


def adapter_state(model) -> dict[str, np.ndarray]:
    """The trained adapter as `adapter_model.safetensors` holds it."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().numpy().copy() for k, v in get_peft_model_state_dict(model).items()}
