"""Operations assets: the fleet health check."""

import json
from pathlib import Path

import dagster as dg

from iv_pipelines.paths import atomic_write_text
from resources.deploy import DeployerResource, EnergyAtlasResource
from resources.discovery import EmbedderResource
from resources.ledger import LedgerResource
from resources.proof import ProofResource
from resources.sensing import SensingResource
from resources.storage import FactoryStorage

OWNERS = ["team:dac-factory"]
DEFAULT_THRESHOLD = 0.9  # when the request sets no min_accuracy


@dg.asset(
    group_name="operations",
    owners=OWNERS,
    kinds={"python"},
    description=(
        "dac_health_check: probes every deployed DAC (process, readiness, HTTP errors, memory), "
        "recomputes its score on fresh held-out twin episodes of its room, writes capsule "
        "telemetry for energy_history, and flags degraded DACs (an issue, or a score under the "
        "client's min_accuracy)."
    ),
)
def dac_health(
    context: dg.AssetExecutionContext,
    storage: FactoryStorage,
    deployer: DeployerResource,
    sensing: SensingResource,
) -> dg.MaterializeResult:
    import time

    from iv_pipelines.deploy.smoke import smoke_payloads
    from iv_pipelines.ops.health import check_dac
    from iv_pipelines.request import DacRequest
    from iv_pipelines.sensing.pipeline import client_resident, client_room

    local = deployer.local(storage.root)
    rows = []
    seed = int(time.time()) // 3600  # a new set of episodes every hour
    for state in sorted((local.state_dir).glob("*/state.json")):
        dac_id = state.parent.name
        req_path = storage.root / "dacs" / dac_id / "request.json"
        if not req_path.exists():
            context.log.warning(f"{dac_id}: deployed but no request.json; skipped")
            continue
        req = DacRequest.model_validate_json(req_path.read_text())
        threshold = req.constraints.min_accuracy or DEFAULT_THRESHOLD
        payloads = smoke_payloads(client_room(req), client_resident(req), 3, seed)
        row = check_dac(local, dac_id, payloads, threshold, storage.root / "telemetry" / "capsules.jsonl")
        rows.append(row)
        (context.log.warning if row.degraded else context.log.info)(
            f"{dac_id}: issue {row.issue}, score {row.score}, threshold {threshold}"
        )
    out = storage.root / "operations" / "health.json"
    atomic_write_text(out, json.dumps([r.to_json() for r in rows], indent=2) + "\n")
    table = (
        "| DAC | issue | score | threshold | degraded | p99 ms |\n|---|---|---|---|---|---|\n"
        + "\n".join(
            f"| {r.dac_id} | {r.issue or '-'} | {'-' if r.score is None else f'{r.score:.3f}'} | {r.threshold} | "
            f"{'YES' if r.degraded else 'no'} | {'-' if r.latency_ms_p99 is None else f'{r.latency_ms_p99:.1f}'} |"
            for r in rows
        )
    )
    return dg.MaterializeResult(
        metadata={
            "dacs": len(rows),
            "degraded": dg.MetadataValue.json([r.dac_id for r in rows if r.degraded]),
            "scores": dg.MetadataValue.json({r.dac_id: r.score for r in rows}),
            "thresholds": dg.MetadataValue.json({r.dac_id: r.threshold for r in rows}),
            "issues": dg.MetadataValue.json({r.dac_id: r.issue for r in rows}),
            "health": dg.MetadataValue.md(table if rows else "(no deployed DAC)"),
            "health_path": dg.MetadataValue.path(str(out)),
        }
    )


class HealConfig(dg.Config):
    dac_id: str
    reason: str = "manual"


@dg.op(description="Diagnose one deployed DAC and, if something is wrong, heal it (ops.healing).")
def heal_dac(
    context: dg.OpExecutionContext,
    config: HealConfig,
    storage: FactoryStorage,
    deployer: DeployerResource,
    atlas: EnergyAtlasResource,
) -> dict:
    from iv_pipelines.ops.healing import Healer, diagnose

    local = deployer.local(storage.root)
    diag = diagnose(local, config.dac_id)
    context.log.info(f"{config.dac_id} ({config.reason}): diagnosis {diag.issue or 'healthy'}")
    if diag.issue is None:
        return {"dac_id": config.dac_id, "reason": config.reason, "issue": None, "action": None}
    action = Healer(local, lambda: atlas.open(storage.root)).heal(diag)
    (context.log.info if action.ok else context.log.error)(
        f"{config.dac_id}: {action.issue} -> {action.strategy} ({'healed' if action.ok else 'NOT healed'})"
    )
    if not action.ok:
        raise dg.Failure(
            description=f"{config.dac_id}: {action.strategy} did not heal {action.issue}",
            metadata={"details": dg.MetadataValue.json(action.details)},
        )
    return {
        "dac_id": config.dac_id,
        "reason": config.reason,
        "issue": action.issue,
        "action": action.to_json(),
    }


@dg.job(
    description="Self-healing for one DAC (launched by the operations sensors, or by hand with its dac_id)."
)
def dac_healing_job():
    heal_dac()


