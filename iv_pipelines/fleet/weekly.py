"""The fleet's part of the weekly `lora_model_updates` (issue #20), SIMULATED evidence only.

`merge_fleet` — M2N2 over the current base and every DAC adapter trained on it:
fitness windows are simulated in each DAC's own room (its declared size, a layout seeded by
its id) with its device (the fitted one when its request had calibration captures, else one
drawn from the prior) and that device's context; the held-out windows come from new homes
(rooms and devices from the prior, never in the fitness set). A merge that is significantly
better than the base and every parent there becomes the new base (the replaced one kept under
`models/history/`), and every DAC's adapter is retrained on it by `base_model_promoted_sensor`.

`train_t2l` — the Text-to-LoRA hypernetwork on the factory's library: every DAC adapter that
recorded its inputs (`t2l_inputs.json`, written by `lora_adapter`) plus twin-generated
clients, saved under `models/t2l/` (`lora_adapter` then starts from its generated adapter).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from iv_pipelines.fleet.clients import FleetClient, concat, make_client
from iv_pipelines.fleet.merge import WindowSet, adapter_blocks, base_state, fleet_merge, merged_model
from iv_pipelines.paths import atomic_write_text
from iv_pipelines.storage import StorageLayout

T2L_INPUTS = "t2l_inputs.json"
HELDOUT_SEED = 7777


def _dac_seed(dac_id: str) -> int:
    return int.from_bytes(hashlib.sha256(dac_id.encode()).digest()[:4], "big")


def dac_windows(layout: StorageLayout, dac_id: str, seed: int, per_activity: int = 12) -> WindowSet:
    """Simulated windows of a DAC's own room and device (the M2N2 fitness set's share)."""
    from iv_pipelines.sensing.datasets import simulated_context, windows_dataset
    from iv_pipelines.sensing.device import DEFAULT_PRIOR, Device
    from iv_pipelines.sensing.twin import RESIDENTS, Room, room_device

    req = layout.dac_request(dac_id) or {}
    r = (req.get("environment") or {}).get("room") or {}
    rng = np.random.default_rng([_dac_seed(dac_id), seed])
    size = (r["width_m"], r["depth_m"], r.get("height_m", 2.6)) if {"width_m", "depth_m"} <= set(r) else None
    room = Room.random(rng, size=size)
    dev = room_device(seed, _dac_seed(dac_id) % 100_000, DEFAULT_PRIOR)
    cal = layout.dac_dir(dac_id, create=False) / "twin" / "calibration.json"
    if cal.is_file():
        fit = json.loads(cal.read_text()).get("fit") or {}
        if isinstance(fit.get("device"), dict):
            dev = Device.from_dict(fit["device"])
    resident = RESIDENTS["mixed"]
    ctx = simulated_context(room, dev, resident, seed)
    x, y, c = windows_dataset([room], per_activity, seed, resident, devices=[dev], contexts=ctx)
    return WindowSet(x, y, c)


def fleet_adapters(
    layout: StorageLayout, bstate, cfg, rank: int = 4, log=lambda _m: None
) -> tuple[dict, dict]:
    """({dac: blocks} of the rank-`rank` adapters trained on the current base, {dac: why left out})."""
    from safetensors.numpy import load_file

    base_t = (layout.base_model_dir() / "model.safetensors").stat().st_mtime
    members, skipped = {}, {}
    for dac in layout.adapted_dacs():
        d = layout.adapter_dir(dac)
        w = d / "adapter_model.safetensors"
        if w.stat().st_mtime < base_t:
            skipped[dac] = "trained on an earlier base model (retrained after the next promotion run)"
            continue
        conf = json.loads((d / "adapter_config.json").read_text())
        if int(conf.get("r", 0)) != rank:
            skipped[dac] = f"rank {conf.get('r')} (the fleet merges rank-{rank} adapters)"
            continue
        try:
            members[dac] = adapter_blocks(load_file(str(w)), bstate, cfg, conf["lora_alpha"] / conf["r"])
        except (ValueError, KeyError) as e:
            skipped[dac] = f"unreadable adapter: {e}"
    for dac, why in skipped.items():
        log(f"fleet merge: {dac} left out: {why}")
    return members, skipped


def merge_fleet(
    layout: StorageLayout, seed: int, rank: int = 4, iterations: int = 40, heldout_clients: int = 4, log=print
) -> dict:
    """Run M2N2 on the fleet; install the merge as the new base if it wins. Returns plain
    metadata {key: (type, value)} for the asset and the Pipes pod alike."""
    from iv_pipelines.sensing.model import load_model
    from iv_pipelines.sensing.promotion import install_base_model

    base, cfg = load_model(layout.base_model_dir())
    bstate = base_state(base)
    members, skipped = fleet_adapters(layout, bstate, cfg, rank, log)
    md: dict = {"fleet_adapters": ("int", len(members)), "fleet_left_out": ("json", skipped)}
    if len(members) < 2:
        md["fleet_merge"] = (
            "text",
            f"not run: {len(members)} adapter(s) on the current base; a merge needs 2",
        )
        return md
    log(f"fleet merge: simulating fitness windows in the rooms of {len(members)} DACs")
    fitness = concat([dac_windows(layout, d, seed) for d in members])
    held = [make_client(seed + HELDOUT_SEED, i) for i in range(heldout_clients)]
    heldout = concat([c.test for c in held])
    rep = fleet_merge(
        base, cfg, members, fitness, heldout, rank=rank, iterations=iterations, seed=seed, log=log
    )
    out = layout.fleet_dir()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "m2n2.json", json.dumps(rep.to_dict(), indent=2, default=str) + "\n")
    plot = archive_png(rep, out / "m2n2.png")
    md |= {
        "fleet_merge": ("text", rep.why),
        "fleet_merge_promoted": ("bool", rep.promoted),
        "fleet_merge_chosen": ("text", rep.chosen or "none"),
        "fleet_archive": ("md", rep.table_md()),
        "fleet_heldout_accuracy": ("json", {k: round(v, 4) for k, v in rep.heldout_accuracy.items()}),
        "fleet_evaluated_on": (
            "text",
            f"SIMULATED: fitness {len(fitness)} windows of the DACs' own rooms; held out {len(heldout)} windows "
            f"of {heldout_clients} new simulated homes",
        ),
        "fleet_plot": ("md", png_md(plot)),
    }
    if rep.promoted:
        history, dacs = install_base_model(
            layout,
            merged_model(bstate, cfg, rep.blocks),
            cfg,
            {"m2n2": rep.chosen, "seed": seed},
            {"heldout": {}, "real": {}, "seed": seed, "m2n2": rep.to_dict()},
            log,
        )
        md |= {"history_dir": ("path", str(history)), "dacs_to_retrain": ("json", dacs)}
    return md


def png_md(path: Path) -> str:
    """A PNG inline in the UI's markdown (a data URI; a file path would not render)."""
    import base64

    return f"![{path.name}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"


