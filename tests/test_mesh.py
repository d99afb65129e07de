"""TTF routing: costs, the generator, shortest paths against networkx and the Triton kernel."""

import numpy as np
import pytest

from iv_pipelines.mesh.generator import PROVIDERS, generate_mesh
from iv_pipelines.mesh.ttf import (
    COST_FLOOR,
    load_score,
    node_cost,
    path_cost,
    pick_instance,
    shortest_paths,
    should_migrate,
)


def test_node_cost_formula_and_floor():
    assert node_cost(10.0, 2.0, 0.5) == pytest.approx(10 + 1 + 1)
    # a service cooling down fast would get a negative cost: clamped to the positive floor
    assert node_cost(1.0, -10.0, 0.1) == COST_FLOOR


def test_load_balancer_formula_prefers_cool_idle_instances():
    s = load_score([50.0, 100.0], 100.0, [-5.0, 20.0], [0.5, 0.0])
    np.testing.assert_allclose(s, [0.4 * 0.5 + 0 + 0.1, 0.4 + 0.4 * 2 + 0])
    assert pick_instance([50.0, 100.0, 80.0], [0.0, 0.0, -3.0], [0.2, 0.2, 0.2]) == 0


def test_hysteresis():
    assert not should_migrate(100.0, 95.0)  # 5% cheaper: stay
    assert should_migrate(100.0, 85.0)


def test_generator_follows_the_provider_split_and_is_connected():
    from scipy.sparse.csgraph import connected_components

    from iv_pipelines.mesh.ttf import weight_matrix

    m = generate_mesh(seed=1)
    assert m.n == 1180  # the seed's split; the issue calls it a 1,200-service mesh
    assert {p: int((m.provider == p).sum()) for p in PROVIDERS} == PROVIDERS
    cost = node_cost(m.E, m.dE_dt, m.S)
    n_comp, _ = connected_components(
        weight_matrix(m.n, m.src, m.dst, cost), directed=True, connection="strong"
    )
    assert n_comp == 1
    assert (cost >= COST_FLOOR).all() and (m.S >= 0).all() and (m.S <= 1).all()


def _random_graph(n, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((n, n)) < 0.25
    np.fill_diagonal(mask, False)
    src, dst = np.nonzero(mask)
    cost = node_cost(rng.gamma(2, 10, n), rng.normal(0, 5, n), rng.random(n))
    return src, dst, cost


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_routes_equal_networkx_dijkstra(seed):
    import networkx as nx

    n = 40
    src, dst, cost = _random_graph(n, seed)
    table = shortest_paths(n, src, dst, cost)
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_weighted_edges_from((int(u), int(v), float(cost[v])) for u, v in zip(src, dst, strict=True))
    for s in range(0, n, 7):
        ref = nx.single_source_dijkstra_path_length(g, s)
        for t in range(n):
            if t in ref:
                assert table.dist[s, t] == pytest.approx(ref[t])
                path = table.route(s, t)
                assert path[0] == s and path[-1] == t
                assert path_cost(path, cost) == pytest.approx(cost[s] + ref[t])
                assert table.route_cost(s, t) == pytest.approx(cost[s] + ref[t])
            else:
                assert table.route(s, t) is None


def test_triton_minplus_kernel_matches_scipy_on_a_small_graph():
    import torch

    from kernels.minplus import all_pairs, minplus_torch, minplus_triton

    n = 12
    src, dst, cost = _random_graph(n, 5)
    w = torch.full((n, n), float("inf"))
    w[torch.from_numpy(src), torch.from_numpy(dst)] = torch.from_numpy(cost[dst]).float()
    w.fill_diagonal_(0.0)
    step = minplus_triton(w, w)
    torch.testing.assert_close(step, minplus_torch(w, w))
    ref = shortest_paths(n, src, dst, cost).dist
    got = all_pairs(w, step=minplus_triton).numpy()
    np.testing.assert_allclose(got, ref.astype(np.float32), rtol=1e-5)
