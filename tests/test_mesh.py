"""TTF routing: costs, the generator, shortest paths against networkx and the Triton kernel."""

import json

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
from tests.conftest import materialized


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

    from iv_kernels.minplus import all_pairs, minplus_torch, minplus_triton

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


def test_service_mesh_routes_capsules_keeps_routes_by_hysteresis_and_reroutes_around_failures(
    storage, tmp_path
):
    import dagster as dg

    from defs.deployment import service_mesh
    from iv_pipelines.mesh.snapshot import capsule_capabilities, register_capsule
    from resources.deploy import EnergyAtlasResource
    from resources.mesh import AsiRegistryResource, TtfRouterResource

    reg_res = AsiRegistryResource(url=f"sqlite:///{tmp_path / 'asi.sqlite'}")
    reg = reg_res.get(storage.root)  # bootstrapped with the generated mesh
    caps = capsule_capabilities(
        "wifi-sensing",
        "fall detection from CSI windows",
        {"proof": {"zk_snark": {"system": "groth16"}}, "utid": "U"},
    )
    assert caps == ["wifi_sensing", "fall_detection", "zk_proof", "utid"]
    gws = register_capsule(
        reg, "acme", "local", "http://127.0.0.1:9", caps, {"E_state": 30, "dE_dt": 3, "S_state": 0.5}
    )
    assert len(gws) == 2 and [m.name for m in reg.discover("wifi_sensing AND zk_proof")] == ["acme"]
    atlas = EnergyAtlasResource(root_dir=str(tmp_path / "atlas"))
    res = {"storage": storage, "registry": reg_res, "router": TtfRouterResource(), "atlas": atlas}

    def run():
        out = dg.materialize([service_mesh], resources=res)
        return materialized(out)

    first = run()
    assert first["services"] == 1181 and first["rerouted"] == 3 and first["kept_by_hysteresis"] == 0
    routes = json.loads((storage.root / "mesh" / "routes.json").read_text())
    ledger = routes["acme -> ledger"]
    assert ledger["path"][0] == "acme" and ledger["path"][1] in gws
    second = run()  # nothing changed: every route kept
    assert second["rerouted"] == 0 and second["kept_by_hysteresis"] == 3 and second["routes_cost_rose"] == {}
    # the ledger target gets 5% more expensive: under the hysteresis margin, the route stays,
    # and the snapshot reports that its cost rose
    names, _p, cat, E, dE, S, *_ = reg.topology()
    i = names.index(ledger["target"])
    reg.register_service(
        ledger["target"], str(_p[i]), str(cat[i]), [], [], E_state=E[i] * 1.05, dE_dt=dE[i], S_state=S[i]
    )
    risen = run()
    assert risen["rerouted"] == 0 and list(risen["routes_cost_rose"]) == ["acme -> ledger"]
    assert (
        risen["routes_cost_rose"]["acme -> ledger"]["now"]
        > risen["routes_cost_rose"]["acme -> ledger"]["before"]
    )
    # the ledger service the route ends at fails its probes: the next snapshot routes around it
    url = f"mesh://{ledger['target']}"
    for _ in range(3):
        reg.record_probe(url, False)
    third = run()
    assert third["rerouted"] >= 1
    new = json.loads((storage.root / "mesh" / "routes.json").read_text())["acme -> ledger"]
    assert new["target"] != ledger["target"]
    with atlas.open(storage.root) as g:
        followed = g.run(
            "MATCH (:DAC {id: 'acme'})-[f:FOLLOWED_ROUTE]->(r:Route) RETURN r.dst AS dst ORDER BY f.ts"
        )
        used = {
            r["s"] for r in g.run("MATCH (:DAC {id: 'acme'})-[:USES_SERVICE]->(s:Service) RETURN s.id AS s")
        }
    assert len(followed) == 3 + third["rerouted"] and followed[-1]["dst"] in {new["target"], *used}
    assert new["target"] in used
