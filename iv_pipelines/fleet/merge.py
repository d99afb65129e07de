"""The fleet's adapters as M2N2 members, and a merged base promoted only on held-out evidence
(issue #20). Operators: `iv_pipelines/fleet/m2n2.py`.

- `adapter_blocks`: a saved peft adapter (LoRA A/B per target module, the head in full) as
  weight deltas against the base; `zero_blocks` is the base itself.
- `merged_model`: base + deltas as a plain model (what a promoted merge becomes: the new base).
- `fleet_merge`: the archive (base + every client adapter), the natural-niches search scored by
  per-window decisions (right or wrong at the default decision) on the fitness windows, the
  best merged member on those windows, then the held-out test: the merge is promoted only if it
  is significantly `better` (paired McNemar + bootstrap, `sensing.gate.compare`) than the
  current base **and** than every parent on windows of rooms and devices the fitness set never
  held. Anything else keeps the current base, and the report says why.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from iv_pipelines.fleet import m2n2
from iv_pipelines.sensing.model import LORA_TARGETS

HEAD = ("head.weight", "head.bias")
PEFT_PREFIX = "base_model.model."


@dataclass
class WindowSet:
    """Windows, labels and each window's device context."""

    x: np.ndarray
    y: np.ndarray
    ctx: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def base_state(model) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def low_rank_names(cfg) -> list[str]:
    return [f"blocks.{layer}.{m}" for layer in range(cfg.layers) for m in LORA_TARGETS]


def zero_blocks(base: dict[str, np.ndarray], cfg) -> m2n2.Blocks:
    out = {n: np.zeros_like(base[f"{n}.weight"]) for n in low_rank_names(cfg)}
    return out | {h: np.zeros_like(base[h]) for h in HEAD}


def adapter_blocks(
    peft_state: dict[str, np.ndarray], base: dict[str, np.ndarray], cfg, scaling: float
) -> m2n2.Blocks:
    """Deltas of a saved adapter (`adapter_model.safetensors` keys) against `base`."""
    out: m2n2.Blocks = {}
    for n in low_rank_names(cfg):
        try:
            a = peft_state[f"{PEFT_PREFIX}{n}.lora_A.weight"]
            b = peft_state[f"{PEFT_PREFIX}{n}.lora_B.weight"]
        except KeyError as e:
            raise ValueError(f"adapter has no LoRA weights for {n} ({e})") from e
        out[n] = (np.asarray(b, np.float32) @ np.asarray(a, np.float32)) * scaling
    for h in HEAD:
        out[h] = np.asarray(peft_state[f"{PEFT_PREFIX}{h}"], np.float32) - base[h]
    return out


def peft_state(blocks: m2n2.Blocks, base: dict[str, np.ndarray], cfg, rank: int, scaling: float) -> dict:
    """Deltas back to a peft adapter state (rank-`rank` factors; the head in full), for
    `set_peft_model_state_dict`."""
    out = {}
    for n in low_rank_names(cfg):
        a, b = m2n2.factor(blocks[n], rank, scaling)
        out[f"{PEFT_PREFIX}{n}.lora_A.weight"], out[f"{PEFT_PREFIX}{n}.lora_B.weight"] = a, b
    for h in HEAD:
        out[f"{PEFT_PREFIX}{h}"] = (base[h] + blocks[h]).astype(np.float32)
    return out


def merged_model(base: dict[str, np.ndarray], cfg, blocks: m2n2.Blocks):
    """A plain model with base + deltas (LoRA deltas added to each target's weight)."""
    import torch

    from iv_pipelines.sensing.model import build_model

    state = copy.deepcopy(base)
    for n in low_rank_names(cfg):
        state[f"{n}.weight"] = state[f"{n}.weight"] + blocks[n]
    for h in HEAD:
        state[h] = state[h] + blocks[h]
    model = build_model(cfg)
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    model.eval()
    return model


