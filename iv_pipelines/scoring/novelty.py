"""The novelty bank: what a new request's hypotheses must be novel against (AIEO).

`score_calibration` builds its null set with the hypotheses of *one* other request of the
same domain as memory (`MEMORY_PER_REQUEST`, 3 texts). The live bank matches that: the 3 best
validated hypotheses of the earlier delivery whose request is nearest to this one (cosine of
the request sentences, the embedder AIEO uses), and as many of every other delivery of a
word-for-word identical request.
Comparing with *every* validated hypothesis of the domain instead made the score fall as a
factory delivered more DACs (max over a growing set only grows), until equally fitting
hypotheses of new clients stopped at the gate (docs/lifecycle.md, *Discovery*).

A repeat of an earlier request still meets that request's validated hypotheses, so it must
propose something the earlier DAC did not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from iv_pipelines.memory.ace import Delivery
from iv_pipelines.scoring.calibration import MEMORY_PER_REQUEST

TIE = 1e-6  # identical request texts embed identically; anything closer than this is a tie


@dataclass(frozen=True)
class NoveltyBank:
    texts: list[str] = field(default_factory=list)
    dacs: list[str] = field(default_factory=list)  # the nearest earlier deliveries
    similarity: float | None = None  # cosine of their requests to this one
    compared: int = 0  # earlier deliveries with a recorded request
    unrecorded: int = 0  # validated before requests were recorded: not comparable, left out

    def describe(self) -> str:
        if not self.dacs:
            found = f"{self.compared} earlier deliveries of the domain"
            return f"novelty against the request only ({found}; none to compare with)" + self._left_out()
        return (
            f"novelty against {len(self.texts)} validated hypotheses of {', '.join(self.dacs)} "
            f"(request cosine {self.similarity:.3f}, nearest of {self.compared})" + self._left_out()
        )

    def _left_out(self) -> str:
        return f"; {self.unrecorded} DACs without a recorded request left out" if self.unrecorded else ""


def nearest_delivery(embedder, request_text: str, deliveries: list[Delivery]) -> NoveltyBank:
    known = [d for d in deliveries if d.request_text is not None and d.validated]
    unrecorded = sum(1 for d in deliveries if d.request_text is None)
    if not known:
        return NoveltyBank(compared=0, unrecorded=unrecorded)
    z = embedder.sentences([request_text] + [d.request_text for d in known])
    cos = z[1:] @ z[0]
    best = float(cos.max())
    near = [d for d, c in zip(known, cos, strict=True) if c >= best - TIE]
    texts = sorted({t for d in near for t in d.validated[:MEMORY_PER_REQUEST]})
    return NoveltyBank(texts, [d.dac_id for d in near], best, len(known), unrecorded)
