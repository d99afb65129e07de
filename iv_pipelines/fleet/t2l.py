"""Text-to-LoRA: a hypernetwork that writes a client's LoRA adapter from its request (issue #20;
after Sakana AI's `text-to-lora`: a task embedding plus learned layer and module embeddings,
through an MLP, to LoRA A and B per target module).

Input of one client: the request's text and environment embedded by the offline MiniLM model
(384 numbers), plus the room's geometry (width, depth, height in m) and the device
calibration statistics (the device context vector the capsule conditions on), standardised
with the library's means and spreads. For each target module (layer l, module m) the network
sees [task code, layer embedding l, module embedding m] and an MLP gives A (r x in) and
B (out x r); ΔW = B·A·(α/r), exactly as peft applies an adapter. The classification head,
which peft trains in full (`modules_to_save`), gets a generated change too.

Training: on the library of adapters the factory produced (their ΔW per module and their head
change), a reconstruction loss per module normalised by that module's mean square in the
library (mixing LoRA A/B factors directly would compare arbitrary bases; ΔW is what an adapter
does). `generate` returns M2N2-style blocks, `merge.peft_state` turns them into a peft state
that `set_peft_model_state_dict` loads (`sensing.model.load_peft_state` checks every key).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from iv_pipelines.fleet import m2n2
from iv_pipelines.fleet.merge import HEAD, low_rank_names
from iv_pipelines.paths import atomic_write_text
from iv_pipelines.sensing.model import LORA_TARGETS

TEXT_DIM = 384
WEIGHTS = "t2l.safetensors"
META = "t2l.json"


@dataclass
class T2LConfig:
    n_numbers: int
    layers: int
    d_model: int
    n_classes: int
    rank: int = 4
    scaling: float = 2.0
    hidden: int = 128
    emb: int = 32
    text_dim: int = TEXT_DIM


def module_shapes(d: int) -> dict[str, tuple[int, int]]:
    """(out, in) of each LoRA target in the sensing transformer."""
    return {m: ((2 * d, d) if m == "fc1" else (d, 2 * d) if m == "fc2" else (d, d)) for m in LORA_TARGETS}


def build_hypernet(cfg: T2LConfig):
    import torch
    from torch import nn

    shapes = module_shapes(cfg.d_model)

    class HyperLoRA(nn.Module):
        def __init__(self):
            super().__init__()
            self.task = nn.Sequential(nn.Linear(cfg.text_dim + cfg.n_numbers, cfg.hidden), nn.GELU())
            self.layer_emb = nn.Embedding(cfg.layers, cfg.emb)
            self.module_emb = nn.Embedding(len(LORA_TARGETS), cfg.emb)
            self.mlp = nn.Sequential(
                nn.Linear(cfg.hidden + 2 * cfg.emb, cfg.hidden),
                nn.GELU(),
                nn.Linear(cfg.hidden, cfg.hidden),
                nn.GELU(),
            )
            self.out = nn.ModuleDict(
                {m: nn.Linear(cfg.hidden, cfg.rank * (o + i)) for m, (o, i) in shapes.items()}
            )
            head_size = cfg.n_classes * 2 * cfg.d_model + cfg.n_classes
            self.head = nn.Linear(cfg.hidden, head_size)
            for lin in [*self.out.values(), self.head]:  # start from "no change"
                nn.init.normal_(lin.weight, std=1e-3)
                nn.init.zeros_(lin.bias)

        def forward(self, task_in):  # (B, text_dim + n_numbers) -> {block: (B, out, in)}
            t = self.task(task_in)
            b = t.shape[0]
            out = {}
            for layer in range(cfg.layers):
                for mi, m in enumerate(LORA_TARGETS):
                    o, i = shapes[m]
                    le = self.layer_emb.weight[layer].expand(b, -1)
                    me = self.module_emb.weight[mi].expand(b, -1)
                    h = self.mlp(torch.cat([t, le, me], 1))
                    ab = self.out[m](h)
                    a = ab[:, : cfg.rank * i].view(b, cfg.rank, i)
                    bb = ab[:, cfg.rank * i :].view(b, o, cfg.rank)
                    out[f"blocks.{layer}.{m}"] = torch.bmm(bb, a) * cfg.scaling
            hd = self.head(t)
            nw = cfg.n_classes * 2 * cfg.d_model
            out["head.weight"] = hd[:, :nw].view(b, cfg.n_classes, 2 * cfg.d_model)
            out["head.bias"] = hd[:, nw:]
            return out

    return HyperLoRA()


@dataclass
class T2L:
    cfg: T2LConfig
    net: object
    mean: np.ndarray
    std: np.ndarray
    library_size: int
    losses: list[float]
    base_sha256: str | None = None  # the base model whose deltas it writes

    def _inputs(self, text_emb: np.ndarray, numbers: np.ndarray):
        import torch

        z = (np.asarray(numbers, np.float32) - self.mean) / self.std
        return torch.from_numpy(np.concatenate([np.asarray(text_emb, np.float32), z], 1).astype(np.float32))

    def generate(self, text_emb: np.ndarray, numbers: np.ndarray) -> list[m2n2.Blocks]:
        """Blocks (ΔW per module, head change) for each client row."""
        import torch

        self.net.eval()
        with torch.no_grad():
            out = self.net(self._inputs(np.atleast_2d(text_emb), np.atleast_2d(numbers)))
        n = out["head.bias"].shape[0]
        return [{k: v[i].numpy().astype(np.float32) for k, v in out.items()} for i in range(n)]

    def save(self, directory: Path) -> Path:
        import torch
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(directory / WEIGHTS))
        meta = {
            "config": asdict(self.cfg),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "library_size": self.library_size,
            "final_loss": self.losses[-1] if self.losses else None,
            "torch": torch.__version__,
            "base_sha256": self.base_sha256,
        }
        atomic_write_text(directory / META, json.dumps(meta, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: Path) -> T2L:
        from safetensors.torch import load_file

        meta_p, w_p = Path(directory) / META, Path(directory) / WEIGHTS
        if not meta_p.is_file() or not w_p.is_file():
            raise FileNotFoundError(f"{directory}: no hypernetwork ({META} and {WEIGHTS})")
        meta = json.loads(meta_p.read_text())
        cfg = T2LConfig(**meta["config"])
        net = build_hypernet(cfg)
        net.load_state_dict(load_file(str(w_p)))
        net.eval()
        return cls(
            cfg,
            net,
            np.array(meta["mean"], np.float32),
            np.array(meta["std"], np.float32),
            meta["library_size"],
            [],
            meta.get("base_sha256"),
        )


def train_hypernet(
    text_emb: np.ndarray,
    numbers: np.ndarray,
    library: list[m2n2.Blocks],
    model_cfg,
    rank: int = 4,
    scaling: float = 2.0,
    epochs: int = 400,
    lr: float = 2e-3,
    seed: int = 0,
    log=lambda _m: None,
) -> T2L:
    """Fit the hypernetwork to the library (one row per adapter: its request's text embedding,
    its numbers and its blocks)."""
    import torch

    n = len(library)
    if n < 2 or len(text_emb) != n or len(numbers) != n:
        raise ValueError(f"a hypernetwork needs >= 2 adapters with a text and numbers each (got {n})")
    torch.manual_seed(seed)
    numbers = np.asarray(numbers, np.float32)
    mean, std = numbers.mean(0), numbers.std(0)
    std = np.where(std > 1e-6, std, 1.0).astype(np.float32)
    cfg = T2LConfig(
        n_numbers=numbers.shape[1],
        layers=model_cfg.layers,
        d_model=model_cfg.d_model,
        n_classes=model_cfg.n_classes,
        rank=rank,
        scaling=scaling,
    )
    t2l = T2L(cfg, build_hypernet(cfg), mean.astype(np.float32), std, n, [])
    names = [*low_rank_names(model_cfg), *HEAD]
    target = {k: torch.from_numpy(np.stack([b[k] for b in library]).astype(np.float32)) for k in names}
    scale = {k: float(v.pow(2).mean().clamp(min=1e-12)) for k, v in target.items()}
    x = t2l._inputs(text_emb, numbers)
    opt = torch.optim.AdamW(t2l.net.parameters(), lr=lr, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    batch = min(32, n)
    t2l.net.train()
    for ep in range(epochs):
        total = 0.0
        order = rng.permutation(n)
        for i in range(0, n, batch):
            idx = torch.from_numpy(order[i : i + batch])
            out = t2l.net(x[idx])
            loss = sum(((out[k] - target[k][idx]) ** 2).mean() / scale[k] for k in names) / len(names)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        t2l.losses.append(total / n)
        if (ep + 1) % max(1, epochs // 4) == 0:
            log(f"T2L epoch {ep + 1}/{epochs}: normalised reconstruction loss {t2l.losses[-1]:.3f}")
    t2l.net.eval()
    return t2l


def embed_texts(texts: list[str]) -> np.ndarray:
    """Sentence vectors of the offline MiniLM model (384 numbers each)."""
    from iv_pipelines.embedding import MiniLMEmbedder

    return np.asarray(MiniLMEmbedder().sentences(list(texts)), np.float32)
