"""The shipped domain knowledge base (`iv_pipelines/data/domains.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml


@dataclass(frozen=True)
class Domain:
    name: str
    title: str
    facts: tuple[str, ...]
    tasks: tuple[str, ...]
    approaches: tuple[str, ...]
    data: tuple[str, ...]
    metrics: tuple[str, ...]
    risks: tuple[str, ...]
    # per task, the word starts by which a request names it ("fall" names fall detection)
    task_words: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def words_of(self, task: str) -> tuple[str, ...]:
        return dict(self.task_words).get(task, ())


def _read(name: str) -> dict:
    return yaml.safe_load((resources.files("iv_pipelines") / "data" / name).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def knowledge_base() -> dict[str, Domain]:
    raw = _read("domains.yaml")["domains"]
    out = {}
    for name, d in raw.items():
        words = d.get("task_words") or {}
        unknown = sorted(set(words) - set(d["tasks"]))
        if unknown:
            raise ValueError(f"domains.yaml: {name}: task_words names tasks it does not list: {unknown}")
        out[name] = Domain(
            name=name,
            title=d["title"],
            facts=tuple(d["facts"]),
            tasks=tuple(d["tasks"]),
            approaches=tuple(d["approaches"]),
            data=tuple(d["data"]),
            metrics=tuple(d["metrics"]),
            risks=tuple(d["risks"]),
            task_words=tuple((t, tuple(w.lower() for w in words[t])) for t in d["tasks"] if t in words),
        )
    return out


@lru_cache(maxsize=1)
def offtopic_sentences() -> tuple[str, ...]:
    return tuple(_read("offtopic.yaml")["sentences"])


def get_domain(name: str) -> Domain:
    kb = knowledge_base()
    if name not in kb:
        raise KeyError(f"domain {name!r} is not in the knowledge base; known: {', '.join(sorted(kb))}")
    return kb[name]


@lru_cache(maxsize=1)
def task_phrases() -> tuple[str, ...]:
    """Every task of every domain, longest first (so a task containing another goes first)."""
    return tuple(sorted({t for d in knowledge_base().values() for t in d.tasks}, key=lambda t: (-len(t), t)))