def decisions(model, ws: WindowSet) -> tuple[np.ndarray, np.ndarray]:
    """(right or wrong per window at the default decision, NLL per window)."""
    from iv_pipelines.sensing.evaluate import decide
    from iv_pipelines.sensing.model import predict_proba

    p = predict_proba(model, ws.x, ctx=ws.ctx)
    right = decide(p) == ws.y
    nll = -np.log(np.clip(p[np.arange(len(ws.y)), ws.y], 1e-9, 1.0))
    return right, nll


@dataclass
class MergeReport:
    members: list[str]
    fitness: list[float]
    fitness_accuracy: list[float]
    chosen: str | None
    promoted: bool
    why: str
    heldout_accuracy: dict[str, float] = field(default_factory=dict)
    comparisons: dict[str, dict] = field(default_factory=dict)
    children_tried: int = 0
    children_kept: int = 0
    blocks: m2n2.Blocks | None = None

    def table_md(self) -> str:
        rows = "\n".join(
            f"| {n} | {f:.3f} | {a:.3f} |"
            for n, f, a in zip(self.members, self.fitness, self.fitness_accuracy, strict=True)
        )
        return (
            "| member | fitness (resource competition) | accuracy, fitness windows (simulated) |\n|---|---|---|\n"
            + rows
        )

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "blocks"}
        return d


def fleet_merge(
    base_model,
    cfg,
    adapters: dict[str, m2n2.Blocks],
    fitness_set: WindowSet,
    heldout: WindowSet,
    rank: int = 4,
    iterations: int = 40,
    seed: int = 0,
    log=lambda _m: None,
) -> MergeReport:
    """M2N2 over the base and the fleet's adapters; see the module docstring."""
    from iv_pipelines.sensing.gate import compare

    base = base_state(base_model)
    names = ["base", *adapters]
    members = [zero_blocks(base, cfg), *adapters.values()]
    low = set(low_rank_names(cfg))

    def score(blocks):
        return decisions(merged_model(base, cfg, blocks), fitness_set)[0].astype(float)

    res = m2n2.search(members, names, score, rank, low, iterations, seed=seed)
    acc = res.scores.mean(1)
    log(f"M2N2: {res.children_kept} of {res.children_tried} children kept; archive {res.names}")
    report = MergeReport(
        members=res.names,
        fitness=[float(f) for f in res.fitness],
        fitness_accuracy=[float(a) for a in acc],
        chosen=None,
        promoted=False,
        why="",
        children_tried=res.children_tried,
        children_kept=res.children_kept,
    )
    merges = [i for i, n in enumerate(res.names) if n.startswith("merge-")]
    if not merges:
        report.why = "no merged child outlived the archive's members on the fitness windows"
        return report
    best = max(merges, key=lambda i: acc[i])
    report.chosen, report.blocks = res.names[best], res.archive[best]
    right_c, nll_c = decisions(merged_model(base, cfg, res.archive[best]), heldout)
    report.heldout_accuracy[report.chosen] = float(right_c.mean())
    losing = []
    for name, blocks in zip(names, members, strict=True):
        right, nll = decisions(merged_model(base, cfg, blocks), heldout)
        report.heldout_accuracy[name] = float(right.mean())
        cmp = compare(right_c, right, nll_c, nll, seed=seed)
        report.comparisons[name] = cmp.to_dict()
        if cmp.verdict != "better":
            losing.append(
                f"{name} ({cmp.verdict}: {cmp.accuracy_a:.3f} vs {cmp.accuracy_b:.3f}, p={cmp.mcnemar_p:.3g})"
            )
    if losing:
        report.why = (
            f"{report.chosen} is not significantly better on {len(heldout)} held-out windows than: "
            + "; ".join(losing)
        )
    else:
        report.promoted = True
        report.why = (
            f"{report.chosen} is significantly better than the base and all {len(adapters)} parents "
            f"on {len(heldout)} held-out windows (paired McNemar and bootstrap)"
        )
    log(f"M2N2: {report.why}")
    return report
