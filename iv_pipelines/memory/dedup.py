"""Conflict-aware de-duplication of playbook bullets.

Two bullets are the same advice only if they are near-identical in wording AND state the
same numbers AND have the same polarity. Cosine alone would merge "batch x100" with
"batch x1000", or "use LoRA" with "do not use LoRA", which say different things.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_NUM = re.compile(r"(?<![A-Za-z])[x×]?\d+(?:[.,]\d+)?\s*(?:%|ms|s|hz|mhz|ghz|mb|gb|x)?", re.IGNORECASE)
_NEG = re.compile(r"\b(?:no|not|never|without|avoid|don't|do not|cannot|can't|nor|neither)\b", re.IGNORECASE)
_TOK = re.compile(r"[a-z0-9]+")


def numbers(text: str) -> tuple[str, ...]:
    """Numbers with their units/multipliers, normalised ("x100", "2%", "500ms")."""
    return tuple(
        sorted(
            m.group(0).lower().replace(" ", "").replace("×", "x").replace(",", ".")
            for m in _NUM.finditer(text)
        )
    )


def negated(text: str) -> bool:
    """Odd number of negation cues = negative polarity."""
    return len(_NEG.findall(text)) % 2 == 1


def jaccard(a: str, b: str) -> float:
    ta, tb = set(_TOK.findall(a.lower())), set(_TOK.findall(b.lower()))
    return len(ta & tb) / max(1, len(ta | tb))


def near_duplicate(
    a: str, b: str, similarity: Callable[[str, str], float] = jaccard, threshold: float = 0.85
) -> bool:
    if numbers(a) != numbers(b) or negated(a) != negated(b):
        return False
    return similarity(a, b) >= threshold
