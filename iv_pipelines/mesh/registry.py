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

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, UniqueConstraint, create_engine, select
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
    __table_args__ = (UniqueConstraint("service_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("asi_services.id"), index=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    service: Mapped[Service] = relationship(back_populates="capabilities")


class Instance(_Base):
    __tablename__ = "asi_instances"
    __table_args__ = (UniqueConstraint("service_id", "url"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("asi_services.id"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    healthy: Mapped[bool] = mapped_column(Boolean, default=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_probe: Mapped[str | None] = mapped_column(String(40), nullable=True)
    service: Mapped[Service] = relationship(back_populates="instances")


class Link(_Base):
    __tablename__ = "asi_links"
    src_id: Mapped[int] = mapped_column(ForeignKey("asi_services.id"), primary_key=True)
    dst_id: Mapped[int] = mapped_column(ForeignKey("asi_services.id"), primary_key=True)


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
        from sqlalchemy.exc import IntegrityError

        # select-then-insert: another process (a concurrent lifecycle run) may insert the same
        # name, capability or instance between the two; its row then exists, and the retry
        # updates it (the unique constraints make the race an error, never a duplicate)
        for attempt in range(5):
            try:
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
            except IntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

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

    # --- topology (what TTF routing runs on) ------------------------------------------------

    def count_services(self) -> int:
        from sqlalchemy import func

        with Session(self.engine) as s:
            return int(s.scalar(select(func.count(Service.id))))

    def link(self, a: str, b: str) -> None:
        """A bidirectional link between two registered services (by name)."""
        with Session(self.engine) as s, s.begin():
            ids = dict(s.execute(select(Service.name, Service.id).where(Service.name.in_([a, b]))).all())
            missing = [x for x in (a, b) if x not in ids]
            if missing:
                raise KeyError(f"link {a} <-> {b}: not registered: {missing}")
            for u, v in ((ids[a], ids[b]), (ids[b], ids[a])):
                if s.get(Link, (u, v)) is None:
                    s.add(Link(src_id=u, dst_id=v))

    def bulk_load(self, mesh) -> None:
        """Register a generated mesh at once: services, one capability each (its category), one
        `mesh://<name>` instance each, and the links."""
        from sqlalchemy import insert

        with Session(self.engine) as s, s.begin():
            s.execute(
                insert(Service),
                [
                    {
                        "name": n,
                        "provider": str(p),
                        "category": str(c),
                        "E_state": float(e),
                        "dE_dt": float(d),
                        "S_state": float(x),
                    }
                    for n, p, c, e, d, x in zip(
                        mesh.ids, mesh.provider, mesh.category, mesh.E, mesh.dE_dt, mesh.S, strict=True
                    )
                ],
            )
            ids = dict(s.execute(select(Service.name, Service.id)).all())
            s.execute(
                insert(Capability),
                [
                    {"service_id": ids[n], "name": str(c)}
                    for n, c in zip(mesh.ids, mesh.category, strict=True)
                ],
            )
            s.execute(insert(Instance), [{"service_id": ids[n], "url": f"mesh://{n}"} for n in mesh.ids])
            s.execute(
                insert(Link),
                [
                    {"src_id": ids[mesh.ids[u]], "dst_id": ids[mesh.ids[v]]}
                    for u, v in zip(mesh.src, mesh.dst, strict=True)
                ],
            )

    def topology(self):
        """(names, providers, categories, E, dE_dt, S, src, dst, healthy) as arrays, services in
        id order; src/dst index into them."""
        import numpy as np

        with Session(self.engine) as s:
            rows = s.execute(
                select(
                    Service.id,
                    Service.name,
                    Service.provider,
                    Service.category,
                    Service.E_state,
                    Service.dE_dt,
                    Service.S_state,
                ).order_by(Service.id)
            ).all()
            index = {r[0]: i for i, r in enumerate(rows)}
            links = s.execute(select(Link.src_id, Link.dst_id)).all()
            sick = {
                r[0] for r in s.execute(select(Instance.service_id).where(Instance.healthy.is_(False))).all()
            }
        cols = list(zip(*rows, strict=True)) if rows else [[] for _ in range(7)]
        src = np.array([index[a] for a, _ in links], dtype=np.int64)
        dst = np.array([index[b] for _, b in links], dtype=np.int64)
        healthy = np.array([r[0] not in sick for r in rows], dtype=bool)
        return (
            list(cols[1]),
            np.array(cols[2]),
            np.array(cols[3]),
            np.array(cols[4], float),
            np.array(cols[5], float),
            np.array(cols[6], float),
            src,
            dst,
            healthy,
        )


def http_probe(url: str, timeout: float = 2.0) -> bool:
    """GET <url>/readyz (capsules) answered 200."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/readyz", timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def probe_all(registry: AsiRegistry, on_unhealthy, probe=http_probe, unhealthy_after: int = 3) -> dict:
    """One health-monitor pass: probe every http(s) instance, record the result, and call
    `on_unhealthy(service_name, url)` (the healing layer) for each instance that just turned
    unhealthy. Synthetic `mesh://` instances of the generated mesh are not probed."""
    with Session(registry.engine) as s:
        rows = s.execute(
            select(Service.name, Instance.url).join(Instance, Instance.service_id == Service.id)
        ).all()
    probed = failed = 0
    replaced = []
    for name, url in rows:
        if not url.startswith(("http://", "https://")):
            continue
        ok = probe(url)
        probed += 1
        failed += not ok
        for bad in registry.record_probe(url, ok, unhealthy_after):
            on_unhealthy(name, bad)
            replaced.append(bad)
    return {"probed": probed, "failed": failed, "handed_to_healing": replaced}
