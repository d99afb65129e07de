"""The cost optimiser: recommendations with savings, never silent changes.

Prices: `data/prices.yaml` (sources and dates in the file). A capsule's hourly cost is its
share of the reference instance class: max(cpu request / vCPU, memory limit / memory) x the
class's hourly price (general-purpose families price linearly in size, so a share is what a
bin-packed node would charge).

Rules:
- idle: measured CPU use (capsule telemetry) under 5% of the CPU request -> right-size the
  request to 2x the measured use (at least 0.05 core); savings = the cost difference;
- reserved vs on-demand: a 1-year reservation pays off when the capsule runs more than the
  break-even share of hours (1 - discount); savings = on-demand cost of the hours it runs -
  the reserved cost of every hour;
- multi-cloud arbitrage (the seed's rules): recommend migrating only if the other cloud is
  more than 15% cheaper AND the migration pays back in under 30 days (one-off migration cost
  / daily savings); without a configured migration cost no arbitrage is recommended.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources as importlib_resources
from pathlib import Path

import yaml

from iv_pipelines.packaging.k8s import cpu_cores, memory_mib

IDLE_SHARE = 0.05
MIN_CORES = 0.05
ARBITRAGE_MIN_SAVING = 0.15
ARBITRAGE_MAX_BREAK_EVEN_DAYS = 30


def load_prices(path: Path | None = None) -> dict:
    text = (
        Path(path).read_text()
        if path
        else (importlib_resources.files("iv_pipelines") / "data" / "prices.yaml").read_text()
    )
    return yaml.safe_load(text)


def hourly_cost(
    cpu_cores: float, memory_gib: float, cloud: str, prices: dict, cls: str = "general-4vcpu-16gb"
) -> float:
    c = prices["classes"][cls]
    share = max(cpu_cores / c["vcpu"], memory_gib / c["memory_gib"])
    return share * c["prices"][cloud]["on_demand"]


@dataclass
class Recommendation:
    dac_id: str
    kind: str  # idle | reserved | arbitrage
    action: str
    monthly_savings_usd: float
    evidence: dict

    def to_json(self) -> dict:
        return asdict(self)


def recommend(
    dac_id: str,
    cpu_request: str,
    memory_limit: str,
    use: dict | None,
    window_hours: float,
    prices: dict,
    current_cloud: str | None,
    migration_cost_usd: float | None,
) -> list[Recommendation]:
    hours = prices["hours_per_month"]
    cores, mem = cpu_cores(cpu_request), memory_mib(memory_limit) / 1024
    out = []
    if current_cloud is None:
        return out  # local / edge deployment: nothing billed by a cloud
    cost_h = hourly_cost(cores, mem, current_cloud, prices)
    if use and use["wall_seconds"] > 0:
        used_cores = use["cpu_seconds"] / use["wall_seconds"]
        if used_cores < IDLE_SHARE * cores:
            new = max(2 * used_cores, MIN_CORES)
            saving = (cost_h - hourly_cost(new, mem, current_cloud, prices)) * hours
            if saving > 0:
                out.append(
                    Recommendation(
                        dac_id,
                        "idle",
                        f"lower the CPU request from {cores:g} to {new:.3f} cores",
                        round(saving, 2),
                        {"used_cores": round(used_cores, 4), "requested_cores": cores},
                    )
                )
        uptime = min(1.0, use["wall_seconds"] / 3600 / window_hours) if window_hours > 0 else 0.0
        d = prices["reserved"]["one_year_discount"]
        if uptime > 1 - d:
            saving = (cost_h * uptime - cost_h * (1 - d)) * hours
            out.append(
                Recommendation(
                    dac_id,
                    "reserved",
                    f"buy a 1-year reservation on {current_cloud}",
                    round(saving, 2),
                    {"uptime": round(uptime, 3), "break_even_uptime": round(1 - d, 3), "discount": d},
                )
            )
    if migration_cost_usd is not None:
        for cloud in sorted(prices["classes"]["general-4vcpu-16gb"]["prices"]):
            if cloud == current_cloud:
                continue
            other = hourly_cost(cores, mem, cloud, prices)
            cheaper = (cost_h - other) / cost_h
            daily = (cost_h - other) * 24
            days = migration_cost_usd / daily if daily > 0 else float("inf")
            if cheaper > ARBITRAGE_MIN_SAVING and days < ARBITRAGE_MAX_BREAK_EVEN_DAYS:
                out.append(
                    Recommendation(
                        dac_id,
                        "arbitrage",
                        f"migrate from {current_cloud} to {cloud}",
                        round((cost_h - other) * hours, 2),
                        {
                            "cheaper_by": round(cheaper, 3),
                            "break_even_days": round(days, 1),
                            "migration_cost_usd": migration_cost_usd,
                        },
                    )
                )
    return out
