"""Real-Deep-Research-style pass over a document source (the weekly `rdr_deep_crawl`).

1. read: a local JSONL corpus (default: `data/rdr_corpus.jsonl`, a SYNTHETIC fixture of
   short abstracts written for tests — not real papers) or an HTTP(S) URL serving the same
   JSONL; records need `id`, `date` (YYYY-MM), `title`, `abstract`;
2. filter: drop records with abstracts under 40 characters or outside the look-back window
   (counted and reported);
3. embed (MiniLM sentence vectors) and cluster: k-means (k-means++ init, seeded), k chosen
   among 2..8 by the silhouette score;
4. map each document to the nearest DAC domain (cosine to the mean embedding of the domain's
   title and facts from `data/domains.yaml`), and build a per-domain trend table: documents
   per month, recent share (last 3 months) vs the 3 before, growth;
5. queue evolution experiments: each DAC whose domain is trending (growth > 1.5 and at least
   4 recent documents) gets an entry with the most relevant documents.
"""

from __future__ import annotations

import json
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from importlib import resources as importlib_resources
from pathlib import Path

import numpy as np

MIN_ABSTRACT = 40


@dataclass
class CrawlResult:
    read: int
    kept: int
    dropped: dict[str, int]
    k: int
    silhouette: float
    clusters: list[dict]
    trends: dict[str, dict]
    queue: list[dict] = field(default_factory=list)


def default_corpus() -> Path:
    return Path(str(importlib_resources.files("iv_pipelines") / "data" / "rdr_corpus.jsonl"))


def read_source(source: str | Path) -> list[dict]:
    text = (
        urllib.request.urlopen(str(source), timeout=30).read().decode()  # noqa: S310 - configured URL
        if str(source).startswith(("http://", "https://"))
        else Path(source).read_text()
    )
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            missing = [k for k in ("id", "date", "title", "abstract") if k not in d]
            if missing:
                raise ValueError(f"missing {missing}")
        except (json.JSONDecodeError, ValueError) as e:
            raise ValueError(f"{source}: line {n}: not a corpus record ({e})") from None
        out.append(d)
    return out


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 50) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None, :] - np.array(centers)[None]) ** 2).sum(-1), axis=1)
        centers.append(x[rng.choice(len(x), p=d2 / d2.sum())] if d2.sum() > 0 else x[rng.integers(len(x))])
    c = np.array(centers)
    labels = np.zeros(len(x), dtype=int)
    for _ in range(iters):
        new = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
        if (new == labels).all() and _ > 0:
            break
        labels = new
        for j in range(k):
            if (labels == j).any():
                c[j] = x[labels == j].mean(0)
    return labels


def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    d = np.sqrt(np.maximum(((x[:, None, :] - x[None]) ** 2).sum(-1), 0))
    s = []
    for i in range(len(x)):
        same = labels == labels[i]
        if same.sum() <= 1:
            s.append(0.0)
            continue
        a = d[i, same].sum() / (same.sum() - 1)
        b = min(d[i, labels == j].mean() for j in set(labels.tolist()) if j != labels[i])
        s.append((b - a) / max(a, b) if max(a, b) > 0 else 0.0)
    return float(np.mean(s))


def crawl(
    source,
    embedder,
    domains: dict[str, dict],
    dac_domains: dict[str, str],
    since: str | None = None,
    seed: int = 0,
) -> CrawlResult:
    docs = read_source(source)
    dropped = Counter()
    kept = []
    for d in docs:
        if len(d["abstract"]) < MIN_ABSTRACT:
            dropped["abstract too short"] += 1
        elif since and d["date"] < since:
            dropped["before the look-back window"] += 1
        else:
            kept.append(d)
    if len(kept) < 3:
        raise ValueError(f"only {len(kept)} usable documents in {source}: need at least 3 to cluster")
    x = embedder.sentences([f"{d['title']}. {d['abstract']}" for d in kept])
    best = None
    for k in range(2, min(8, len(kept) - 1) + 1):
        labels = kmeans(x, k, seed)
        if len(set(labels.tolist())) < 2:
            continue
        s = silhouette(x, labels)
        if best is None or s > best[0]:
            best = (s, k, labels)
    sil, k, labels = best
    names = sorted(domains)
    centroids = embedder.sentences(
        [" ".join([domains[n]["title"], *domains[n].get("facts", [])]) for n in names]
    )
    sims = x @ centroids.T
    dom = [names[i] for i in sims.argmax(1)]
    months = sorted({d["date"] for d in kept})
    recent, before = months[-3:], months[-6:-3]
    trends = {}
    for name in sorted(set(dom)):
        per = Counter(d["date"] for d, m in zip(kept, dom, strict=True) if m == name)
        r, b = sum(per[m] for m in recent), sum(per[m] for m in before)
        trends[name] = {
            "per_month": {m: per[m] for m in months},
            "recent": r,
            "before": b,
            "growth": r / b if b else float(r),
        }
    clusters = []
    for j in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == j)
        clusters.append(
            {
                "cluster": int(j),
                "size": int(len(idx)),
                "domain": Counter(dom[i] for i in idx).most_common(1)[0][0],
                "titles": sorted({kept[i]["title"] for i in idx})[:3],
            }
        )
    queue = []
    by_domain = defaultdict(list)
    for i, name in enumerate(dom):
        by_domain[name].append((float(sims[i, names.index(name)]), kept[i]["id"], kept[i]["title"]))
    for dac, d_name in sorted(dac_domains.items()):
        t = trends.get(d_name)
        if t and t["growth"] > 1.5 and t["recent"] >= 4:
            top = sorted(by_domain[d_name], reverse=True)[:3]
            queue.append(
                {
                    "dac_id": dac,
                    "domain": d_name,
                    "reason": f"{t['recent']} recent documents vs {t['before']} before (x{t['growth']:.1f})",
                    "documents": [{"id": i, "title": ti} for _, i, ti in top],
                }
            )
    return CrawlResult(len(docs), len(kept), dict(dropped), k, sil, clusters, trends, queue)


def enqueue(path: Path, queue: list[dict], week: str) -> list[dict]:
    """Append the experiments of `queue` not yet queued for their DAC this `week` to the JSONL
    queue at `path`; returns the ones appended (a rerun in the same week appends nothing)."""
    path = Path(path)
    queued = (
        {(q["week"], q["dac_id"]) for q in map(json.loads, path.read_text().splitlines()) if q}
        if path.exists()
        else set()
    )
    new = [q | {"week": week, "status": "queued"} for q in queue if (week, q["dac_id"]) not in queued]
    if new:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fh.write("".join(json.dumps(q) + "\n" for q in new))
    return new


def trends_table(trends: dict[str, dict]) -> str:
    """Markdown: documents per domain and month, and the growth factor."""
    months = sorted({m for t in trends.values() for m in t["per_month"]})
    head = "| domain | " + " | ".join(months) + " | growth |\n|---|" + "---|" * (len(months) + 1) + "\n"
    return head + "\n".join(
        f"| {d} | " + " | ".join(str(t["per_month"].get(m, 0)) for m in months) + f" | x{t['growth']:.1f} |"
        for d, t in sorted(trends.items())
    )
