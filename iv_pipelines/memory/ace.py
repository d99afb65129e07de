"""ACE (Agentic Context Engineering) memory: a playbook with incremental deltas.

Tables (SQLAlchemy; SQLite embedded, PostgreSQL in production):
- `ace_bullets`: playbook advice per domain with helpful/harmful counters;
- `ace_attempts`: every scored hypothesis attempt (DAC, iteration, scores, pass/fail);
- `ace_requests`: the request text of each DAC whose attempts are recorded, so the novelty
  bank can find the earlier delivery nearest to a new request (`scoring/novelty.py`).

The loop follows ACE: the *generator* proposes (discovery), the *reflector* turns an
evolution trace into candidate deltas (`reflect`), the *curator* merges deltas into the
playbook (`curate`): counters are updated in place, new advice is added only when no
near-duplicate exists (`memory/dedup.py`). Deltas are applied in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from iv_pipelines.memory.dedup import jaccard, near_duplicate

metadata = sa.MetaData()

bullets = sa.Table(
    "ace_bullets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("domain", sa.String(63), nullable=False, index=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("helpful", sa.Integer, nullable=False, default=0),
    sa.Column("harmful", sa.Integer, nullable=False, default=0),
    sa.Column("source_dac", sa.String(63), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

attempts = sa.Table(
    "ace_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dac_id", sa.String(63), nullable=False, index=True),
    sa.Column("domain", sa.String(63), nullable=False, index=True),
    sa.Column("iteration", sa.Integer, nullable=False),
    sa.Column("hypothesis_id", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("scores", sa.Text, nullable=False),  # JSON: raw + percentiles
    sa.Column("validation_score", sa.Float, nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("guidance", sa.Text, nullable=False),  # JSON list of bullet texts applied
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

requests = sa.Table(
    "ace_requests",
    metadata,
    sa.Column("dac_id", sa.String(63), primary_key=True),
    sa.Column("domain", sa.String(63), nullable=False, index=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Delivery:
    """A DAC of the domain whose hypothesis search validated at least one hypothesis."""

    dac_id: str
    request_text: str | None  # None: recorded before requests were kept (not comparable)
    validated: tuple[str, ...]  # best validation score first


@dataclass(frozen=True)
class Bullet:
    id: int
    domain: str
    text: str
    helpful: int
    harmful: int
    source_dac: str | None

    @property
    def net(self) -> int:
        return self.helpful - self.harmful


@dataclass(frozen=True)
class Delta:
    """One curator operation: add advice, or count an existing bullet helpful/harmful."""

    op: str  # "add" | "helpful" | "harmful"
    domain: str
    text: str


@dataclass(frozen=True)
class Attempt:
    iteration: int
    hypothesis_id: str
    text: str
    scores: dict
    validation_score: float
    passed: bool
    guidance: tuple[str, ...]
    approach: str = ""
    task: str = ""


def _now() -> datetime:
    return datetime.now(UTC)


class AceMemory:
    def __init__(self, url: str, similarity: Callable[[str, str], float] = jaccard):
        self.url = url
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
        self.engine = sa.create_engine(url, connect_args=connect_args)
        self.similarity = similarity
        metadata.create_all(self.engine)

    # -- reading --------------------------------------------------------------------------
    def bullets(self, domain: str | None = None) -> list[Bullet]:
        q = sa.select(bullets).order_by(bullets.c.id)
        if domain:
            q = q.where(bullets.c.domain == domain)
        with self.engine.connect() as c:
            return [Bullet(r.id, r.domain, r.text, r.helpful, r.harmful, r.source_dac) for r in c.execute(q)]

    def guidance(self, domain: str, k: int = 5, exclude_dac: str | None = None) -> list[str]:
        """Top-k advice for a domain by net helpfulness (bullets with net < 0 are not advice).

        Bullets learned from `exclude_dac` are left out so re-materializing a DAC sees the
        same playbook it saw the first time (idempotent runs).
        """
        rows = [
            b
            for b in self.bullets(domain)
            if b.net >= 0 and (exclude_dac is None or b.source_dac != exclude_dac)
        ]
        rows.sort(key=lambda b: (-b.net, b.id))
        return [b.text for b in rows[:k]]

    def deliveries(self, domain: str, exclude_dac: str | None = None) -> list[Delivery]:
        """The domain's DACs with validated hypotheses, each with its request text (by DAC id)."""
        texts = self.validated_by_dac(domain, exclude_dac)
        q = sa.select(requests.c.dac_id, requests.c.text).where(requests.c.dac_id.in_(list(texts)))
        with self.engine.connect() as c:
            req = {r.dac_id: r.text for r in c.execute(q)} if texts else {}
        return [Delivery(d, req.get(d), tuple(t)) for d, t in sorted(texts.items())]

    def validated_by_dac(self, domain: str, exclude_dac: str | None = None) -> dict[str, list[str]]:
        """Each DAC's validated hypothesis texts, best validation score first."""
        q = (
            sa.select(attempts.c.dac_id, attempts.c.text)
            .where(attempts.c.domain == domain, attempts.c.passed.is_(True))
            .order_by(attempts.c.dac_id, attempts.c.validation_score.desc(), attempts.c.text)
        )
        if exclude_dac:
            q = q.where(attempts.c.dac_id != exclude_dac)
        out: dict[str, list[str]] = {}
        with self.engine.connect() as c:
            for r in c.execute(q):
                texts = out.setdefault(r.dac_id, [])
                if r.text not in texts:
                    texts.append(r.text)
        return out

    def attempts_for(self, dac_id: str) -> list[dict]:
        q = (
            sa.select(attempts)
            .where(attempts.c.dac_id == dac_id)
            .order_by(attempts.c.iteration, attempts.c.id)
        )
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(q)]

    # -- writing --------------------------------------------------------------------------
    def record_attempts(
        self, dac_id: str, domain: str, trace: list[Attempt], request_text: str | None = None
    ) -> None:
        """Replace this DAC's attempt log (and its request text, when given) with `trace` in
        one transaction (idempotent re-runs)."""
        now = _now()
        with self.engine.begin() as c:
            c.execute(sa.delete(attempts).where(attempts.c.dac_id == dac_id))
            if request_text is not None:
                c.execute(sa.delete(requests).where(requests.c.dac_id == dac_id))
                c.execute(
                    sa.insert(requests),
                    [{"dac_id": dac_id, "domain": domain, "text": request_text, "recorded_at": now}],
                )
            if trace:
                c.execute(
                    sa.insert(attempts),
                    [
                        {
                            "dac_id": dac_id,
                            "domain": domain,
                            "iteration": a.iteration,
                            "hypothesis_id": a.hypothesis_id,
                            "text": a.text,
                            "scores": json.dumps(a.scores, sort_keys=True),
                            "validation_score": float(a.validation_score),
                            "passed": bool(a.passed),
                            "guidance": json.dumps(list(a.guidance)),
                            "created_at": now,
                        }
                        for a in trace
                    ],
                )

    def curate(self, deltas: list[Delta], source_dac: str | None = None) -> dict[str, int]:
        """Apply deltas in one transaction; returns counts of added/merged/helpful/harmful."""
        counts = {"added": 0, "merged": 0, "helpful": 0, "harmful": 0}
        now = _now()
        with self.engine.begin() as c:
            existing = {
                r.id: r.text for r in c.execute(sa.select(bullets.c.id, bullets.c.text, bullets.c.domain))
            }
            domains = {r.id: r.domain for r in c.execute(sa.select(bullets.c.id, bullets.c.domain))}
            for d in deltas:
                match = next(
                    (
                        i
                        for i, t in existing.items()
                        if domains[i] == d.domain and near_duplicate(t, d.text, self.similarity)
                    ),
                    None,
                )
                if d.op == "add":
                    if match is not None:
                        c.execute(
                            sa.update(bullets)
                            .where(bullets.c.id == match)
                            .values(helpful=bullets.c.helpful + 1, updated_at=now)
                        )
                        counts["merged"] += 1
                        continue
                    new_id = c.execute(
                        sa.insert(bullets).values(
                            domain=d.domain,
                            text=d.text,
                            helpful=1,
                            harmful=0,
                            source_dac=source_dac,
                            created_at=now,
                            updated_at=now,
                        )
                    ).inserted_primary_key[0]
                    existing[new_id] = d.text
                    domains[new_id] = d.domain
                    counts["added"] += 1
                elif d.op in ("helpful", "harmful"):
                    if match is None:
                        continue
                    col = bullets.c.helpful if d.op == "helpful" else bullets.c.harmful
                    c.execute(
                        sa.update(bullets)
                        .where(bullets.c.id == match)
                        .values({col.name: col + 1, "updated_at": now})
                    )
                    counts[d.op] += 1
                else:
                    raise ValueError(f"unknown delta op {d.op!r}; use add, helpful or harmful")
        return counts


