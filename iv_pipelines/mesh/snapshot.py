"""A service-mesh snapshot: TTF routes over the registry's topology, and the routes each
deployed DAC capsule follows, re-routed only when the new route beats the old by the
hysteresis margin."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iv_pipelines.mesh.ttf import node_cost, shortest_paths, should_migrate

CAPSULE = "capsule"
TARGET_CATEGORIES = ("ledger", "storage", "energy")  # what a capsule calls: UTID, telemetry, metering


@dataclass
class Snapshot:
    services: int
    links: int
    healthy: int
    routes_seconds: float
    mean_route_cost: float
    routes: dict[str, dict] = field(default_factory=dict)  # "<dac> -> <category>": route record
    migrated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    rose: dict[str, tuple[float, float]] = field(default_factory=dict)  # route -> (before, now)


def take_snapshot(registry, previous: dict, floor: float, margin: float) -> Snapshot:
    names, prov, cat, E, dE, S, src, dst, healthy = registry.topology()
    cost = node_cost(E, dE, S, floor)
    cost = np.where(healthy, cost, np.inf)  # unhealthy services are never routed through
    ok = healthy[src] & healthy[dst]
    caps = np.flatnonzero(cat == CAPSULE)
    t0 = time.perf_counter()
    table = shortest_paths(
        len(names),
        src[ok],
        dst[ok],
        np.where(np.isfinite(cost), cost, 0.0),
        sources=caps if len(caps) else None,
    )
    seconds = time.perf_counter() - t0
    finite = table.dist[np.isfinite(table.dist)]
    snap = Snapshot(
        len(names), int(len(src)), int(healthy.sum()), seconds, float(finite.mean()) if finite.size else 0.0
    )
    for c in caps:
        for category in TARGET_CATEGORIES:
            targets = np.flatnonzero((cat == category) & healthy)
            if not len(targets):
                continue
            row = table.dist[list(table.sources).index(c)]
            best = int(targets[np.argmin(row[targets])])
            if not np.isfinite(row[best]):
                continue
            key = f"{names[c]} -> {category}"
            new_cost = table.route_cost(int(c), best)
            old = previous.get(key)
            if old is not None and old["target"] in names:
                old_cost = _current_cost(old["path"], names, cost)
                if old_cost is not None and old_cost > old["cost"] * (1 + 1e-9):
                    snap.rose[key] = (float(old["cost"]), old_cost)
                if old_cost is not None and not should_migrate(old_cost, new_cost, margin):
                    snap.routes[key] = old | {"cost": old_cost}
                    snap.kept.append(key)
                    continue
            path = [names[i] for i in table.route(int(c), best)]
            snap.routes[key] = {
                "dac": names[c],
                "category": category,
                "target": names[best],
                "provider": str(prov[best]),
                "path": path,
                "cost": new_cost,
            }
            snap.migrated.append(key)
    return snap


def _current_cost(path: list[str], names: list[str], cost: np.ndarray) -> float | None:
    idx = {n: i for i, n in enumerate(names)}
    if any(n not in idx for n in path):
        return None
    c = float(sum(cost[idx[n]] for n in path))
    return c if np.isfinite(c) else None


def load_previous(path: Path) -> dict:
    return json.loads(Path(path).read_text()) if Path(path).exists() else {}


def capsule_capabilities(domain: str, task: str, manifest: dict) -> list[str]:
    """What a deployed capsule offers: its domain, its task's first two words, and proofs."""
    words = [w for w in task.lower().replace("-", " ").split() if w.isalpha()][:2]
    caps = [domain.replace("-", "_")] + (["_".join(words)] if words else [])
    if (manifest.get("proof") or {}).get("zk_snark"):
        caps.append("zk_proof")
    if manifest.get("utid"):
        caps.append("utid")
    return caps


def register_capsule(
    registry, dac_id: str, target: str, url: str, capabilities: list[str], energy: dict, links: int = 2
) -> list[str]:
    """Register (or update) a deployed capsule as an ASI service and link it to the `links`
    cheapest healthy gateways; returns the gateways linked."""
    registry.register_service(
        dac_id,
        "edge" if target == "local" else target,
        CAPSULE,
        capabilities,
        [url],
        E_state=float(energy["E_state"]),
        dE_dt=float(energy["dE_dt"]),
        S_state=float(energy["S_state"]),
    )
    names, _p, cat, E, dE, S, _s, _d, healthy = registry.topology()
    gw = np.flatnonzero((cat == "gateway") & healthy)
    chosen = [names[i] for i in gw[np.argsort(node_cost(E[gw], dE[gw], S[gw]))][:links]]
    for g in chosen:
        registry.link(dac_id, g)
    return chosen
