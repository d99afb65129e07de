"""ASI registry: services, their capabilities and instances, health; capability discovery.

SQLAlchemy 2 over SQLite (embedded default) or PostgreSQL (a `postgresql+psycopg2://` URL).
`discover("wifi_sensing AND (fall_detection OR presence) AND zk_proof")` parses the query
(AND binds tighter than OR; parentheses; capability names are [a-z0-9_.-]+), keeps the
services whose capabilities satisfy it and that have a healthy instance, and ranks them by
TTF node cost (E + 0.5 dE_dt + 2 S, floored; see ttf.py), cheapest first.
Health: `record_probe` counts consecutive failed probes per instance; after
`unhealthy_after` failures the instance is marked unhealthy and returned to the caller (the
healing layer replaces it); a successful probe resets the count.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from iv_pipelines.mesh.ttf import node_cost

CAPABILITY_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class QueryError(ValueError):
    """A capability query that does not parse; the message names the position."""


class _Base(DeclarativeBase):
    pass


class Service(_Base):
    __tablename__ = "asi_services"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    provider: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(32))
    E_state: Mapped[float] = mapped_column(Float, default=0.0)
    dE_dt: Mapped[float] = mapped_column(Float, default=0.0)
    S_state: Mapped[float] = mapped_column(Float, default=0.0)
    capabilities: Mapped[list[Capability]] = relationship(
        back_populates="service", cascade="all, delete-orphan"
    )
    instances: Mapped[list[Instance]] = relationship(back_populates="service", cascade="all, delete-orphan")


class Capability(_Base):
    __tablename__ = "asi_capabilities"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("asi_services.id"), index=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    service: Mapped[Service] = relationship(back_populates="capabilities")


class Instance(_Base):
    __tablename__ = "asi_instances"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("asi_services.id"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    healthy: Mapped[bool] = mapped_column(Boolean, default=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_probe: Mapped[str | None] = mapped_column(String(40), nullable=True)
    service: Mapped[Service] = relationship(back_populates="instances")


# --- capability query: OR of ANDs with parentheses ------------------------------------------


def _tokens(q: str) -> list[tuple[str, int]]:
    out = []
    for m in re.finditer(r"\(|\)|[A-Za-z0-9_.-]+|\S", q):
        out.append((m.group(0), m.start()))
    return out


def parse_query(q: str):
    """-> a predicate over a set of capability names."""
    toks = _tokens(q)
    pos = 0

    def peek():
        return toks[pos][0] if pos < len(toks) else None

    def expect_operand():
        nonlocal pos
        if pos >= len(toks):
            raise QueryError(f"query {q!r}: expected a capability or '(' at the end")
        tok, at = toks[pos]
        if tok == "(":
            pos += 1
            inner = or_expr()
            if peek() != ")":
                raise QueryError(f"query {q!r}: missing ')' for the '(' at position {at}")
            pos += 1
            return inner
        if tok.upper() in ("AND", "OR") or not CAPABILITY_RE.match(tok):
            raise QueryError(f"query {q!r}: expected a capability at position {at}, got {tok!r}")
        pos += 1
        return lambda caps, name=tok: name in caps

    def and_expr():
        nonlocal pos
        parts = [expect_operand()]
        while peek() is not None and peek().upper() == "AND":
            pos += 1
            parts.append(expect_operand())
        return lambda caps: all(p(caps) for p in parts)

    def or_expr():
        nonlocal pos
        parts = [and_expr()]
        while peek() is not None and peek().upper() == "OR":
            pos += 1
            parts.append(and_expr())
        return lambda caps: any(p(caps) for p in parts)

    if not toks:
        raise QueryError("query is empty: name at least one capability")
    pred = or_expr()
    if pos != len(toks):
        tok, at = toks[pos]
        raise QueryError(
            f"query {q!r}: unexpected {tok!r} at position {at} (use AND / OR between capabilities)"
        )
    return pred


@dataclass
class Match:
    name: str
    provider: str
    cost: float
    capabilities: list[str]
    healthy_instances: list[str]


class AsiRegistry:
    def __init__(self, url: str):
        self.engine = create_engine(url)
        _Base.metadata.create_all(self.engine)

    def register_service(
        self,
        name: str,
        provider: str,
        category: str,
        capabilities: list[str],
        instances: list[str] = (),
        E_state: float = 0.0,
        dE_dt: float = 0.0,
        S_state: float = 0.0,
    ) -> int:
        """Create or update a service (idempotent by name); returns its id."""
        bad = [c for c in capabilities if not CAPABILITY_RE.match(c)]
        if bad:
            raise ValueError(f"service {name!r}: capability names {bad} must match {CAPABILITY_RE.pattern}")
        with Session(self.engine) as s, s.begin():
            svc = s.scalar(select(Service).where(Service.name == name))
            if svc is None:
                svc = Service(name=name)
                s.add(svc)
            svc.provider, svc.category = provider, category
            svc.E_state, svc.dE_dt, svc.S_state = E_state, dE_dt, S_state
            have = {c.name for c in svc.capabilities}
            svc.capabilities += [Capability(name=c) for c in sorted(set(capabilities) - have)]
            urls = {i.url for i in svc.instances}
            svc.instances += [Instance(url=u) for u in instances if u not in urls]
            s.flush()
            return svc.id

    def discover(self, query: str, limit: int | None = None) -> list[Match]:
        pred = parse_query(query)
        with Session(self.engine) as s:
            out = []
            for svc in s.scalars(select(Service)):
                caps = {c.name for c in svc.capabilities}
                healthy = [i.url for i in svc.instances if i.healthy]
                if healthy and pred(caps):
                    cost = float(node_cost(svc.E_state, svc.dE_dt, svc.S_state))
                    out.append(Match(svc.name, svc.provider, cost, sorted(caps), healthy))
        out.sort(key=lambda m: (m.cost, m.name))
        return out[:limit] if limit else out

    def record_probe(self, url: str, ok: bool, unhealthy_after: int = 3) -> list[str]:
        """Record a probe of the instance at `url`; returns the URLs that just became
        unhealthy (to be replaced by the healing layer)."""
        now = dt.datetime.now(dt.UTC).isoformat()
        became = []
        with Session(self.engine) as s, s.begin():
            for inst in s.scalars(select(Instance).where(Instance.url == url)):
                inst.last_probe = now
                if ok:
                    inst.failures, inst.healthy = 0, True
                    continue
                inst.failures += 1
                if inst.healthy and inst.failures >= unhealthy_after:
                    inst.healthy = False
                    became.append(inst.url)
        return became
