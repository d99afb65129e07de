"""A structured hypothesis: what the DAC will do, how, on what data, judged by what."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class Hypothesis:
    domain: str
    task: str
    approach: str
    data: str
    target_metric: str
    risk: str
    grounding: str = ""  # request/environment specifics woven into the text
    guidance: tuple[str, ...] = field(default_factory=tuple)  # ACE playbook bullets applied
    origin: str = "template"  # generator backend, "mutation", "crossover", or a null kind
    text_override: str | None = None  # free-text hypotheses (LLM backends, null generators)

    @property
    def text(self) -> str:
        if self.text_override is not None:
            return self.text_override
        parts = [f"Hypothesis: {self.task} using {self.approach}, trained on {self.data}."]
        if self.grounding:
            parts.append(self.grounding)
        parts.append(f"Success is measured by {self.target_metric}; the main risk is that {self.risk}.")
        for g in self.guidance:
            parts.append(f"Playbook: {g}")
        return " ".join(parts)

    @property
    def id(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]

    def with_(self, **changes) -> Hypothesis:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["text"] = self.text
        d["id"] = self.id
        d["guidance"] = list(self.guidance)
        return d
