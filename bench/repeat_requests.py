"""Word-for-word repeats at the hypothesis gate, without Dagster: the 20 requests of
`bench/load.py` (the example clients 01-07 over and over, each copy under a new DAC id) go
through discovery one after another as the lifecycle runs it (ACE memory in a temporary
SQLite, its playbook guidance, the novelty bank of `scoring/novelty.py`, DGM evolution), once
per evolution budget given and DGM seed. Prints, per budget and
seed, how many pass the gate, how many needed evolution (their 8 first proposals failed), how
many of those evolution brought to the threshold, and the copies that stopped; then the totals.
One seed decides by luck whether a search near the threshold escapes; the seeds measure it.

In `bench/load.py`'s N = 20 run with scoring `obmi-3`, two third copies stopped at the gate;
this isolates that from the rest of the lifecycle. (Tried and dropped, 2026-12-07, in a one-off
run not kept: a quarter of each iteration's children as fresh proposals, "random immigrants";
it passed no more requests.)

    .venv/bin/python bench/repeat_requests.py [--budgets 8 16] [--seeds 0 1 2 3 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    import yaml

    from iv_pipelines.discovery.generator import TemplateGenerator, resolve_domain
    from iv_pipelines.embedding import MiniLMEmbedder
    from iv_pipelines.memory.ace import AceMemory
    from iv_pipelines.request import load_request_file
    from iv_pipelines.scoring.calibration import SCORING_VERSION, build_calibration
    from iv_pipelines.scoring.novelty import nearest_delivery
    from iv_pipelines.scoring.scorer import ObmiScorer
    from iv_pipelines.scoring.validate import EvolutionConfig, playbook_deltas, validate_hypotheses

    ap = argparse.ArgumentParser()
    ap.add_argument("--budgets", type=int, nargs="+", default=[8, 16], help="DGM iterations")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="DGM seeds")
    a = ap.parse_args()
    emb = MiniLMEmbedder()
    scorer, gen = ObmiScorer(emb), TemplateGenerator()
    positives = yaml.safe_load((REPO / "iv_pipelines/data/positive_hypotheses.yaml").read_text())
    cal, _ = build_calibration(scorer, positives, seed=0, log=lambda _m: None)
    clients = [
        load_request_file(p) for p in sorted((REPO / "examples/requests/clients").glob("0[1-7]-*.yaml"))
    ]
    print(f"scoring {SCORING_VERSION}; threshold {cal.threshold:.2f}; {a.n} requests, clients 01-07 in turn")
    print("| evolution | DGM seed | pass | first proposals failed | rescued by evolution | stopped (score) |")
    print("|---|---|---|---|---|---|")
    summary = []
    for budget in a.budgets:
        label = f"{budget} iterations x {EvolutionConfig().children_per_iteration} children"
        t0 = time.perf_counter()
        tot = [0, 0, 0, 0]  # runs, passed, needed evolution, rescued
        for dgm_seed in a.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                ace = AceMemory(f"sqlite:///{tmp}/ace.sqlite")
                rows = []
                for k in range(a.n):
                    base = clients[k % len(clients)]
                    req = base.model_copy(update={"dac_id": f"{base.dac_id}-l{k:02d}"})
                    domain = resolve_domain(req).name
                    bank = nearest_delivery(emb, req.text, ace.deliveries(domain, exclude_dac=req.dac_id))
                    guidance = ace.guidance(domain, exclude_dac=req.dac_id)
                    out, _ = validate_hypotheses(
                        req,
                        gen.propose(req, 8, 0, guidance),
                        gen,
                        scorer,
                        cal,
                        memory_texts=bank.texts,
                        guidance=guidance,
                        config=EvolutionConfig(budget=budget, seed=dgm_seed),
                        log=lambda _m: None,
                    )
                    ace.record_attempts(req.dac_id, domain, out.trace, request_text=req.text)
                    ace.curate(playbook_deltas(domain, out), source_dac=req.dac_id)
                    rows.append((req.dac_id, out))
            passed = sum(o.passed for _, o in rows)
            evolved = [o for _, o in rows if o.iterations > 0]
            rescued = sum(o.passed for o in evolved)
            stopped = [f"{d} ({o.validation_score:.3f})" for d, o in rows if not o.passed]
            print(
                f"| {label} | {dgm_seed} | {passed}/{len(rows)} | {len(evolved)} | {rescued} | "
                f"{', '.join(stopped) or '-'} |",
                flush=True,
            )
            for i, v in enumerate((len(rows), passed, len(evolved), rescued)):
                tot[i] += v
        summary.append(
            f"{label}: {tot[1]} of {tot[0]} pass; evolution rescued {tot[3]} of the {tot[2]} searches whose "
            f"first proposals failed ({time.perf_counter() - t0:.0f} s)"
        )
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
