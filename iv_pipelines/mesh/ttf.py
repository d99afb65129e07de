"""TTF (thermodynamic) routing over the service mesh.

Node cost (seed §3.3): c(v) = E_state + 0.5 * dE_dt + 2 * S_state, with E in J, dE_dt in W
and S in 0..1. dE_dt is a trend and may be negative (a service cooling down), so c(v) can be
zero or negative; a negative node cost would make cycles through that node shrink a path's
cost without bound (no shortest path exists), and Dijkstra is only correct for non-negative
weights. Costs are therefore clamped to `COST_FLOOR` (a small positive number: every hop
still costs something, so among equal-energy routes the shorter one wins).

Routing is on edge weights w(u -> v) = c(v): the cost of entering v; a route's cost is
c(source) + the sum of its edge weights. All-pairs (or many-source) shortest paths come from
`scipy.sparse.csgraph` (Dijkstra, C); `iv_kernels/minplus.py` does the same relaxation as a
batched min-plus product on a GPU with Triton.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COST_FLOOR = 1e-3
HYSTERESIS = 0.10  # migrate only when the new route is at least 10% cheaper


def node_cost(E, dE_dt, S, floor: float = COST_FLOOR) -> np.ndarray:
    c = (
        np.asarray(E, dtype=np.float64)
        + 0.5 * np.asarray(dE_dt, dtype=np.float64)
        + 2.0 * np.asarray(S, dtype=np.float64)
    )
    return np.maximum(c, floor)


def load_score(E, E_max: float, dE_dt, S) -> np.ndarray:
    """The thermodynamic load balancer's score (seed formula), lower is better:
    0.4 * E / E_max + 0.4 * max(0, dE_dt) / 10 + 0.2 * S."""
    E = np.asarray(E, dtype=np.float64)
    return (
        0.4 * E / max(E_max, 1e-12)
        + 0.4 * np.maximum(0.0, np.asarray(dE_dt, dtype=np.float64)) / 10.0
        + 0.2 * np.asarray(S, dtype=np.float64)
    )


def pick_instance(E, dE_dt, S) -> int:
    """Index of the instance the balancer sends the next request to."""
    E = np.asarray(E, dtype=np.float64)
    return int(np.argmin(load_score(E, float(E.max()) if len(E) else 1.0, dE_dt, S)))


def weight_matrix(n: int, src: np.ndarray, dst: np.ndarray, cost: np.ndarray):
    from scipy.sparse import csr_matrix

    return csr_matrix((cost[dst], (src, dst)), shape=(n, n))


@dataclass
class RouteTable:
    """All-pairs route costs and predecessors; `route` rebuilds one path in O(length)."""

    dist: np.ndarray  # (n_sources, n) cost of the edges on the path (excludes c(source))
    pred: np.ndarray  # (n_sources, n) predecessor of each node on the path from the source, -9999: none
    sources: np.ndarray  # (n_sources,) node index of each row
    cost: np.ndarray  # (n,) node costs used

    def __post_init__(self):
        self._row = {int(s): i for i, s in enumerate(self.sources)}

    def route(self, src: int, dst: int) -> list[int] | None:
        row = self._row[src]
        if not np.isfinite(self.dist[row, dst]):
            return None
        path = [dst]
        p = self.pred[row]
        while path[-1] != src:
            path.append(int(p[path[-1]]))
        return path[::-1]

    def route_cost(self, src: int, dst: int) -> float:
        return float(self.cost[src] + self.dist[self._row[src], dst])


def shortest_paths(n: int, src: np.ndarray, dst: np.ndarray, cost: np.ndarray, sources=None) -> RouteTable:
    """Dijkstra from every node (or from `sources`) over w(u -> v) = cost[v]."""
    from scipy.sparse.csgraph import dijkstra

    w = weight_matrix(n, src, dst, cost)
    idx = np.arange(n) if sources is None else np.asarray(sources)
    dist, pred = dijkstra(w, directed=True, indices=idx, return_predecessors=True)
    return RouteTable(np.atleast_2d(dist), np.atleast_2d(pred), idx, cost)


def should_migrate(current_cost: float, new_cost: float, margin: float = HYSTERESIS) -> bool:
    """Adaptive re-routing with hysteresis: move a connection only if the new route is
    cheaper by more than `margin` (fractional), so routes do not flap on noise."""
    return new_cost < current_cost * (1.0 - margin)


def path_cost(path: list[int], cost: np.ndarray) -> float:
    return float(sum(cost[v] for v in path))
