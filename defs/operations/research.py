"""Operations, weekly: the RDR research crawl and the evolution experiments it queues."""

import dagster as dg

from defs.common import OWNERS, schedule, tidy
from iv_pipelines.paths import atomic_write_text
from resources.discovery import EmbedderResource
from resources.storage import FactoryStorage


class RdrConfig(dg.Config):
    source: str | None = None  # a JSONL path or an http(s) URL; default: the shipped synthetic fixture
    since: str | None = None  # YYYY-MM: ignore older documents
    seed: int = 0


@dg.asset(
    group_name="operations",
    owners=OWNERS,
    kinds={"python"},
    description=(
        "rdr_deep_crawl: reads a document source (the shipped synthetic JSONL fixture by default, "
        "an HTTP source when configured), filters, embeds (MiniLM), clusters (k-means, k by "
        "silhouette), maps documents to DAC domains, builds per-domain trend tables and queues "
        "evolution experiments for DACs whose domain is trending."
    ),
)
def rdr_findings(
    context: dg.AssetExecutionContext, config: RdrConfig, storage: FactoryStorage, embedder: EmbedderResource
) -> dg.MaterializeResult:
    import datetime as dt
    from importlib import resources as importlib_resources

    import yaml

    from iv_pipelines.ops.rdr import crawl, default_corpus, enqueue, trends_table

    domains = yaml.safe_load(
        (importlib_resources.files("iv_pipelines") / "data" / "domains.yaml").read_text()
    )["domains"]
    dac_domains = {}
    for dac in storage.layout.requested_dacs():
        dac_domains[dac] = storage.layout.dac_request(dac)["domain"]
    source = config.source or str(default_corpus())
    try:
        res = crawl(source, embedder.get(), domains, dac_domains, config.since, config.seed)
    except (OSError, ValueError) as e:
        raise dg.Failure(description=f"rdr_deep_crawl: {e}") from e
    week = dt.date.today().isocalendar()
    tag = f"{week[0]}-W{week[1]:02d}"
    qpath = storage.layout.rdr_file("queue.jsonl")
    new = enqueue(qpath, res.queue, tag)
    table = trends_table(res.trends)
    atomic_write_text(storage.layout.rdr_file("trends.md"), table + "\n")
    context.log.info(
        f"{res.kept}/{res.read} documents, {res.k} clusters (silhouette {res.silhouette:.2f}), {len(new)} experiments queued"
    )
    return dg.MaterializeResult(
        metadata=tidy(
            {
                "source": source,
                "documents_read": res.read,
                "documents_kept": res.kept,
                "dropped": dg.MetadataValue.json(res.dropped),
                "clusters": res.k,
                "silhouette": round(res.silhouette, 4),
                "cluster_summary": dg.MetadataValue.json(res.clusters),
                "trends": dg.MetadataValue.md(table),
                "experiments_queued": dg.MetadataValue.json(new),
                "queue_path": dg.MetadataValue.path(str(qpath)),
            }
        )
    )


rdr_findings_job = dg.define_asset_job(
    name="rdr_findings_job",
    selection=dg.AssetSelection.assets("rdr_findings"),
    description="Embeds, clusters and trends a document source; queues evolution experiments for trending domains.",
)

rdr_findings_schedule = schedule(
    "rdr_findings_schedule",
    rdr_findings_job,
    "0 3 * * 0",
    "Sundays 03:00: research crawl, per-domain trends, evolution experiments queued (seed: rdr_deep_crawl).",
)
