"""Errors that name what is wrong with a user's input.

Every rejected request, manifest or file ends in one of these, whose message names the
field (as a dotted path) and the rule it broke, e.g.
`validation.obmi_scores.AROE: Input should be less than or equal to 1 (got 1.3)`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

# Regular expressions are unreadable in an error message: a pattern registered here is
# reported by its human description instead ("must be a semantic version such as 1.2.3").
_PATTERN_RULES: dict[str, str] = {}


def register_pattern(pattern: str, rule: str) -> None:
    _PATTERN_RULES[pattern] = rule


class InputError(ValueError):
    """A user-supplied document failed validation; `problems` lists one line per fault."""

    def __init__(self, what: str, problems: list[str]):
        self.what = what
        self.problems = problems
        super().__init__(f"{what} is invalid:\n" + "\n".join(f"  - {p}" for p in problems))


def _loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(document)"


def _shorten(value: Any, limit: int = 60) -> str:
    """A short repr of a user's value. Bounded before formatting (reprlib): a repr of the whole
    value first was how a 797-byte YAML bomb, expanded to gigabytes, took a minute to reject."""
    import reprlib

    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlist, r.maxdict, r.maxlevel = limit, limit, 4, 4, 2
    text = r.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_validation_error(err: ValidationError) -> list[str]:
    """One line per pydantic error: `field.path: rule (got value)`."""
    lines = []
    for e in err.errors(include_url=False):
        field = _loc(tuple(e.get("loc", ())))
        msg = e.get("msg", "invalid")
        if e.get("type") == "missing":
            lines.append(f"{field}: field required")
        elif e.get("type") == "extra_forbidden":
            lines.append(f"{field}: unknown field (not in the schema)")
        elif e.get("type") == "string_pattern_mismatch":
            pattern = (e.get("ctx") or {}).get("pattern", "")
            rule = _PATTERN_RULES.get(pattern)
            rule = f"must be {rule}" if rule else msg
            lines.append(f"{field}: {rule} (got {_shorten(e.get('input'))})")
        elif "input" in e and not isinstance(e["input"], dict):
            lines.append(f"{field}: {msg} (got {_shorten(e['input'])})")
        else:
            lines.append(f"{field}: {msg}")
    return lines
