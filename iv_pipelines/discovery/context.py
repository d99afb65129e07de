"""The grounding context a hypothesis is scored against (QERO).

Today: the request's environment description plus the domain's facts from the knowledge
base. When the Shadow Twin runs, its context facts are appended (`extra_facts`).
"""

from __future__ import annotations

from iv_pipelines.discovery.generator import resolve_domain
from iv_pipelines.request import DacRequest


def context_text(request: DacRequest, extra_facts: list[str] | None = None) -> str:
    domain = resolve_domain(request)
    parts = [request.environment.description.rstrip(".") + "."]
    parts += [f.rstrip(".") + "." for f in (*domain.facts, *(extra_facts or []))]
    return " ".join(parts)
