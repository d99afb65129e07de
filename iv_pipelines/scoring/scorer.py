"""Raw OBMI scores for hypothesis texts against one request, context and memory.

The memory bank used for novelty (AIEO) is the novelty bank (`novelty.py`: the best validated
hypotheses of the nearest earlier delivery, from ACE memory) *plus the request itself*: a
hypothesis must add something beyond restating what is already known, so parroting the
request (a keyword salad) is as unoriginal as repeating a memory item.
"""

from __future__ import annotations

import numpy as np

from iv_pipelines.embedding import MiniLMEmbedder
from iv_pipelines.scoring import obmi


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
        bank = np.concatenate([self.embedder.sentences(memory), req.sentence[None, :]], axis=0)
        b = len(hs)
        dev = self.device
        h_sent = torch.from_numpy(np.stack([e.sentence for e in hs])).to(dev)
        r_sent = torch.from_numpy(req.sentence).to(dev).expand(b, -1)
        h = obmi.TokenBatch.from_list([e.tokens for e in hs], dev)
        r = obmi.TokenBatch.from_list([req.tokens], dev).expand(b)  # shared: broadcast, not copied
        c = obmi.TokenBatch.from_list([ctx.tokens], dev).expand(b)
        mem = torch.from_numpy(bank).to(dev)
        dtype = torch.bfloat16 if self.precision == "bf16" else None
        raw = obmi.all_operators(h_sent, r_sent, h, r, c, mem, self._qero, self._aieo, matmul_dtype=dtype)
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
