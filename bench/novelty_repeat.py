"""What a word-for-word repeat of a request meets at the hypothesis gate (issue #19's 20-DAC
load run: 5 copies stopped at 0.938-0.949 < 0.95).

For each DAC of a home, its winning hypothesis's validation score as run, then recomputed
with its novelty (AIEO: 1 - nearest cosine to its novelty bank, `scoring/novelty.py`)
halved, and with its own text in memory (AIEO = 0: what a later copy of the same request
meets if it proposes the same hypothesis). The other three operators are kept as run; the
score is the home's own calibration (`score_calibration`); DACs validated against an earlier
calibration (another scoring version) are listed and left out.

    .venv/bin/python bench/novelty_repeat.py [--home .dagster_home/iv]   # after make demo / bench/new_clients.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    from iv_pipelines.scoring.calibration import Calibration
    from iv_pipelines.scoring.obmi import OPERATORS
    from iv_pipelines.storage import StorageLayout

    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, default=REPO / ".dagster_home" / "iv")
    a = ap.parse_args()
    layout = StorageLayout(a.home)
    if not layout.score_calibration_file().is_file():
        raise SystemExit(f"{a.home}: no score calibration (run make demo first)")
    cal = Calibration.load(layout.score_calibration_file())
    rows, stale = [], []
    for f in sorted((a.home / "dacs").glob("*/validated_hypothesis.json")):
        d = json.loads(f.read_text())
        if d.get("calibration_digest") != cal.digest():
            stale.append(f.parent.name)  # scored against another calibration: raw scores not comparable
            continue
        raw = np.array([[d["raw"][k] for k in OPERATORS]])
        i = OPERATORS.index("AIEO")
        half, repeat = raw.copy(), raw.copy()
        half[0, i] *= 0.5
        repeat[0, i] = 0.0
        rows.append(
            (
                f.parent.name,
                *(float(cal.validation_score(r)[0]) for r in (raw, half, repeat)),
                float(raw[0, i]),
            )
        )
    if stale:
        print(f"{len(stale)} DACs validated with an earlier score calibration left out: {', '.join(stale)}")
    if not rows:
        raise SystemExit(
            f"{a.home}: no validated hypotheses scored with its calibration (run a lifecycle first)"
        )
    print(f"threshold {cal.threshold:.2f}; validation score of each DAC's winning hypothesis")
    print("| DAC | AIEO as run | as run | novelty halved | its own text in memory |\n|---|---|---|---|---|")
    for name, run, half, rep, aieo in rows:
        print(f"| {name} | {aieo:.3f} | {run:.3f} | {half:.3f} | {rep:.3f} |")
    runs, halves, reps = (np.array([r[k] for r in rows]) for k in (1, 2, 3))
    print(
        f"{len(rows)} DACs: as run {runs.min():.2f}-{runs.max():.2f}; novelty halved {halves.min():.2f}-{halves.max():.2f}; "
        f"own text in memory {reps.min():.2f}-{reps.max():.2f} (threshold {cal.threshold:.2f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