def accuracy_png(values: dict[str, float], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2.6), dpi=100)
    ax.bar(list(values), list(values.values()), color=["C7", "C1", "C0"][: len(values)])
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def archive_png(rep, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = rep.members
    fig, ax = plt.subplots(figsize=(6, 2.8), dpi=100)
    ax.bar(range(len(names)), rep.fitness, color=["C1" if n.startswith("merge-") else "C0" for n in names])
    ax.set_xticks(range(len(names)), [n[:18] for n in names], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("fitness (resource competition)")
    ax.set_title(f"M2N2 archive (orange: merges); chosen {rep.chosen or 'none'}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def t2l_inputs(text: str, room: tuple[float, float, float], ctx: np.ndarray) -> dict:
    return {"text": text, "numbers": [float(v) for v in (*room, *np.asarray(ctx, float))]}


def library(layout: StorageLayout, base, cfg, twin_clients: int, seed: int, rank: int = 4, log=print):
    """(texts, numbers, blocks) of the factory's rank-`rank` adapters that recorded their
    inputs, plus `twin_clients` twin-generated clients with adapters trained here on `base`."""
    from iv_pipelines.fleet.clients import adapter_state, train_adapter
    from iv_pipelines.sensing.model import lora_scaling

    bstate = base_state(base)
    members, _ = fleet_adapters(layout, bstate, cfg, rank, log)
    texts, numbers, blocks = [], [], []
    for dac, b in members.items():
        f = layout.adapter_dir(dac) / T2L_INPUTS
        if f.is_file():
            d = json.loads(f.read_text())
            texts.append(d["text"]), numbers.append(d["numbers"]), blocks.append(b)
    log(f"T2L library: {len(blocks)} factory adapters, {twin_clients} twin-generated")
    for i in range(twin_clients):
        c: FleetClient = make_client(seed + 1000, i)
        st = adapter_state(train_adapter(base, c.train, rank=rank, seed=i))
        texts.append(c.text), numbers.append(c.numbers().tolist())
        blocks.append(adapter_blocks(st, bstate, cfg, lora_scaling(rank)))
        if (i + 1) % 16 == 0:
            log(f"T2L library: {i + 1}/{twin_clients} twin clients")
    return texts, numbers, blocks
