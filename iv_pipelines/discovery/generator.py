"""Hypothesis generators and the requester simulator.

`TemplateGenerator` (the embedded default) composes structured hypotheses from the shipped
knowledge base, the request (its text, environment and constraints) and ACE playbook
guidance. Its task is one the request asks for (`request_tasks`); the other fields range over
the domain. It is deterministic for a seed. Every candidate differs in at least one structured
field, so the OBMI scores differ between candidates.

The `transformers` and `openai` backends (LLM-written hypotheses) live in `llm.py`.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache
from typing import Protocol

from iv_pipelines.discovery.hypothesis import Hypothesis
from iv_pipelines.discovery.knowledge import Domain, knowledge_base
from iv_pipelines.request import DacRequest, EnvironmentSpec

_WORD = re.compile(r"[a-z]{3,}")


def resolve_domain(request: DacRequest) -> Domain:
    """The knowledge-base domain for a request: exact name, else most shared words."""
    kb = knowledge_base()
    if request.domain in kb:
        return kb[request.domain]
    words = set(_WORD.findall((request.domain + " " + request.text).lower()))

    def overlap(d: Domain) -> int:
        vocab = set(_WORD.findall(" ".join((d.name, d.title, *d.tasks, *d.facts)).lower()))
        return len(words & vocab)

    return max(kb.values(), key=lambda d: (overlap(d), d.name))


TASK_MARGIN = 0.1  # a task within this sentence cosine of the best-aligned one counts as asked for


def named_tasks(domain: Domain, request_text: str) -> list[str]:
    """The domain's tasks the request names: a word of the request starts with one of the
    task's words in the knowledge base (`task_words`: "fall" names fall detection and the
    activity recognition that includes falling)."""
    text = request_text.lower()
    return [
        t
        for t in domain.tasks
        if any(re.search(r"(?<![a-z0-9])" + re.escape(w), text) for w in domain.words_of(t))
    ]


def request_tasks(domain: Domain, request_text: str, embedder) -> list[str]:
    """The domain's tasks a request asks for: those it names (`named_tasks`); when it names
    none, those within TASK_MARGIN sentence cosine of the task best aligned with the request.
    The cosine alone is too blunt to be the rule: a whole request's sentence vector sits about
    as close to "presence detection in a room" as to "fall detection from CSI windows" for
    some fall-detection requests (examples/requests/clients/04, tests/test_generator.py)."""
    import numpy as np

    named = named_tasks(domain, request_text)
    if named:
        return named
    v = np.asarray(embedder.sentences([request_text, *domain.tasks]), dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    cos = v[1:] @ v[0]
    return [t for t, c in zip(domain.tasks, cos, strict=True) if c >= float(cos.max()) - TASK_MARGIN]


@lru_cache(maxsize=512)
def asked_tasks(domain_name: str, request_text: str) -> tuple[str, ...]:
    """`request_tasks` with the shared embedder, cached: the tasks a generator may propose."""
    return tuple(request_tasks(knowledge_base()[domain_name], request_text, _task_embedder()))


@lru_cache(maxsize=1)
def _task_embedder():
    from iv_pipelines.embedding import MiniLMEmbedder

    return MiniLMEmbedder()


def _first_clause(text: str, limit: int = 140) -> str:
    clause = re.split(r"(?<=[.;:])\s", text.strip())[0].rstrip(".;:")
    return clause if len(clause) <= limit else clause[:limit].rsplit(" ", 1)[0]


def grounding_phrases(request: DacRequest) -> list[str]:
    """Request-specific phrases a conditioned hypothesis may weave in."""
    c = request.constraints
    out = [f"It answers {request.client_id}'s request to {_first_clause(request.text).lower()}"]
    out.append(
        f"It is tailored to the client environment: {_first_clause(request.environment.description).lower()}"
    )
    if c.max_latency_ms:
        out.append(f"Inference must respond within {c.max_latency_ms:g} ms")
    if c.max_false_alarm_rate is not None:
        out.append(f"False alarms must stay below {100 * c.max_false_alarm_rate:g}%")
    if c.min_accuracy is not None:
        out.append(f"Held-out accuracy must reach {100 * c.min_accuracy:g}%")
    if c.min_fall_recall is not None:
        out.append(f"Fall recall must reach {100 * c.min_fall_recall:g}%")
    if c.max_memory_mb:
        out.append(f"The capsule must fit in {c.max_memory_mb} MB of memory")
    return out


class HypothesisGenerator(Protocol):
    name: str

    def propose(
        self, request: DacRequest, n: int, seed: int, guidance: list[str] | None = None
    ) -> list[Hypothesis]: ...

    def mutate(
        self, parent: Hypothesis, request: DacRequest, rng: random.Random, guidance: list[str] | None = None
    ) -> Hypothesis: ...


class TemplateGenerator:
    """Composes hypotheses from the knowledge base; deterministic per seed."""

    name = "template"

    def _compose(
        self, domain: Domain, request: DacRequest | None, rng: random.Random, guidance: list[str]
    ) -> Hypothesis:
        grounding = ""
        if request is not None:
            phrases = grounding_phrases(request)
            k = rng.randint(1, len(phrases))
            grounding = ". ".join(rng.sample(phrases, k)) + "."
        applied = tuple(rng.sample(guidance, min(len(guidance), rng.randint(0, 2)))) if guidance else ()
        return Hypothesis(
            domain=domain.name,
            # a request's hypotheses propose only the tasks it asks for; with no request (a null),
            # any task of the domain
            task=rng.choice(asked_tasks(domain.name, request.text) if request is not None else domain.tasks),
            approach=rng.choice(domain.approaches),
            data=rng.choice(domain.data),
            target_metric=rng.choice(domain.metrics),
            risk=rng.choice(domain.risks),
            grounding=grounding,
            guidance=applied,
            origin=self.name,
        )

    def propose(
        self, request: DacRequest, n: int, seed: int, guidance: list[str] | None = None
    ) -> list[Hypothesis]:
        rng = random.Random(f"{seed}:{request.digest()}")
        domain = resolve_domain(request)
        out: dict[str, Hypothesis] = {}
        attempts = 0
        while len(out) < n and attempts < 50 * n:
            h = self._compose(domain, request, rng, list(guidance or []))
            out.setdefault(h.id, h)
            attempts += 1
        return list(out.values())

    def unconditioned(self, rng: random.Random) -> Hypothesis:
        """Output with no request: a random domain, no grounding (a calibration null)."""
        domain = rng.choice(sorted(knowledge_base().values(), key=lambda d: d.name))
        return self._compose(domain, None, rng, []).with_(origin="null:unconditioned")

    def mutate(
        self, parent: Hypothesis, request: DacRequest, rng: random.Random, guidance: list[str] | None = None
    ) -> Hypothesis:
        """Rewrite one or two structured fields; with guidance, apply a playbook bullet."""
        domain = knowledge_base().get(parent.domain) or resolve_domain(request)
        fields = {
            "task": asked_tasks(domain.name, request.text),
            "approach": domain.approaches,
            "data": domain.data,
            "target_metric": domain.metrics,
            "risk": domain.risks,
        }
        changes: dict = {}
        for f in rng.sample(list(fields), rng.randint(1, 2)):
            options = [o for o in fields[f] if o != getattr(parent, f)] or list(fields[f])
            changes[f] = rng.choice(options)
        if rng.random() < 0.5:
            phrases = grounding_phrases(request)
            changes["grounding"] = ". ".join(rng.sample(phrases, rng.randint(1, len(phrases)))) + "."
        if guidance and rng.random() < 0.7:
            changes["guidance"] = tuple(dict.fromkeys((*parent.guidance, rng.choice(guidance))))[-2:]
        return parent.with_(**changes, origin="mutation")


def crossover(a: Hypothesis, b: Hypothesis, rng: random.Random) -> Hypothesis:
    """Uniform crossover of the structured fields of two parents of the same domain."""
    picks = {
        f: getattr(a if rng.random() < 0.5 else b, f)
        for f in ("task", "approach", "data", "target_metric", "risk", "grounding", "guidance")
    }
    return a.with_(**picks, origin="crossover")


class RequesterSimulator:
    """Simulates the client side: realistic requests for evaluation and calibration batches.

    This is what UserLM-8b is for (it simulates users); the template backend composes
    requests from the knowledge base so every domain gets requests with varied wording.
    """

    name = "template"
    _OPENERS = ("We need", "Please build", "Our team wants", "We are looking for", "Deliver")
    _CLIENTS = (
        "northwind",
        "contoso",
        "fabrikam",
        "tailspin",
        "wingtip",
        "adventure",
        "litware",
        "proseware",
    )

    def requests(self, n_per_domain: int, seed: int) -> list[DacRequest]:
        rng = random.Random(seed)
        out = []
        for domain in sorted(knowledge_base().values(), key=lambda d: d.name):
            for i in range(n_per_domain):
                task = rng.choice(domain.tasks)
                metric = rng.choice(domain.metrics)
                client = f"{rng.choice(self._CLIENTS)}-{domain.name.split('-')[0]}"
                text = (
                    f"{rng.choice(self._OPENERS)} {task} for our {domain.title.lower()} operations; "
                    f"we will judge it by {metric}."
                )
                env = rng.choice(domain.facts)
                out.append(
                    DacRequest(
                        dac_id=f"sim-{domain.name}-{i}"[:63].rstrip("-"),
                        client_id=client,
                        domain=domain.name,
                        text=text,
                        environment=EnvironmentSpec(description=f"Site where {env}"),
                    )
                )
        return out
