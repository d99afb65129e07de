"""Operations, monthly: the client reports (with revenue on the ledger), cost recommendations
and the security audit."""

import json
from pathlib import Path

import dagster as dg

from defs.common import (
    OWNERS,
    monthly_partitions,
    schedule,
    tidy,
)
from iv_pipelines.paths import atomic_write_text
from resources.deploy import EnergyAtlasResource
from resources.ledger import LedgerResource
from resources.proof import ProofResource
from resources.storage import FactoryStorage


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

    from iv_pipelines.ops.audit import audit_dependencies
    from iv_pipelines.packaging.dac import review_package

    packages = {}
    for dac in storage.layout.packaged_dacs():
        pointer = storage.layout.current_package(dac)
        decision, policies, prov = review_package(Path(pointer["directory"]), proof.trusted_key())
        packages[f"{dac} {pointer['version']}"] = {
            "approved": decision.approved,
            "findings": [str(f) for f in policies.findings],
            "provenance_problems": prov,
        }
        (context.log.info if decision.approved else context.log.error)(f"{dac}: {decision.reasons[0]}")
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"  # the repository root
    deps = audit_dependencies(pyproject) if pyproject.exists() else None
    report = {
        "packages": packages,
        "dependencies": deps.__dict__ if deps else "pyproject.toml not found (installed package)",
    }
    out = storage.layout.operations_file("security_audit.json")
    atomic_write_text(out, json.dumps(report, indent=2, default=str) + "\n")
    failing = [k for k, v in packages.items() if not v["approved"]]
    return dg.MaterializeResult(
        metadata=tidy(
            {
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
    )


class ClientReportConfig(dg.Config):
    revenue_usd: dict[str, str] = {}  # client_id -> amount billed for the month, e.g. "1200.00"


@dg.asset(
    partitions_def=monthly_partitions,
    pool="atlas",
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

    from iv_pipelines.ledger.revenue import attribute_once, read_attribution
    from iv_pipelines.ops.report import gather, render_html

    period = context.partition_key[:7]
    with atlas.open(storage.root) as graph:
        clients = gather(storage.root, period, graph)
    out_dir = storage.layout.reports_dir(period)
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
            chain = ledger.get()
            tx, sent = attribute_once(chain, out_dir / f"{client}.revenue.json", period, amount, energy)
            context.log.info(f"{client}: revenue {'recorded' if sent else 'already on the ledger'} ({tx})")
            revenue = read_attribution(chain, tx) | {"tx_hash": tx}
            for d in dacs:
                d.revenue_cents = revenue["shares_cents"].get(d.utid)
        path = out_dir / f"{client}.html"
        atomic_write_text(path, render_html(client, period, dacs, revenue))
        paths[client] = str(path)
        totals[client] = round(sum(d.energy_j for d in dacs), 3)
        context.log.info(f"{client}: {len(dacs)} DACs, {totals[client]} J -> {path}")
    return dg.MaterializeResult(
        metadata=tidy(
            {
                "clients": len(paths),
                "reports": dg.MetadataValue.json(paths),
                "energy_J_by_client": dg.MetadataValue.json(totals),
                "report_dir": dg.MetadataValue.path(str(out_dir)),
            }
        )
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

    from iv_pipelines.ops.cost import load_prices, recommend
    from iv_pipelines.telemetry import usage

    prices = load_prices()
    since = int(time.time() * 1000) - config.window_days * 86_400_000
    use = usage(storage.layout.telemetry_file(), since)
    recs = []
    for dac in storage.layout.packaged_dacs():
        man = storage.layout.current_manifest(dac)
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
    out = storage.layout.operations_file("cost_recommendations.json")
    atomic_write_text(out, json.dumps([r.to_json() for r in recs], indent=2) + "\n")
    context.log.info(f"{len(recs)} recommendations, {total} USD/month; prices accessed {prices['accessed']}")
    return dg.MaterializeResult(
        metadata=tidy(
            {
                "recommendations": len(recs),
                "monthly_savings_usd": total,
                "table": dg.MetadataValue.md(table if recs else "(no recommendation)"),
                "prices_accessed": prices["accessed"],
                "path": dg.MetadataValue.path(str(out)),
            }
        )
    )


client_report_job = dg.define_asset_job(
    name="client_report_job",
    selection=dg.AssetSelection.assets("client_report"),
    partitions_def=monthly_partitions,
    description="Monthly client reports (HTML): DACs, scores, energy, revenue on the ledger, incidents healed.",
)

# the monthly partition of the month that just ended, on the 1st at 06:00
client_report_schedule = dg.build_schedule_from_partitioned_job(
    client_report_job,
    name="client_report_schedule",
    hour_of_day=6,
    minute_of_hour=0,
    description="Monthly (1st) 06:00: the client reports of the month that just ended (seed: client_report_generation).",
)

cost_recommendations_job = dg.define_asset_job(
    name="cost_recommendations_job",
    selection=dg.AssetSelection.assets("cost_recommendations"),
    description="Idle capsules, reserved vs on-demand, multi-cloud arbitrage: recommendations with savings.",
)

cost_recommendations_schedule = schedule(
    "cost_recommendations_schedule",
    cost_recommendations_job,
    "0 6 1 * *",
    "Monthly (1st) 06:00: cost recommendations, never applied automatically (seed: cost_optimization).",
)

security_audit_report_job = dg.define_asset_job(
    name="security_audit_report_job",
    selection=dg.AssetSelection.assets("security_audit_report"),
    description="Re-reviews every package (shield policies + provenance); audits dependency pins and licences.",
)

security_audit_report_schedule = schedule(
    "security_audit_report_schedule",
    security_audit_report_job,
    "0 7 1 * *",
    "Monthly (1st) 07:00: re-review every package; audit dependency pins and licences (seed: security_audit).",
)
