"""A small transformer classifier over CSI windows, pretraining, LoRA adaptation, evaluation.

Architecture: the (T=200, F) window is cut into patches of 4 time steps (high-frequency
Doppler stays inside each patch's linear embedding), 50 tokens of width 64 with learned
positions, plus one context token embedding the device context (`context.py`; zeros when the
device was not calibrated); 2 pre-norm blocks whose attention and MLP use plain `nn.Linear`
layers named q, k, v, o, fc1, fc2 (the LoRA targets); padded patches of short windows are
left out of the pooling; the head reads the mean of the valid patch tokens and the context
token.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from iv_pipelines.sensing.context import CTX_DIM
from iv_pipelines.sensing.features import FEATURES_VERSION, N_FEATURES, VALID_COLUMN, T
from iv_pipelines.sensing.twin import ACTIVITIES

LORA_TARGETS = ["q", "k", "v", "o", "fc1", "fc2"]


@dataclass
class ModelConfig:
    n_features: int = N_FEATURES
    window: int = T
    patch: int = 4
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    n_classes: int = len(ACTIVITIES)
    dropout: float = 0.2
    ctx_dim: int = CTX_DIM


def build_model(cfg: ModelConfig):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            d = cfg.d_model
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
            self.fc1, self.fc2 = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)
            self.drop = nn.Dropout(cfg.dropout)

        def forward(self, x, mask):
            b, n, d = x.shape
            h = self.ln1(x)
            hd = d // cfg.heads

            def split(t):
                return t.view(b, n, cfg.heads, hd).transpose(1, 2)

            att = torch.nn.functional.scaled_dot_product_attention(
                split(self.q(h)),
                split(self.k(h)),
                split(self.v(h)),
                attn_mask=None if mask is None else mask[:, None, None, :],
            )
            x = x + self.drop(self.o(att.transpose(1, 2).reshape(b, n, d)))
            return x + self.drop(self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x)))))

    class CsiTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.cfg = cfg
            n_tok = cfg.window // cfg.patch
            self.embed = nn.Linear(cfg.n_features * cfg.patch, cfg.d_model)
            self.pos = nn.Parameter(torch.zeros(1, n_tok, cfg.d_model))
            self.ctx = nn.Linear(cfg.ctx_dim, cfg.d_model)
            self.ctx_pos = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
            self.blocks = nn.ModuleList(Block() for _ in range(cfg.layers))
            self.norm = nn.LayerNorm(cfg.d_model)
            self.head = nn.Linear(2 * cfg.d_model, cfg.n_classes)

        def forward(self, x, ctx=None):  # x: (B, T, F), ctx: (B, ctx_dim) or None
            b = x.shape[0]
            valid = x[:, :, VALID_COLUMN].reshape(b, -1, cfg.patch).mean(-1) > 0.5  # (B, tokens)
            x = x.reshape(b, cfg.window // cfg.patch, cfg.patch * cfg.n_features)
            if ctx is None:
                ctx = x.new_zeros(b, cfg.ctx_dim)
            h = torch.cat([self.ctx(ctx)[:, None, :] + self.ctx_pos, self.embed(x) + self.pos], 1)
            # attention sees the padding of short windows (zeros with valid = 0, which the model
            # learns to ignore); a mask would force the slow unfused attention kernel on CPU.
            # Pooling ignores padded patches.
            for blk in self.blocks:
                h = blk(h, None)
            h = self.norm(h)
            w = valid.float()[:, :, None]
            pooled = (h[:, 1:] * w).sum(1) / w.sum(1).clamp(min=1.0)
            return self.head(torch.cat([pooled, h[:, 0]], 1))

    return CsiTransformer()


def count_params(model, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@dataclass
class TrainReport:
    epochs: int
    seconds: float
    losses: list[float]
    trainable_params: int
    total_params: int


def train(
    model,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int = 12,
    lr: float = 2e-3,
    batch: int = 64,
    seed: int = 0,
    phase_dropout: float = 0.3,
    log=lambda _m: None,
    ctx: np.ndarray | None = None,
    ctx_dropout: float = 0.0,
) -> TrainReport:
    """AdamW + cosine schedule; with `phase_dropout`, that share of windows loses its phase
    channel (zeros + flag 0) so the model also serves amplitude-only firmwares. `ctx` (N,
    CTX_DIM) is each window's device context; with `ctx_dropout`, that share of windows sees no
    context and the others each calibration activity with probability 0.6, so one model serves
    uncalibrated devices and any subset of calibration captures."""
    import torch

    from iv_pipelines.sensing.context import CONTEXT_ACTIVITIES, CTX_DIM, N_SUMMARY

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    from iv_pipelines.sensing.features import VALID_COLUMN, drop_phase

    short = x[:, -1, VALID_COLUMN] < 0.5  # padded windows batch together (same valid length)
    per_epoch = int(np.ceil((~short).sum() / batch)) + int(np.ceil(short.sum() / batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * per_epoch, pct_start=0.15
    )
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    ct = torch.from_numpy(np.zeros((len(x), CTX_DIM), np.float32) if ctx is None else ctx.astype(np.float32))
    block = 1 + N_SUMMARY
    losses = []
    t0 = time.perf_counter()
    model.train()
    for ep in range(epochs):
        order = rng.permutation(len(x))
        groups = [order[~short[order]], order[short[order]]]
        batches = [g[i : i + batch] for g in groups for i in range(0, len(g), batch)]
        total = 0.0
        for bi in rng.permutation(len(batches)):
            idx = batches[bi]
            xb = xt[idx].clone()
            drop = torch.from_numpy(rng.random(len(idx)) < phase_dropout)
            drop_phase(xb, drop)
            cb = ct[idx].clone()
            if ctx_dropout > 0:
                none = rng.random(len(idx)) < ctx_dropout
                for a in range(len(CONTEXT_ACTIVITIES)):
                    off = torch.from_numpy(none | (rng.random(len(idx)) > 0.6))
                    cb[off, a * block : (a + 1) * block] = 0.0
            loss = torch.nn.functional.cross_entropy(model(xb, cb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x))
        log(f"epoch {ep + 1}/{epochs}: loss {losses[-1]:.4f}")
    model.eval()
    return TrainReport(
        epochs, time.perf_counter() - t0, losses, count_params(model, True), count_params(model)
    )


def predict_proba(model, x: np.ndarray, batch: int = 256, ctx: np.ndarray | None = None) -> np.ndarray:
    """Class probabilities of windows `x` (N, T, F); `ctx` is one device context (CTX_DIM,)
    for all windows, one per window (N, CTX_DIM), or None (uncalibrated)."""
    import torch

    model.eval()
    out = []
    if ctx is not None:
        ctx = np.asarray(ctx, np.float32)
        ctx = np.broadcast_to(ctx, (len(x), ctx.shape[-1])) if ctx.ndim == 1 else ctx
    with torch.no_grad():
        for i in range(0, len(x), batch):
            c = None if ctx is None else torch.from_numpy(np.ascontiguousarray(ctx[i : i + batch]))
            out.append(torch.softmax(model(torch.from_numpy(x[i : i + batch]), c), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(ACTIVITIES)))


def base_model_version(cfg: ModelConfig | None = None) -> str:
    """What a saved base model depends on: simulator, feature and architecture versions."""
    import hashlib

    from iv_pipelines.sensing.twin import SIM_VERSION

    arch = hashlib.sha256(json.dumps(asdict(cfg or ModelConfig()), sort_keys=True).encode()).hexdigest()[:8]
    return f"{SIM_VERSION}+{FEATURES_VERSION}+arch-{arch}"


class StaleModelError(RuntimeError):
    """A saved model was built for other features or another simulator than this code's."""


