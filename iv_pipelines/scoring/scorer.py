"""Raw OBMI scores for hypothesis texts against one request, context and memory.

The memory bank used for novelty (AIEO) is the novelty bank (`novelty.py`: the best validated
hypotheses of the nearest earlier delivery, from ACE memory) *plus the request itself*: a
hypothesis must add something beyond restating what is already known, so parroting the
request (a keyword salad) is as unoriginal as repeating a memory item.

AIEO compares what a hypothesis *proposes*: its text and every bank text are embedded with the
knowledge base's task phrases removed (`proposal_text`). A factory delivering one product
repeats the task by design; with the task in the text, a hypothesis of another task ("breathing-
rate estimation" for a fall-detection request) looked novel for that alone and won
(docs/lifecycle.md, *Discovery*). Whether a hypothesis answers the task asked for is AROE's
business (alignment with the request) and the generator's (it proposes only those tasks).
The request in the bank stays whole: a hypothesis that restates it is still unoriginal.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from iv_pipelines.discovery.knowledge import task_phrases
from iv_pipelines.embedding import MiniLMEmbedder
from iv_pipelines.scoring import obmi


@lru_cache(maxsize=1)
def _task_pattern() -> re.Pattern:
    return re.compile("|".join(re.escape(t) for t in task_phrases()), re.IGNORECASE)


def proposal_text(text: str) -> str:
    """`text` with every knowledge-base task phrase removed: what AIEO compares."""
    return re.sub(r"\s{2,}", " ", _task_pattern().sub("", text)).strip()


class ObmiScorer:
    """Batched raw scores (n, 4) in the order of `obmi.OPERATORS` (AROE, AESP, QERO, AIEO)."""

    def __init__(
        self,
        embedder: MiniLMEmbedder,
        device: str = "cpu",
        use_triton: bool | None = None,
        precision: str = "fp32",
    ):
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision {precision!r} must be 'fp32' or 'bf16'")
        self.embedder = embedder
        self.device = device
        self.precision = precision
        # Triton kernels only on CUDA; the torch path is the CPU implementation.
        self.use_triton = (device.startswith("cuda")) if use_triton is None else use_triton

    def raw_scores(self, hypotheses: list[str], request: str, context: str, memory: list[str]) -> np.ndarray:
        import torch

        if not hypotheses:
            return np.zeros((0, len(obmi.OPERATORS)), dtype=np.float32)
        hs = self.embedder.embed(hypotheses)
        req, ctx = self.embedder.embed([request, context])
        novel = self.embedder.sentences([proposal_text(t) for t in hypotheses])
        bank = np.concatenate(
            [self.embedder.sentences([proposal_text(t) for t in memory]), req.sentence[None, :]], axis=0
        )
        b = len(hs)
        dev = self.device
        h_sent = torch.from_numpy(np.stack([e.sentence for e in hs])).to(dev)
        n_sent = torch.from_numpy(np.ascontiguousarray(novel, dtype=np.float32)).to(dev)
        r_sent = torch.from_numpy(req.sentence).to(dev).expand(b, -1)
        h = obmi.TokenBatch.from_list([e.tokens for e in hs], dev)
        r = obmi.TokenBatch.from_list([req.tokens], dev).expand(b)  # shared: broadcast, not copied
        c = obmi.TokenBatch.from_list([ctx.tokens], dev).expand(b)
        mem = torch.from_numpy(np.ascontiguousarray(bank, dtype=np.float32)).to(dev)
        dtype = torch.bfloat16 if self.precision == "bf16" else None
        raw = obmi.all_operators(
            h_sent, r_sent, h, r, c, mem, self._qero, self._aieo, matmul_dtype=dtype, novelty_sent=n_sent
        )
        return raw.float().cpu().numpy()

    def _qero(self, h, c):
        if self.use_triton:
            from iv_kernels.qero_mi import qero_triton
            from iv_pipelines.scoring.reference import QERO_DUSTBIN, QERO_TAU

            return qero_triton(h, c, QERO_TAU, QERO_DUSTBIN)
        return obmi.qero(h, c)

    def _aieo(self, h_sent, mem):
        if self.use_triton:
            from iv_kernels.novelty import novelty_triton

            return novelty_triton(h_sent, mem)
        return obmi.aieo(h_sent, mem)
