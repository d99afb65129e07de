"""Fleet learning (issue #20), SIMULATED evidence only: does M2N2 merging or the Text-to-LoRA
hypernetwork earn its place on rooms and devices they never saw?

Per seed (>= 5), on twin clients (`iv_pipelines/fleet/clients.py`: a room, a device from the
device prior, a resident, its calibration context):
(a) **M2N2**: a fleet of client adapters (each trained on its own client's windows) and the
    base form the archive; the search's fitness windows come from the fleet's rooms; the best
    merge is compared, on the windows of held-out clients (rooms and devices the fitness set
    never held), with the current base and with the best parent *as measured on those held-out
    windows* (the parent's most favourable case). Paired McNemar test per comparison.
(b) **T2L zero-shot**: a hypernetwork trained on a library of adapters (`--library` clients of
    another fleet seed, never evaluated) writes each held-out client's adapter from its text
    and numbers; its decisions vs the base alone on the same held-out windows.
(c) **T2L as initialisation**: each held-out client's adapter trained from zero-initialised
    LoRA and from the generated one (same loop, same data: the client's own training windows),
    accuracy on its held-out windows every 2 steps: the steps each needs to reach the
    zero-initialised adapter's final accuracy (mean of its last three evaluations).

Goals (issue #20): (a) the merge beats the best parent, with the seed spread stated; (b)
zero-shot beats the base on held-out rooms; (c) T2L needs <= 25 % of the zero-init steps.
A component whose goal is not met stays off by default (`FLEET_DEFAULTS` in
`iv_pipelines/fleet/__init__.py` records what this bench found).

    .venv/bin/python bench/fleet.py [--seeds 5] [--base-model DIR]   # default: make demo's base model
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _common import demo_base_model_dir  # noqa: E402

DEFAULT_BASE = demo_base_model_dir()
LIBRARY_SEED = 1000


def train_curve(model, train, test, steps: int, seed: int, every: int = 2, batch: int = 32, lr: float = 2e-3):
    """Constant-rate AdamW steps on `train`; accuracy on `test` at step 0 and every `every`."""
    import torch

    from iv_pipelines.fleet.merge import decisions

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    xt, yt, ct = torch.from_numpy(train.x), torch.from_numpy(train.y).long(), torch.from_numpy(train.ctx)
    curve = [(0, float(decisions(model, test)[0].mean()))]
    for step in range(1, steps + 1):
        idx = torch.from_numpy(rng.choice(len(train.y), size=min(batch, len(train.y)), replace=False))
        model.train()
        loss = torch.nn.functional.cross_entropy(model(xt[idx], ct[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0:
            curve.append((step, float(decisions(model, test)[0].mean())))
    model.eval()
    return curve


def steps_to(curve, target: float) -> int | None:
    return next((s for s, a in curve if a >= target - 1e-9), None)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--fleet", type=int, default=6, help="client adapters in the M2N2 archive")
    ap.add_argument("--heldout", type=int, default=4, help="held-out clients per seed")
    ap.add_argument("--library", type=int, default=64, help="adapters the hypernetwork learns from")
    ap.add_argument("--iterations", type=int, default=40, help="M2N2 children per search")
    ap.add_argument("--epochs", type=int, default=8, help="epochs of each client adapter")
    ap.add_argument("--steps", type=int, default=60, help="training steps in (c)")
    ap.add_argument("--base-model", type=Path, default=DEFAULT_BASE)
    a = ap.parse_args()
    if a.seeds < 1 or a.fleet < 2 or a.heldout < 1 or a.library < 2:
        raise SystemExit("need --seeds >= 1, --fleet >= 2, --heldout >= 1, --library >= 2")
    if not (a.base_model / "model.safetensors").is_file():
        raise SystemExit(f"{a.base_model}: no trained base model (run make demo first)")

    import copy

    from iv_pipelines.fleet.clients import adapter_state, concat, make_client, train_adapter
    from iv_pipelines.fleet.merge import (
        adapter_blocks,
        base_state,
        decisions,
        fleet_merge,
        merged_model,
        peft_state,
    )
    from iv_pipelines.fleet.t2l import embed_texts, train_hypernet
    from iv_pipelines.sensing.gate import compare
    from iv_pipelines.sensing.model import add_lora, load_model, load_peft_state, lora_scaling

    scaling = lora_scaling(4)  # the adapters here are add_lora's default rank

    t_all = time.perf_counter()
    base, cfg = load_model(a.base_model)
    bstate = base_state(base)
    print("SIMULATED evidence (Shadow Twin clients, devices from the prior)", flush=True)

    t0 = time.perf_counter()
    lib_clients = [make_client(LIBRARY_SEED, i) for i in range(a.library)]
    lib_blocks = [
        adapter_blocks(
            adapter_state(train_adapter(base, c.train, epochs=a.epochs, seed=i)), bstate, cfg, scaling
        )
        for i, c in enumerate(lib_clients)
    ]
    lib_text = embed_texts([c.text for c in lib_clients])
    lib_num = np.stack([c.numbers() for c in lib_clients])
    print(
        f"library: {a.library} client adapters (fleet seed {LIBRARY_SEED}) in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )

    rows = []
    for seed in range(a.seeds):
        t0 = time.perf_counter()
        fleet = [make_client(seed, i) for i in range(a.fleet)]
        held = [make_client(seed, 500 + i, (24, 12, 24)) for i in range(a.heldout)]
        adapters = {
            c.name: adapter_blocks(
                adapter_state(train_adapter(base, c.train, epochs=a.epochs, seed=seed)), bstate, cfg, scaling
            )
            for c in fleet
        }
        heldout = concat([c.test for c in held])
        rep = fleet_merge(
            base, cfg, adapters, concat([c.fit for c in fleet]), heldout, iterations=a.iterations, seed=seed
        )
        acc = rep.heldout_accuracy
        parents = {n: acc[n] for n in adapters}
        best_parent = max(parents, key=parents.get)
        merge_acc = acc.get(rep.chosen) if rep.chosen else None
        vs_parent = rep.comparisons.get(best_parent, {}).get("verdict") if rep.chosen else "no merge"
        vs_base = rep.comparisons.get("base", {}).get("verdict") if rep.chosen else "no merge"

        # (b) T2L zero-shot, (c) steps from the generated adapter
        t2l = train_hypernet(lib_text, lib_num, lib_blocks, cfg, seed=seed)
        gen = t2l.generate(embed_texts([c.text for c in held]), np.stack([c.numbers() for c in held]))
        right_b, nll_b, right_g, nll_g = [], [], [], []
        curves_zero, curves_t2l = [], []
        for c, blocks in zip(held, gen, strict=True):
            rb, nb = decisions(base, c.test)
            rg, ng = decisions(merged_model(bstate, cfg, blocks), c.test)
            right_b.append(rb), nll_b.append(nb), right_g.append(rg), nll_g.append(ng)
            zero = add_lora(copy.deepcopy(base))
            init = add_lora(copy.deepcopy(base))
            load_peft_state(init, peft_state(blocks, bstate, cfg, 4, scaling))
            curves_zero.append(train_curve(zero, c.train, c.test, a.steps, seed))
            curves_t2l.append(train_curve(init, c.train, c.test, a.steps, seed))
        zs = compare(
            np.concatenate(right_g),
            np.concatenate(right_b),
            np.concatenate(nll_g),
            np.concatenate(nll_b),
            seed=seed,
        )
        # pooled curves over the held-out clients (each trained on its own windows)
        cz = [(s, float(np.mean([c[k][1] for c in curves_zero]))) for k, (s, _) in enumerate(curves_zero[0])]
        ct = [(s, float(np.mean([c[k][1] for c in curves_t2l]))) for k, (s, _) in enumerate(curves_t2l[0])]
        target = float(np.mean([acc_ for _, acc_ in cz[-3:]]))
        sz, st = steps_to(cz, target), steps_to(ct, target)
        rows.append(
            {
                "seed": seed,
                "base": acc["base"],
                "best_parent": parents[best_parent],
                "merge": merge_acc,
                "vs_parent": vs_parent,
                "vs_base": vs_base,
                "promoted": rep.promoted,
                "kept": rep.children_kept,
                "zs_base": zs.accuracy_b,
                "zs_t2l": zs.accuracy_a,
                "zs_verdict": zs.verdict,
                "zs_p": zs.mcnemar_p,
                "target": target,
                "steps_zero": sz,
                "steps_t2l": st,
                "t2l_step0": ct[0][1],
                "seconds": time.perf_counter() - t0,
            }
        )
        r = rows[-1]
        print(
            f"seed {seed}: held-out ({len(heldout)} windows, {a.heldout} clients): base {r['base']:.3f}, best parent "
            f"{r['best_parent']:.3f}, merge {r['merge'] if r['merge'] is None else round(r['merge'], 3)} "
            f"(vs best parent: {vs_parent}; vs base: {vs_base}; promoted {rep.promoted}; {rep.children_kept}/{a.iterations} kept) | "
            f"T2L zero-shot {zs.accuracy_a:.3f} vs base {zs.accuracy_b:.3f} ({zs.verdict}, p={zs.mcnemar_p:.3g}) | "
            f"steps to {target:.3f}: zero-init {sz}, T2L {st} | {r['seconds']:.0f} s",
            flush=True,
        )

    def spread(key):
        v = np.array([r[key] for r in rows if r[key] is not None], float)
        return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f} (n={len(v)})"

    print(
        "\n| seed | base | best parent | M2N2 merge | merge vs best parent | promoted | T2L zero-shot | base | verdict | steps zero-init | steps T2L |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = "-" if r["merge"] is None else f"{r['merge']:.3f}"
        print(
            f"| {r['seed']} | {r['base']:.3f} | {r['best_parent']:.3f} | {m} | {r['vs_parent']} | {r['promoted']} | "
            f"{r['zs_t2l']:.3f} | {r['zs_base']:.3f} | {r['zs_verdict']} | {r['steps_zero']} | {r['steps_t2l']} |"
        )
    merges = [r for r in rows if r["merge"] is not None]
    gain = np.array([r["merge"] - r["best_parent"] for r in merges])
    better_a = sum(r["vs_parent"] == "better" for r in rows)
    zs_gain = np.array([r["zs_t2l"] - r["zs_base"] for r in rows])
    better_b = sum(r["zs_verdict"] == "better" for r in rows)
    ratios = [
        r["steps_t2l"] / r["steps_zero"] for r in rows if r["steps_t2l"] is not None and r["steps_zero"]
    ]
    print(
        "(a) M2N2 merge - best parent on held-out clients: "
        + (
            f"{gain.mean():+.3f} ± {gain.std(ddof=1) if len(gain) > 1 else 0:.3f} over {len(gain)} seeds"
            if len(gain)
            else "no merge"
        )
        + f"; significantly better in {better_a} of {a.seeds} seeds; promoted in {sum(r['promoted'] for r in rows)}"
        + f" | accuracy: base {spread('base')}, best parent {spread('best_parent')}, merge {spread('merge') if merges else '-'}"
    )
    print(
        f"(b) T2L zero-shot - base: {zs_gain.mean():+.3f} ± {zs_gain.std(ddof=1) if len(zs_gain) > 1 else 0:.3f}; "
        f"significantly better in {better_b} of {a.seeds} seeds"
    )
    print(
        "(c) T2L-initialised steps / zero-initialised steps to the latter's final accuracy: "
        + (
            f"median {np.median(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)})"
            if ratios
            else "not reached"
        )
        + f"; T2L never reached it in {sum(r['steps_t2l'] is None for r in rows)} seeds; "
        + f"in {sum(r['steps_zero'] == 0 for r in rows)} seeds the zero-initialised adapter (which starts as the base) "
        "ended no better on held-out windows than it started, so there is no step count to cut there"
    )
    goal_a = better_a == a.seeds
    goal_b = better_b == a.seeds
    goal_c = bool(ratios) and len(ratios) == a.seeds and max(ratios) <= 0.25
    print(
        f"goals: (a) merge beats the best parent {'MET' if goal_a else 'NOT MET'}; (b) zero-shot beats the base "
        f"{'MET' if goal_b else 'NOT MET'}; (c) <= 25 % of the steps {'MET' if goal_c else 'NOT MET'}"
    )
    print(f"total wall time {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