def save_model(model, cfg: ModelConfig, directory: Path, extra: dict | None = None) -> Path:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "model.safetensors")
    )
    meta = {"version": base_model_version(cfg)} | (extra or {})
    (directory / "config.json").write_text(json.dumps(asdict(cfg) | {"extra": meta}, indent=2) + "\n")
    return directory / "model.safetensors"


def load_model(directory: Path):
    from safetensors.torch import load_file

    raw = json.loads((Path(directory) / "config.json").read_text())
    extra = raw.pop("extra", None) or {}
    cfg = ModelConfig(**raw)
    if (
        cfg.n_features != N_FEATURES
        or extra.get("version", "").split("+")[:2] != base_model_version(cfg).split("+")[:2]
    ):
        raise StaleModelError(
            f"model at {directory} was built for {extra.get('version', 'an older version')!r} "
            f"({cfg.n_features} features); this code needs {base_model_version(cfg)!r} "
            f"({N_FEATURES} features): rematerialize wifi_sensing_base_model"
        )
    model = build_model(cfg)
    model.load_state_dict(load_file(str(Path(directory) / "model.safetensors")))
    model.eval()
    return model, cfg


LORA_ALPHA = 8  # peft's lora_alpha for every adapter here: ΔW = B·A·(LORA_ALPHA / r)


def lora_scaling(rank: int) -> float:
    """The factor peft applies to B·A for a rank-`rank` adapter of `add_lora`."""
    return LORA_ALPHA / rank


def add_lora(model, r: int = 4, alpha: int = LORA_ALPHA):
    """Wrap `model` with peft LoRA adapters on the attention and MLP linears."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=r, lora_alpha=alpha, target_modules=LORA_TARGETS, lora_dropout=0.0, modules_to_save=["head"]
    )
    return get_peft_model(model, cfg)


def load_peft_state(model, state: dict) -> None:
    """`set_peft_model_state_dict` with every key used and none missing: a generated adapter
    whose shapes or names do not match the model is an error, never a silent partial load."""
    import torch
    from peft import set_peft_model_state_dict

    try:
        res = set_peft_model_state_dict(
            model, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
        )
    except RuntimeError as e:  # torch: size mismatch
        raise ValueError(f"adapter does not fit the model: {str(e).splitlines()[-1].strip()}") from e
    if res.unexpected_keys:
        raise ValueError(f"adapter keys the model does not have: {res.unexpected_keys[:5]}")
    want = {k for k in model.state_dict() if "lora_" in k or "modules_to_save" in k}
    missing = {k for k in res.missing_keys if k in want}
    if missing:
        raise ValueError(f"adapter lacks {sorted(missing)[:5]}")
