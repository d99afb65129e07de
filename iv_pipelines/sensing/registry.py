"""Registry of domain base models for the T2L (LoRA) step (`data/base_models.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml


@dataclass(frozen=True)
class BaseModelSpec:
    domain: str
    kind: str
    base: str
    trainable: bool
    lora_targets: tuple[str, ...] | str


@lru_cache(maxsize=1)
def registry() -> dict[str, BaseModelSpec]:
    raw = yaml.safe_load((resources.files("iv_pipelines") / "data" / "base_models.yaml").read_text())[
        "domains"
    ]
    out = {}
    for name, d in raw.items():
        targets = d.get("lora_targets", ())
        out[name] = BaseModelSpec(
            name,
            d["kind"],
            d["base"],
            bool(d["trainable"]),
            tuple(targets) if isinstance(targets, list) else targets,
        )
    return out


def spec_for(domain: str) -> BaseModelSpec:
    reg = registry()
    if domain not in reg:
        raise KeyError(f"no base model registered for domain {domain!r}; known: {', '.join(sorted(reg))}")
    return reg[domain]


def causal_lm_lora(model_path: str, r: int = 8):
    """Load a causal LM from a local path and wrap it with LoRA on its attention projections."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True)
    names = {n.split(".")[-1] for n, _ in model.named_modules()}
    targets = [
        t
        for t in ("q_proj", "k_proj", "v_proj", "o_proj", "c_attn", "c_proj", "query", "value")
        if t in names
    ]
    if not targets:
        raise ValueError(f"no attention projection found in {model_path} to attach LoRA to")
    return get_peft_model(
        model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets, task_type="CAUSAL_LM")
    )
