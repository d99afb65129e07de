"""Schedules: the nine operations jobs, explicit cron, all in UTC (DESIGN §6).

daily    00:00 blockchain_sync            re-verify every registered DAC (ledger_in_sync)
         02:00 energy_atlas_optimization  routing tables recomputed; rising DAC energy and
                                          route costs over the last 24 h reported
   every 4 h   dac_health_check           probe, rescore on fresh twin episodes, telemetry
weekly   03:00 rdr_deep_crawl             research crawl, trends, evolution experiments queued
(Sunday) 04:00 lora_model_updates         candidate base model, promoted only if better
         05:00 service_mesh_rebalancing   TTF routes recomputed, capsules re-routed (hysteresis)
monthly  06:00 client_report_generation   the report of the month that just ended
(1st)    06:00 cost_optimization          cost recommendations, never applied automatically
         07:00 security_audit             every package re-reviewed; dependency pins, licences
"""

import dagster as dg

from assets.jobs import (
    blockchain_sync_job,
    client_report_job,
    cost_optimization_job,
    dac_health_check_job,
    energy_atlas_optimization_job,
    lora_model_updates_job,
    rdr_deep_crawl_job,
    security_audit_job,
    service_mesh_job,
)

TZ = "UTC"


def _schedule(name: str, job, cron: str, description: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=name, job=job, cron_schedule=cron, execution_timezone=TZ, description=description
    )


schedules: list = [
    _schedule(
        "blockchain_sync_schedule",
        blockchain_sync_job,
        "0 0 * * *",
        "Daily 00:00: re-verify every registered DAC against the ledger and its proofs.",
    ),
    _schedule(
        "energy_atlas_optimization_schedule",
        energy_atlas_optimization_job,
        "0 2 * * *",
        "Daily 02:00: recompute routing tables; report rising DAC energy and route costs.",
    ),
    _schedule(
        "dac_health_check_schedule",
        dac_health_check_job,
        "0 */4 * * *",
        "Every 4 hours: probe and rescore every deployed DAC; flag degraded ones.",
    ),
    _schedule(
        "rdr_deep_crawl_schedule",
        rdr_deep_crawl_job,
        "0 3 * * 0",
        "Sundays 03:00: research crawl, per-domain trends, evolution experiments queued.",
    ),
    _schedule(
        "lora_model_updates_schedule",
        lora_model_updates_job,
        "0 4 * * 0",
        "Sundays 04:00: candidate base model; promoted only if it beats the current one.",
    ),
    _schedule(
        "service_mesh_rebalancing",
        service_mesh_job,
        "0 5 * * 0",
        "Sundays 05:00: recompute TTF routes and re-route deployed capsules.",
    ),
    # the monthly partition of the month that just ended, on the 1st at 06:00
    dg.build_schedule_from_partitioned_job(
        client_report_job, name="client_report_generation", hour_of_day=6, minute_of_hour=0
    ),
    _schedule(
        "cost_optimization_schedule",
        cost_optimization_job,
        "0 6 1 * *",
        "Monthly (1st) 06:00: cost recommendations (never applied automatically).",
    ),
    _schedule(
        "security_audit_schedule",
        security_audit_job,
        "0 7 1 * *",
        "Monthly (1st) 07:00: re-review every package; audit dependency pins and licences.",
    ),
]
