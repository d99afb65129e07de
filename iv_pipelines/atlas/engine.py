"""Energy Atlas engines: `LadybugAtlas` (embedded) and `Neo4jAtlas` (production).

Both implement the `EnergyAtlas` interface of `iv_pipelines.energy.atlas` (`record`,
`trajectory`) plus the graph operations the mesh and operations layers use, and run the same
query files. Entities: `dac:<id>` and `step:<id>/<step>` states hang off the DAC node,
`service:<id>` states off the Service node. A state's id is entity|source|run|ts, so
recording it again changes nothing.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable
from importlib import resources as importlib_resources
from pathlib import Path

from iv_pipelines.energy.atlas import EnergyState

QUERIES = ("trajectory", "optimal_service", "anomalies", "co_deployment")
_FAR_FUTURE_MS = 2**62


def load_query(name: str, dialect: str) -> str:
    base = importlib_resources.files("iv_pipelines") / "atlas" / "queries"
    override = base / dialect / f"{name}.cypher"
    path = override if override.is_file() else base / f"{name}.cypher"
    return path.read_text()


def statements(text: str) -> list[str]:
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("//")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def owner(entity: str) -> tuple[str, str, str]:
    """entity -> (node label, node id, relationship). DAC-level states are HAS_STATE (what the
    trajectory and anomaly queries read), per-step states HAS_STEP_STATE: kept apart, those
    queries need no string filter on the states (bench/atlas.py measures the trajectory query)."""
    kind, _, rest = entity.partition(":")
    if kind == "dac":
        return "DAC", rest, "HAS_STATE"
    if kind == "step":
        return "DAC", rest.split("/", 1)[0], "HAS_STEP_STATE"
    if kind == "service":
        return "Service", rest, "HAS_STATE"
    raise ValueError(f"entity {entity!r}: expected dac:<id>, step:<id>/<step> or service:<id>")


def state_id(s: EnergyState) -> str:
    return f"{s.entity}|{s.source}|{s.run_id}|{s.ts_ms}"


def window_params(since_ms: int = 0, until_ms: int | None = None) -> dict:
    return {"since_ms": int(since_ms), "until_ms": int(_FAR_FUTURE_MS if until_ms is None else until_ms)}


def trajectory_params(entity: str, since_ms: int = 0, until_ms: int | None = None) -> dict:
    label, oid, rel = owner(entity)
    if (label, rel) != ("DAC", "HAS_STATE"):
        raise ValueError(f"trajectory: {entity!r} is not a DAC entity (dac:<id>)")
    return {"dac_id": oid} | window_params(since_ms, until_ms)


def rows_to_states(rows: list[dict], entity: str) -> list[EnergyState]:
    return [
        EnergyState(
            entity, int(r["ts"]), float(r["E"]), float(r["dE_dt"]), float(r["S"]), r["source"], r["run_id"]
        )
        for r in rows
    ]


class _QueryingAtlas:
    """What both engines share: named query files run through the engine's `run`."""

    dialect = ""

    def run(self, query: str, params: dict | None = None) -> list[dict]:
        raise NotImplementedError

    def query(self, name: str, **params) -> list[dict]:
        return self.run(load_query(name, self.dialect), params)

    def trajectory(self, entity: str, since_ms: int = 0, until_ms: int | None = None) -> list[EnergyState]:
        return rows_to_states(
            self.query("trajectory", **trajectory_params(entity, since_ms, until_ms)), entity
        )

    def log_healing(self, action) -> None:
        """Record a self-healing action (iv_pipelines.ops.healing.HealingAction)."""
        self.query(
            "log_healing",
            dac_id=action.dac_id,
            id=f"{action.dac_id}|{action.ts_ms}|{action.strategy}",
            issue=action.issue,
            strategy=action.strategy,
            ok=bool(action.ok),
            ts=int(action.ts_ms),
            details=json.dumps(action.details, default=str)[:20000],
        )


