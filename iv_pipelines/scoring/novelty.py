"""The novelty bank: what a new request's hypotheses must be novel against (AIEO).

`score_calibration` builds its null set with the hypotheses of *one* other request of the
same domain as memory (`MEMORY_PER_REQUEST`, 3 texts). The live bank matches that: the 3 best
validated hypotheses of the earlier delivery whose request is nearest to this one (cosine of
the request sentences, the embedder AIEO uses); when several earlier deliveries tie (copies of
a word-for-word identical request), still 3 texts: each copy's winner first, then their
runners-up, round-robin. (Until 2026-12-07 every copy contributed 3, so a request's third copy
met 6 texts where the calibration's nulls meet 3, and two of them stopped at the gate in
`bench/load.py`.)
Comparing with *every* validated hypothesis of the domain instead made the score fall as a
factory delivered more DACs (max over a growing set only grows), until equally fitting
hypotheses of new clients stopped at the gate (docs/lifecycle.md, *Discovery*).

A repeat of an earlier request still meets that request's validated hypotheses (the winners of
up to 3 earlier copies), so it must propose something the earlier DACs did not.
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

    @property
    def repeat_of(self) -> list[str]:
        """The earlier DACs whose request this one repeats word for word (none if it does not)."""
        return list(self.dacs) if self.similarity is not None and self.similarity >= 1.0 - TIE else []

    def repeat_hint(self) -> str:
        """What to do when a repeat stops at the gate ("" when the request is not a repeat)."""
        if not self.repeat_of:
            return ""
        return (
            f"the request repeats {', '.join(self.repeat_of)} word for word and must propose something "
            "they did not: re-run validated_hypothesis with another evolution `seed` in its config "
            "(bench/repeat_requests.py: near the threshold, the seed decides) or reword the request"
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
    # as many texts as the calibration's memory holds, however many copies of a request came
    # before: round-robin over the copies' best-first lists, so each copy's winner comes first
    texts: list[str] = []
    for rank in range(MEMORY_PER_REQUEST):
        for d in near:
            if rank < len(d.validated) and d.validated[rank] not in texts and len(texts) < MEMORY_PER_REQUEST:
                texts.append(d.validated[rank])
    texts.sort()
    return NoveltyBank(texts, [d.dac_id for d in near], best, len(known), unrecorded)