@dg.asset(
    group_name="operations",
    owners=OWNERS,
    kinds={"python"},
    description=(
        "The security audit: re-runs the AI Shield review (policies + provenance) over every DAC's "
        "current package, and audits the factory's dependencies (exact pins where required, "
        "version bounds elsewhere, licences of every installed distribution)."
    ),
)
def security_audit_report(
    context: dg.AssetExecutionContext, storage: FactoryStorage, proof: ProofResource
) -> dg.MaterializeResult:
    from pathlib import Path

    from iv_pipelines.ops.audit import audit_dependencies
    from iv_pipelines.packaging.dac import review_package

    packages = {}
    for cur in sorted((storage.root / "packages").glob("*/current.json")):
        pointer = json.loads(cur.read_text())
        decision, policies, prov = review_package(Path(pointer["directory"]), proof.trusted_key())
        packages[f"{cur.parent.name} {pointer['version']}"] = {
            "approved": decision.approved,
            "findings": [str(f) for f in policies.findings],
            "provenance_problems": prov,
        }
        (context.log.info if decision.approved else context.log.error)(
            f"{cur.parent.name}: {decision.reasons[0]}"
        )
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    deps = audit_dependencies(pyproject) if pyproject.exists() else None
    report = {
        "packages": packages,
        "dependencies": deps.__dict__ if deps else "pyproject.toml not found (installed package)",
    }
    out = storage.root / "operations" / "security_audit.json"
    atomic_write_text(out, json.dumps(report, indent=2, default=str) + "\n")
    failing = [k for k, v in packages.items() if not v["approved"]]
    return dg.MaterializeResult(
        metadata={
            "packages_reviewed": len(packages),
            "packages_failing": dg.MetadataValue.json(failing),
            "unpinned_requirements": dg.MetadataValue.json(deps.unpinned if deps else []),
            "not_exactly_pinned": dg.MetadataValue.json(deps.not_exact if deps else []),
            "distributions_checked": deps.checked if deps else 0,
            "unknown_licences": dg.MetadataValue.json(deps.unknown_licence if deps else {}),
            "copyleft_licences": dg.MetadataValue.json(deps.copyleft if deps else {}),
            "report_path": dg.MetadataValue.path(str(out)),
        }
    )


monthly = dg.MonthlyPartitionsDefinition(start_date="2026-01-01", timezone="UTC")  # completed months


class ClientReportConfig(dg.Config):
    revenue_usd: dict[str, str] = {}  # client_id -> amount billed for the month, e.g. "1200.00"


