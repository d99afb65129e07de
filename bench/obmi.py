"""OBMI scoring throughput and discovery wall time for one DAC.

1. pairs/s: the four OBMI operators on precomputed MiniLM embeddings, batched torch path vs
   the numpy reference (one pair at a time) in the same run. Goal: >= 10k pairs/s on 2 cores.
   Embedding itself is measured separately (texts/s), since it dominates real scoring.
2. discovery wall time for the sample DAC on embedded defaults: hypotheses + calibrated
   validation (DGM) with the calibration already built (it is shared by all DACs and rebuilt
   only when the embedder, generator or memory change). Goal: < 10 s. Cold = including the
   MiniLM load; warm = model already in memory.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    import numpy as np
    import torch

    from iv_pipelines.discovery.context import context_text
    from iv_pipelines.discovery.generator import RequesterSimulator, TemplateGenerator
    from iv_pipelines.embedding import MiniLMEmbedder
    from iv_pipelines.request import load_request_file
    from iv_pipelines.scoring import obmi, reference

    t0 = time.perf_counter()
    emb = MiniLMEmbedder()
    emb.embed(["warm up"])
    load_s = time.perf_counter() - t0

    sims = RequesterSimulator().requests(8, seed=1)  # 2,048 distinct hypotheses over 16 domains
    gen = TemplateGenerator()
    texts = list(dict.fromkeys(h.text for r in sims for h in gen.propose(r, 16, seed=2)))[:2048]
    req = load_request_file(
        Path(__file__).resolve().parent.parent / "examples/requests/fall-detection-acme.yaml"
    )
    t0 = time.perf_counter()
    hs = emb.embed(texts)
    embed_rate = len(texts) / (time.perf_counter() - t0)
    r, c = emb.embed([req.text, context_text(req)])
    mem = emb.sentences(texts[:64])

    n = len(hs)
    torch.set_num_threads(os.cpu_count() or 1)
    h_sent = torch.from_numpy(np.stack([e.sentence for e in hs]))
    hb = obmi.TokenBatch.from_list([e.tokens for e in hs])
    rb = obmi.TokenBatch.from_list([r.tokens]).expand(n)  # one request/context shared by all pairs
    cb = obmi.TokenBatch.from_list([c.tokens]).expand(n)
    r_sent = torch.from_numpy(r.sentence).expand(n, -1)
    m = torch.from_numpy(mem)

    def rate(dtype) -> float:
        obmi.all_operators(h_sent, r_sent, hb, rb, cb, m, matmul_dtype=dtype)
        reps = 3
        t0 = time.perf_counter()
        for _ in range(reps):
            obmi.all_operators(h_sent, r_sent, hb, rb, cb, m, matmul_dtype=dtype)
        return reps * n / (time.perf_counter() - t0)

    torch_rate = rate(None)
    bf16_rate = rate(torch.bfloat16)
    diff = (
        (
            obmi.all_operators(h_sent, r_sent, hb, rb, cb, m)
            - obmi.all_operators(h_sent, r_sent, hb, rb, cb, m, matmul_dtype=torch.bfloat16)
        )
        .abs()
        .max()
        .item()
    )

    k = 200
    t0 = time.perf_counter()
    for e in hs[:k]:
        reference.aroe(e.sentence, r.sentence, e.tokens, r.tokens)
        reference.aesp(e.tokens)
        reference.qero(e.tokens, c.tokens)
        reference.aieo(e.sentence, mem)
    ref_rate = k / (time.perf_counter() - t0)
    print(
        f"OBMI torch batched fp32: {torch_rate:,.0f} pairs/s | numpy reference: {ref_rate:,.0f} pairs/s | "
        f"ratio {torch_rate / ref_rate:.1f}x | goal >= 10,000 pairs/s ({'OK' if torch_rate >= 1e4 else 'BELOW'})"
    )
    print(
        f"OBMI torch batched, bf16 matmuls: {bf16_rate:,.0f} pairs/s | ratio to numpy {bf16_rate / ref_rate:.1f}x | "
        f"max |bf16 - fp32| {diff:.2e} | goal >= 10,000 pairs/s ({'OK' if bf16_rate >= 1e4 else 'BELOW'})"
    )
    print(
        f"MiniLM embedding: {embed_rate:,.0f} texts/s on {torch.get_num_threads()} threads; model load {load_s:.1f} s"
    )

    # discovery wall time for one DAC, calibration prebuilt
    import tempfile

    import yaml

    from iv_pipelines.memory.ace import AceMemory
    from iv_pipelines.scoring.calibration import build_calibration
    from iv_pipelines.scoring.novelty import nearest_delivery
    from iv_pipelines.scoring.scorer import ObmiScorer
    from iv_pipelines.scoring.validate import EvolutionConfig, validate_hypotheses

    scorer = ObmiScorer(emb)
    positives = yaml.safe_load(
        (Path(__file__).resolve().parent.parent / "iv_pipelines/data/positive_hypotheses.yaml").read_text()
    )
    t0 = time.perf_counter()
    cal, report = build_calibration(scorer, positives, log=lambda _m: None)
    cal_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        ace = AceMemory(f"sqlite:///{tmp}/ace.sqlite")

        def discovery():
            fresh = MiniLMEmbedder()  # cold: new model and empty cache
            sc = ObmiScorer(fresh)
            initial = gen.propose(req, 8, 0, ace.guidance(req.domain))
            out, _ = validate_hypotheses(
                req,
                initial,
                gen,
                sc,
                cal,
                nearest_delivery(sc.embedder, req.text, ace.deliveries(req.domain)).texts,
                ace.guidance(req.domain),
                EvolutionConfig(),
            )
            return out, sc

        t0 = time.perf_counter()
        out, sc = discovery()
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        validate_hypotheses(
            req, gen.propose(req, 8, 1), gen, ObmiScorer(emb), cal, [], [], EvolutionConfig(seed=1)
        )
        warm = time.perf_counter() - t0
    print(
        f"calibration (shared, once): {cal_s:.1f} s; null pass rate {report.null_pass_rate:.3f}, "
        f"positive pass rate {report.positive_pass_rate:.3f}, AUROC {report.positive_auroc:.3f}"
    )
    by_kind = ", ".join(f"{k} {v:.3f}" for k, v in report.null_pass_rate_by_kind.items())
    print(
        f"  held-out nulls: n={report.n_null['test']}, pass rate by kind: {by_kind}; "
        f"ODS null pass rate {report.ods_null_pass_rate:.3f}; template candidates pass {report.generator_pass_rate:.3f}"
    )
    print(
        f"discovery for one DAC: cold {cold:.2f} s (incl. model load), warm {warm:.2f} s | "
        f"ratio cold/warm {cold / warm:.1f}x | goal < 10 s ({'OK' if cold < 10 else 'ABOVE'}); "
        f"score {out.validation_score:.3f}, {out.iterations} DGM iterations"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
