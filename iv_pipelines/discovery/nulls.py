"""The declared null set: texts a calibrated score must beat (DESIGN §5).

Four kinds, each a way a "hypothesis" can look plausible to an embedding score while being
worthless:
- `off_topic`: fluent sentences about nothing the request asks;
- `keyword_salad`: the request's own content words, shuffled (parroting, no idea added);
- `memory_paraphrase`: a lightly reworded item already in memory (nothing new);
- `unconditioned`: generator output that never saw the request (random domain, no grounding).
"""

from __future__ import annotations

import random
import re

from iv_pipelines.discovery.generator import TemplateGenerator
from iv_pipelines.discovery.knowledge import offtopic_sentences
from iv_pipelines.embedding import STOP_WORDS

NULL_KINDS = ("off_topic", "keyword_salad", "memory_paraphrase", "unconditioned")
_WORDS = re.compile(r"[A-Za-z0-9%][A-Za-z0-9%\-]*")


def off_topic(rng: random.Random) -> str:
    return " ".join(rng.sample(offtopic_sentences(), rng.randint(1, 3)))


def keyword_salad(request_text: str, rng: random.Random) -> str:
    words = [w for w in _WORDS.findall(request_text) if w.lower() not in STOP_WORDS]
    k = max(3, int(len(words) * rng.uniform(0.5, 1.0)))
    picked = rng.sample(words, min(k, len(words)))
    rng.shuffle(picked)
    return " ".join(picked)


def paraphrase(text: str, rng: random.Random) -> str:
    """A light rewording: sentence order shuffled, ~15% of non-initial words dropped."""
    sentences = [s for s in re.split(r"(?<=[.;])\s+", text) if s]
    rng.shuffle(sentences)
    out = []
    for s in sentences:
        words = s.split()
        kept = [w for i, w in enumerate(words) if i == 0 or rng.random() > 0.15]
        out.append(" ".join(kept))
    return " ".join(out)


def memory_paraphrase(memory_texts: list[str], rng: random.Random) -> str:
    return paraphrase(rng.choice(memory_texts), rng)


def null_texts(
    request_text: str, memory_texts: list[str], n_per_kind: int, rng: random.Random
) -> list[tuple[str, str]]:
    """(kind, text) pairs: `n_per_kind` of each kind (memory paraphrases only if memory exists)."""
    gen = TemplateGenerator()
    out: list[tuple[str, str]] = []
    for _ in range(n_per_kind):
        out.append(("off_topic", off_topic(rng)))
        out.append(("keyword_salad", keyword_salad(request_text, rng)))
        if memory_texts:
            out.append(("memory_paraphrase", memory_paraphrase(memory_texts, rng)))
        out.append(("unconditioned", gen.unconditioned(rng).text))
    return out