def reflect(
    domain: str, trace: list[Attempt], weakest: Callable[[Attempt], str] | None = None
) -> list[Delta]:
    """Reflector: turn an evolution trace into playbook deltas.

    - the best passing attempt yields advice "For <task>, <approach> passed validation";
    - guidance bullets applied in passing attempts count helpful, in failing attempts harmful;
    - each failing attempt names its weakest operator as a caution, once per operator.
    """
    deltas: list[Delta] = []
    passing = [a for a in trace if a.passed]
    if passing:
        best = max(passing, key=lambda a: a.validation_score)
        if best.task and best.approach:
            deltas.append(Delta("add", domain, f"For {best.task}, {best.approach} passed validation"))
    for a in trace:
        for g in a.guidance:
            deltas.append(Delta("helpful" if a.passed else "harmful", domain, g))
    if weakest is not None:
        seen = set()
        for a in trace:
            if a.passed:
                continue
            op = weakest(a)
            if op not in seen:
                seen.add(op)
                deltas.append(Delta("add", domain, CAUTIONS.get(op, f"Candidates failed on {op}")))
    return deltas


CAUTIONS = {
    "AROE": "State the client's request explicitly: hypotheses far from the request fail alignment",
    "AESP": "Avoid repetitive wording: degenerate hypotheses fail the spectral-entropy check",
    "QERO": "Ground the hypothesis in the site facts and environment of the request",
    "AIEO": "Do not restate the request or an earlier hypothesis: add a concrete method and data",
}