class LadybugAtlas(_QueryingAtlas):
    dialect = "ladybug"

    def __init__(self, path: Path):
        import ladybug

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = ladybug.Database(str(self.path))
        self.conn = ladybug.Connection(self.db)
        for stmt in statements(load_query("schema", self.dialect)):
            self.conn.execute(stmt)

    def close(self) -> None:
        self.conn.close()
        self.db.close()

    def run(self, query: str, params: dict | None = None) -> list[dict]:
        res = self.conn.execute(query, params or {})
        cols = res.get_column_names()
        return [dict(zip(cols, row, strict=True)) for row in res.get_all()]

    def _ensure(self, label: str, ids: Iterable[str]) -> None:
        for oid in sorted(set(ids)):
            self.conn.execute(f"MERGE (:{label} {{id: $id}})", {"id": oid})

    def record(self, states: Iterable[EnergyState]) -> int:
        """Insert states not recorded yet (bulk COPY through CSV); returns how many were new."""
        states = list(states)
        if not states:
            return 0
        owners = [owner(s.entity) for s in states]
        for label in ("DAC", "Service"):
            self._ensure(label, [oid for lab, oid, _ in owners if lab == label])
        ids = [state_id(s) for s in states]
        existing = set()
        for i in range(0, len(ids), 5000):
            existing |= {
                r["id"]
                for r in self.run(
                    "MATCH (e:EnergyState) WHERE e.id IN $ids RETURN e.id AS id", {"ids": ids[i : i + 5000]}
                )
            }
        new = [(sid, s, o) for sid, s, o in zip(ids, states, owners, strict=True) if sid not in existing]
        new = list({sid: (sid, s, o) for sid, s, o in new}.values())  # duplicates within the batch
        if not new:
            return 0
        with tempfile.TemporaryDirectory() as tmp:
            nodes = os.path.join(tmp, "states.csv")
            with open(nodes, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["id", "entity", "ts", "E", "dE", "S", "source", "run_id"])
                w.writerows(
                    [
                        sid,
                        s.entity,
                        s.ts_ms,
                        repr(s.E_state),
                        repr(s.dE_dt),
                        repr(s.S_state),
                        s.source,
                        s.run_id,
                    ]
                    for sid, s, _ in new
                )
            self.conn.execute(f"COPY EnergyState FROM '{nodes}' (HEADER=true)")
            for label, rel in (("DAC", "HAS_STATE"), ("Service", "HAS_STATE"), ("DAC", "HAS_STEP_STATE")):
                rels = [(o[1], sid) for sid, _, o in new if (o[0], o[2]) == (label, rel)]
                if not rels:
                    continue
                path = os.path.join(tmp, f"rels-{label}-{rel}.csv")
                with open(path, "w", newline="") as fh:
                    w = csv.writer(fh)
                    w.writerow(["from", "to"])
                    w.writerows(rels)
                opts = f"from='{label}', to='EnergyState', " if rel == "HAS_STATE" else ""
                self.conn.execute(f"COPY {rel} FROM '{path}' ({opts}HEADER=true)")
        return len(new)

    def delete_window(self, since_ms: int, until_ms: int, source: str | None = None) -> int:
        """Delete the states in [since_ms, until_ms) (of one source, if given); returns the count."""
        cond = "e.ts >= $since_ms AND e.ts < $until_ms" + (" AND e.source = $source" if source else "")
        params = {"since_ms": since_ms, "until_ms": until_ms} | ({"source": source} if source else {})
        n = self.run(f"MATCH (e:EnergyState) WHERE {cond} RETURN count(e) AS n", params)[0]["n"]
        self.conn.execute(f"MATCH (e:EnergyState) WHERE {cond} DETACH DELETE e", params)
        return int(n)

    def add_service(self, service_id: str, provider: str, category: str, capabilities: list[str]) -> None:
        self.conn.execute(
            "MERGE (s:Service {id: $id}) SET s.provider = $provider, s.category = $category",
            {"id": service_id, "provider": provider, "category": category},
        )
        for c in capabilities:
            self.conn.execute("MERGE (:Capability {name: $c})", {"c": c})
            self.conn.execute(
                "MATCH (s:Service {id: $id}), (c:Capability {name: $c}) "
                "WHERE NOT EXISTS { MATCH (s)-[:PROVIDES_CAPABILITY]->(c) } CREATE (s)-[:PROVIDES_CAPABILITY]->(c)",
                {"id": service_id, "c": c},
            )

    def uses_service(self, dac_id: str, service_id: str) -> None:
        self._ensure("DAC", [dac_id])
        self.conn.execute(
            "MATCH (d:DAC {id: $d}), (s:Service {id: $s}) "
            "WHERE NOT EXISTS { MATCH (d)-[:USES_SERVICE]->(s) } CREATE (d)-[:USES_SERVICE]->(s)",
            {"d": dac_id, "s": service_id},
        )

    def followed_route(self, dac_id: str, route_id: str, src: str, dst: str, cost: float, ts_ms: int) -> None:
        self._ensure("DAC", [dac_id])
        self.conn.execute(
            "MERGE (r:Route {id: $id}) SET r.src = $src, r.dst = $dst, r.cost = $cost, r.ts = $ts",
            {"id": route_id, "src": src, "dst": dst, "cost": float(cost), "ts": int(ts_ms)},
        )
        self.conn.execute(
            "MATCH (d:DAC {id: $d}), (r:Route {id: $id}) CREATE (d)-[:FOLLOWED_ROUTE {ts: $ts}]->(r)",
            {"d": dac_id, "id": route_id, "ts": int(ts_ms)},
        )


class Neo4jAtlas(_QueryingAtlas):
    """The same interface over Neo4j (`bolt://` or `neo4j://` URL; auth from the resource's
    env vars). No server can run on our CI machines: the query texts are syntax-checked
    offline with Neo4j's parser and parameter building / result mapping are unit-tested."""

    dialect = "neo4j"

    def __init__(self, url: str, user: str, password: str, database: str | None = None, driver=None):
        if driver is None:
            import neo4j

            driver = neo4j.GraphDatabase.driver(url, auth=(user, password))
        self.driver = driver
        self.database = database

    def run(self, query: str, params: dict | None = None) -> list[dict]:
        records, _summary, _keys = self.driver.execute_query(query, params or {}, database_=self.database)
        return [dict(r) for r in records]

    def init_schema(self) -> None:
        for stmt in statements(load_query("schema", self.dialect)):
            self.run(stmt)

    def record(self, states: Iterable[EnergyState]) -> int:
        rows = [
            {
                "id": state_id(s),
                "kind": s.entity.split(":", 1)[0],
                "owner": owner(s.entity)[1],
                "entity": s.entity,
                "ts": s.ts_ms,
                "E": s.E_state,
                "dE": s.dE_dt,
                "S": s.S_state,
                "source": s.source,
                "run_id": s.run_id,
            }
            for s in states
        ]
        n = 0
        for kind in ("dac", "step", "service"):
            batch = [r for r in rows if r["kind"] == kind]
            if batch:
                n += self.run(load_query(f"record_{kind}_states", self.dialect), {"rows": batch})[0][
                    "created"
                ]
        return n
