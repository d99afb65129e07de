"""Does a factory refuse new clients as it delivers more DACs? The validation score of a new
request's first proposals as the factory's ACE memory grows, under the two novelty rules
(AIEO = 1 - the nearest cosine of a hypothesis to its memory and its own request):

- `all`: memory = every validated hypothesis of the domain (the rule until 2026-12-07);
- `bank`: memory = the 3 best validated hypotheses of the earlier delivery whose request is nearest
  (`scoring/novelty.py`; the null set is calibrated with one other request's hypotheses).

Each of the 9 example requests (`examples/requests/`: the sample and the 8 new clients) is the
new request in turn; the factory has delivered the other 8 plus K simulated wifi-sensing
requests (`RequesterSimulator`). A delivery's validated hypotheses are stood in for by 3
template proposals for its request (as the calibration's memory is built), not by a DGM
search's winners; the new request is scored on its 8 initial proposals, without the twin's
facts in its context. `repeat` adds one earlier delivery of the same request with its own
first 3 proposals. Score calibration: seed 0, as `score_calibration` builds it (~30 s).

    .venv/bin/python bench/novelty_growth.py [--sizes 0 16 64 256]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    import yaml

    from iv_pipelines.discovery.context import context_text
    from iv_pipelines.discovery.generator import RequesterSimulator, TemplateGenerator
    from iv_pipelines.embedding import MiniLMEmbedder
    from iv_pipelines.memory.ace import Delivery
    from iv_pipelines.request import load_request_file
    from iv_pipelines.scoring.calibration import build_calibration
    from iv_pipelines.scoring.novelty import nearest_delivery
    from iv_pipelines.scoring.scorer import ObmiScorer

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[0, 16, 64, 256])
    a = ap.parse_args()
    t0 = time.perf_counter()
    scorer = ObmiScorer(MiniLMEmbedder())
    positives = yaml.safe_load((REPO / "iv_pipelines/data/positive_hypotheses.yaml").read_text())
    cal, _ = build_calibration(scorer, positives, seed=0, log=lambda _m: None)
    gen = TemplateGenerator()
    paths = [REPO / "examples/requests/fall-detection-acme.yaml"]
    paths += sorted((REPO / "examples/requests/clients").glob("*.yaml"))
    reqs = [load_request_file(p) for p in paths]

    def delivered(r):
        return Delivery(r.dac_id, r.text, tuple(h.text for h in gen.propose(r, 3, 0)))

    examples = [delivered(r) for r in reqs]
    sims = [r for r in RequesterSimulator().requests(max(a.sizes), seed=11) if r.domain == reqs[0].domain]

    def best(r, memory):
        hyps = [h.text for h in gen.propose(r, 8, 0)]
        return float(cal.validation_score(scorer.raw_scores(hyps, r.text, context_text(r), memory)).max())

    print(f"threshold {cal.threshold:.2f}; best validation score of each new request's 8 first proposals")
    print(
        "| factory: earlier deliveries | rule | memory texts (median) | best score min / median | new requests passing |"
    )
    print("|---|---|---|---|---|")
    rows = [(f"8 examples + {k} simulated", k, False) for k in a.sizes] + [("8 examples + a repeat", 0, True)]
    for label, k, repeat in rows:
        extra = [delivered(r) for r in sims[:k]]
        for rule in ("all", "bank"):
            scores, sizes = [], []
            for i, r in enumerate(reqs):
                factory = examples[:i] + examples[i + 1 :] + extra + ([examples[i]] if repeat else [])
                if rule == "all":
                    memory = sorted({t for d in factory for t in d.validated})
                else:
                    memory = nearest_delivery(scorer.embedder, r.text, factory).texts
                scores.append(best(r, memory))
                sizes.append(len(memory))
            s = np.array(scores)
            print(
                f"| {label} | {rule} | {int(np.median(sizes))} | {s.min():.3f} / {np.median(s):.3f} | "
                f"{int((s >= cal.threshold).sum())} of {len(s)} |"
            )
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
