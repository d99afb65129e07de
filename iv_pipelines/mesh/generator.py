"""A seeded generator of realistic service meshes for tests and benches.

The default mesh follows the seed's provider split: 450 Azure, 380 AWS, 290 GCP and 60 edge
services — 1,180 in all (the seed and the issue call it "the 1,200-service mesh"). Categories (the seed document's §3.1 list is not in this repository;
these are ours, covering what DACs call): inference, sensing, storage, ledger, proof, energy,
gateway, analytics. Each service gets measured-looking energy state (E_state J, dE_dt W,
S_state 0..1) drawn per category. Links: every service calls a few services of its own
provider (intra-cloud, short), gateways link providers (inter-cloud), edge services attach to
the nearest cloud gateways; every link is directed both ways.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROVIDERS = {"azure": 450, "aws": 380, "gcp": 290, "edge": 60}
CATEGORIES = ("inference", "sensing", "storage", "ledger", "proof", "energy", "gateway", "analytics")
# per category: (mean E_state J, mean |dE_dt| W): inference is the heavy one
_ENERGY = {
    "inference": (120.0, 4.0),
    "sensing": (15.0, 1.0),
    "storage": (40.0, 0.5),
    "ledger": (60.0, 1.5),
    "proof": (90.0, 3.0),
    "energy": (10.0, 0.5),
    "gateway": (25.0, 2.0),
    "analytics": (70.0, 2.5),
}


@dataclass
class Mesh:
    ids: list[str]
    provider: np.ndarray  # (n,) provider names
    category: np.ndarray  # (n,) category names
    E: np.ndarray  # (n,) J
    dE_dt: np.ndarray  # (n,) W, may be negative (cooling down)
    S: np.ndarray  # (n,) 0..1
    src: np.ndarray  # (m,) directed edges
    dst: np.ndarray

    @property
    def n(self) -> int:
        return len(self.ids)


def generate_mesh(providers: dict[str, int] | None = None, seed: int = 0, degree: int = 4) -> Mesh:
    rng = np.random.default_rng(seed)
    providers = providers or PROVIDERS
    ids, prov, cat = [], [], []
    for p, count in providers.items():
        for i in range(count):
            c = "gateway" if i < max(2, count // 40) else CATEGORIES[rng.integers(len(CATEGORIES))]
            ids.append(f"{p}-{c}-{i:04d}")
            prov.append(p)
            cat.append(c)
    prov, cat = np.array(prov), np.array(cat)
    n = len(ids)
    e_mean = np.array([_ENERGY[c][0] for c in cat])
    d_mean = np.array([_ENERGY[c][1] for c in cat])
    E = rng.gamma(4.0, e_mean / 4.0)
    dE = rng.normal(0.0, d_mean)
    S = rng.beta(2.0, 3.0, n)
    src, dst = [], []
    by_prov = {p: np.flatnonzero(prov == p) for p in providers}
    gateways = {p: idx[cat[idx] == "gateway"] for p, idx in by_prov.items()}
    for p, idx in by_prov.items():
        if p == "edge":
            clouds = [q for q in providers if q != "edge"]
            for v in idx:  # an edge service talks to two cloud gateways
                for q in rng.choice(clouds, size=min(2, len(clouds)), replace=False):
                    src.append(v)
                    dst.append(int(rng.choice(gateways[q])))
            continue
        for v in idx:
            for u in rng.choice(idx, size=min(degree, len(idx) - 1), replace=False):
                if u != v:
                    src.append(v)
                    dst.append(int(u))
        for g in gateways[p]:  # gateways: to the other providers' gateways
            for q, gq in gateways.items():
                if q != p and q != "edge" and len(gq):
                    src.append(int(g))
                    dst.append(int(rng.choice(gq)))
    s, d = np.array(src), np.array(dst)
    s, d = np.concatenate([s, d]), np.concatenate([d, s])  # every link both ways
    keep = s != d
    pairs = np.unique(np.stack([s[keep], d[keep]], 1), axis=0)
    return Mesh(ids, prov, cat, E, dE, S, pairs[:, 0], pairs[:, 1])