@dg.asset(
    partitions_def=monthly,
    group_name="operations",
    owners=OWNERS,
    kinds={"html"},
    description=(
        "client_report_generation: per client, its DACs, scores, energy used this month, revenue "
        "attribution on the ledger (when an amount is given) and the incidents healed; HTML with "
        "embedded plots under <storage>/reports/<month>/."
    ),
)
def client_report(
    context: dg.AssetExecutionContext,
    config: ClientReportConfig,
    storage: FactoryStorage,
    atlas: EnergyAtlasResource,
    ledger: LedgerResource,
) -> dg.MaterializeResult:
    from decimal import Decimal

    from iv_pipelines.ledger.revenue import read_attribution, record_attribution
    from iv_pipelines.ops.report import gather, render_html

    period = context.partition_key[:7]
    with atlas.open(storage.root) as graph:
        clients = gather(storage.root, period, graph)
    out_dir = storage.root / "reports" / period
    paths, totals = {}, {}
    for client, dacs in sorted(clients.items()):
        revenue = None
        amount = config.revenue_usd.get(client)
        if amount is not None:
            energy = {d.utid: Decimal(repr(d.energy_j)) for d in dacs if d.utid}
            if not energy or not any(energy.values()):
                raise dg.Failure(
                    description=f"{client}: revenue given but no registered DAC with measured energy in {period}"
                )
            record_path = out_dir / f"{client}.revenue.json"
            prev = json.loads(record_path.read_text()) if record_path.exists() else None
            chain = ledger.get()
            if prev and prev["amount"] == amount and prev["energy"] == {k: str(v) for k, v in energy.items()}:
                tx = prev["tx_hash"]  # already on the ledger for this month: not recorded twice
            else:
                tx = record_attribution(chain, period, amount, energy)["tx_hash"]
                atomic_write_text(
                    record_path,
                    json.dumps(
                        {"amount": amount, "energy": {k: str(v) for k, v in energy.items()}, "tx_hash": tx}
                    )
                    + "\n",
                )
            revenue = read_attribution(chain, tx) | {"tx_hash": tx}
            for d in dacs:
                d.revenue_cents = revenue["shares_cents"].get(d.utid)
        path = out_dir / f"{client}.html"
        atomic_write_text(path, render_html(client, period, dacs, revenue))
        paths[client] = str(path)
        totals[client] = round(sum(d.energy_j for d in dacs), 3)
        context.log.info(f"{client}: {len(dacs)} DACs, {totals[client]} J -> {path}")
    return dg.MaterializeResult(
        metadata={
            "clients": len(paths),
            "reports": dg.MetadataValue.json(paths),
            "energy_J_by_client": dg.MetadataValue.json(totals),
            "report_dir": dg.MetadataValue.path(str(out_dir)),
        }
    )


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

    from iv_pipelines.ops.rdr import crawl, default_corpus

    domains = yaml.safe_load(
        (importlib_resources.files("iv_pipelines") / "data" / "domains.yaml").read_text()
    )["domains"]
    dac_domains = {}
    for req in sorted((storage.root / "dacs").glob("*/request.json")):
        dac_domains[req.parent.name] = json.loads(req.read_text())["domain"]
    source = config.source or str(default_corpus())
    try:
        res = crawl(source, embedder.get(), domains, dac_domains, config.since, config.seed)
    except (OSError, ValueError) as e:
        raise dg.Failure(description=f"rdr_deep_crawl: {e}") from e
    week = dt.date.today().isocalendar()
    tag = f"{week[0]}-W{week[1]:02d}"
    qpath = storage.root / "rdr" / "queue.jsonl"
    queued = (
        {(q["week"], q["dac_id"]) for q in map(json.loads, qpath.read_text().splitlines())}
        if qpath.exists()
        else set()
    )
    new = [q | {"week": tag, "status": "queued"} for q in res.queue if (tag, q["dac_id"]) not in queued]
    if new:
        qpath.parent.mkdir(parents=True, exist_ok=True)
        with open(qpath, "a") as fh:
            fh.write("".join(json.dumps(q) + "\n" for q in new))
    months = sorted({m for t in res.trends.values() for m in t["per_month"]})
    table = (
        "| domain | "
        + " | ".join(months)
        + " | growth |\n|---|"
        + "---|" * (len(months) + 1)
        + "\n"
        + "\n".join(
            f"| {d} | "
            + " | ".join(str(t["per_month"].get(m, 0)) for m in months)
            + f" | x{t['growth']:.1f} |"
            for d, t in sorted(res.trends.items())
        )
    )
    atomic_write_text(storage.root / "rdr" / "trends.md", table + "\n")
    context.log.info(
        f"{res.kept}/{res.read} documents, {res.k} clusters (silhouette {res.silhouette:.2f}), {len(new)} experiments queued"
    )
    return dg.MaterializeResult(
        metadata={
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


class CostConfig(dg.Config):
    current_cloud: dict[str, str] = {}  # dac_id -> aws | gcp | azure where it runs (unset: local, not billed)
    default_cloud: str | None = None  # for DACs not in current_cloud
    migration_cost_usd: dict[str, float] = {}  # dac_id -> one-off cost of moving it (arbitrage needs it)
    window_days: int = 30


@dg.asset(
    group_name="operations",
    owners=OWNERS,
    kinds={"python"},
    description=(
        "cost_optimization: idle capsules (CPU use under 5% of the request), reserved vs "
        "on-demand (uptime over the break-even share) and multi-cloud arbitrage (> 15% cheaper "
        "and paid back in < 30 days) over the shipped, sourced price table; recommendations with "
        "savings only, nothing is changed."
    ),
)
def cost_recommendations(
    context: dg.AssetExecutionContext, config: CostConfig, storage: FactoryStorage
) -> dg.MaterializeResult:
    import time

    from iv_pipelines.ops.cost import load_prices, recommend, usage

    prices = load_prices()
    since = int(time.time() * 1000) - config.window_days * 86_400_000
    use = usage(storage.root / "telemetry" / "capsules.jsonl", since)
    recs = []
    for cur in sorted((storage.root / "packages").glob("*/current.json")):
        dac = cur.parent.name
        man = json.loads((Path(json.loads(cur.read_text())["directory"]) / "manifest.json").read_text())
        res = man["deployment"]["resources"]
        cloud = config.current_cloud.get(dac, config.default_cloud)
        recs += recommend(
            dac,
            res["cpu"],
            res["memory"],
            use.get(dac),
            config.window_days * 24,
            prices,
            cloud,
            config.migration_cost_usd.get(dac),
        )
    total = round(sum(r.monthly_savings_usd for r in recs), 2)
    table = "| DAC | kind | action | USD / month |\n|---|---|---|---|\n" + "\n".join(
        f"| {r.dac_id} | {r.kind} | {r.action} | {r.monthly_savings_usd:.2f} |" for r in recs
    )
    out = storage.root / "operations" / "cost_recommendations.json"
    atomic_write_text(out, json.dumps([r.to_json() for r in recs], indent=2) + "\n")
    context.log.info(f"{len(recs)} recommendations, {total} USD/month; prices accessed {prices['accessed']}")
    return dg.MaterializeResult(
        metadata={
            "recommendations": len(recs),
            "monthly_savings_usd": total,
            "table": dg.MetadataValue.md(table if recs else "(no recommendation)"),
            "prices_accessed": prices["accessed"],
            "path": dg.MetadataValue.path(str(out)),
        }
    )
