"""Monthly security audit: every package re-reviewed (AI Shield policies + provenance), and
the factory's own dependencies audited for pins and licences.

- pins: the Dagster family must be pinned exactly (`==`), with core and integrations in step
  (1.x.N <-> 0.(x+16).N); the betas web3 needs too (see pyproject); any other requirement
  must at least carry a version bound;
- licences: every installed distribution's licence (License-Expression, License, or the
  classifier) must map to an allow-listed SPDX family; unknown or copyleft ones are listed
  for a human decision (GPL tools run only as separate processes: see NOTICE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

EXACT = (
    "dagster",
    "dagster-webserver",
    "dagster-graphql",
    "dagster-dg-cli",
    "dagster-postgres",
    "dagster-k8s",
    "dagster-docker",
    "web3",
    "eth-tester",
    "py-evm",
    "torch",
    "peft",
    "vyper",
)
PERMISSIVE = (
    "apache",
    "mit",
    "bsd",
    "isc",
    "psf",
    "python-2.0",
    "python software foundation",
    "mpl-2.0",
    "mozilla public license 2.0",
    "unlicense",
    "zlib",
    "cc0",
    "hpnd",
    "0bsd",
    "public domain",
)


@dataclass
class DependencyAudit:
    unpinned: list[str] = field(default_factory=list)
    not_exact: list[str] = field(default_factory=list)
    unknown_licence: dict[str, str] = field(default_factory=dict)
    copyleft: dict[str, str] = field(default_factory=dict)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not (self.unpinned or self.not_exact)


def requirement_problems(requirements: list[str]) -> tuple[list[str], list[str]]:
    unpinned, not_exact = [], []
    for req in requirements:
        name = re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower()
        spec = req[len(name) :]
        if not re.search(r"[<>=~]=?|===", spec):
            unpinned.append(req)
        elif name in EXACT and "==" not in spec:
            not_exact.append(req)
    return unpinned, not_exact


def licence_of(dist: metadata.Distribution) -> str:
    md = dist.metadata
    for key in ("License-Expression", "License"):
        v = (md.get(key) or "").strip()
        if v and v.upper() != "UNKNOWN" and len(v) < 200:
            return v
    classifiers = [
        c.split("::")[-1].strip() for c in md.get_all("Classifier") or [] if c.startswith("License ::")
    ]
    return "; ".join(classifiers)


def audit_dependencies(pyproject: Path) -> DependencyAudit:
    import tomllib

    doc = tomllib.loads(Path(pyproject).read_text())
    reqs = list(doc["project"]["dependencies"]) + [
        r for extra in doc["project"].get("optional-dependencies", {}).values() for r in extra
    ]
    out = DependencyAudit()
    out.unpinned, out.not_exact = requirement_problems(reqs)
    for dist in metadata.distributions():
        name = dist.metadata.get("Name") or "?"
        lic = licence_of(dist)
        out.checked += 1
        low = lic.lower()
        if not lic:
            out.unknown_licence[name] = "(none declared)"
        elif re.search(r"\b(a?gpl|lgpl)", low) and not any(p in low for p in ("apache", "mit", "bsd")):
            out.copyleft[name] = lic
        elif not any(p in low for p in PERMISSIVE):
            out.unknown_licence[name] = lic
    return out
