"""Shadow Twin realism: frequency selectivity (std/mean across subcarriers of the mean
amplitude) of real empty rooms vs twin rooms, with and without the diffuse multipath tail.
The ratio printed is the twin's median over the real median (1.0 = same)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    from iv_pipelines.sensing.formats import USED_INDEX, load_espectre_npz
    from iv_pipelines.sensing.twin import Room, static_response
    from resources.sensing import _DEFAULT_REAL

    def selectivity(csi: np.ndarray) -> float:
        a = np.abs(csi[:, USED_INDEX]).mean(0)
        return float(a.std() / a.mean())

    files = sorted(_DEFAULT_REAL.glob("*/baseline_*.npz")) if _DEFAULT_REAL.exists() else []
    if not files:
        print("SKIPPED: real espectre baseline captures not found beside the repo (../shared/data)")
        return 0
    real = [selectivity(load_espectre_npz(f).csi) for f in files]
    rng = np.random.default_rng(11)  # the rooms tests/test_twin.py uses
    rooms = [Room.random(rng) for _ in range(40)]
    twin = [selectivity(static_response(r)[None]) for r in rooms]
    specular = [selectivity(static_response(replace(r, diffuse_ratio=0.0))[None]) for r in rooms]
    q = lambda xs: " / ".join(f"{v:.3f}" for v in np.percentile(xs, [0, 25, 50, 75, 100]))  # noqa: E731
    print(f"real empty rooms ({len(real)} captures), min/q25/median/q75/max: {q(real)} [baseline]")
    for name, xs in (("twin 1.1 (diffuse tail)", twin), ("specular paths only (twin 1.0)", specular)):
        print(f"{name}, 40 rooms: {q(xs)} | median ratio {np.median(xs) / np.median(real):.2f}x real")
    return 0


if __name__ == "__main__":
    sys.exit(main())
