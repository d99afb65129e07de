"""Schedules: the operations jobs, explicit cron and timezone (DESIGN §6).

Only jobs that do real work today are scheduled; the rest of the nine come with the
operations issue (each needs its job first):
- `blockchain_sync` daily 00:00 UTC: re-verifies every registered DAC (ledger_in_sync);
- `energy_atlas_optimization_schedule` daily 02:00 UTC: routing tables recomputed, DACs and
  routes whose energy cost rose over the last 24 h reported;
- `dac_health_check_schedule` every 4 h: the `dac_health` asset (probe, rescore, telemetry);
- `client_report_generation` monthly (1st) 06:00 UTC: the report of the month that ended;
- `cost_optimization_schedule` monthly (1st) 06:00 UTC: cost recommendations;
- `security_audit_schedule` monthly (1st) 07:00 UTC: every package re-reviewed, dependency
  pins and licences audited;
- `rdr_deep_crawl_schedule` Sundays 03:00 UTC: the research crawl (`rdr_findings`);
- `lora_model_updates_schedule` Sundays 04:00 UTC: a candidate base model, promoted only if it
  beats the current one on the same held-out rooms (then `base_model_promoted_sensor` reruns
  every DAC's lifecycle so its adapter is retrained on the new base);
- `service_mesh_rebalancing` Sundays 05:00 UTC: recomputes TTF routes over the ASI registry
  and re-routes deployed capsules (hysteresis), logging FOLLOWED_ROUTE to the Atlas.
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

blockchain_sync_schedule = dg.ScheduleDefinition(
    name="blockchain_sync_schedule",
    job=blockchain_sync_job,
    cron_schedule="0 0 * * *",
    execution_timezone=TZ,
    description="Daily 00:00: re-verify every registered DAC against the ledger and its proofs.",
)

service_mesh_rebalancing = dg.ScheduleDefinition(
    name="service_mesh_rebalancing",
    job=service_mesh_job,
    cron_schedule="0 5 * * 0",
    execution_timezone=TZ,
    description="Sundays 05:00: recompute TTF routes and re-route deployed capsules.",
)

dac_health_check_schedule = dg.ScheduleDefinition(
    name="dac_health_check_schedule",
    job=dac_health_check_job,
    cron_schedule="0 */4 * * *",
    execution_timezone=TZ,
    description="Every 4 hours: probe and rescore every deployed DAC; flag degraded ones.",
)

security_audit_schedule = dg.ScheduleDefinition(
    name="security_audit_schedule",
    job=security_audit_job,
    cron_schedule="0 7 1 * *",
    execution_timezone=TZ,
    description="Monthly (1st) 07:00: re-review every package; audit dependency pins and licences.",
)

energy_atlas_optimization_schedule = dg.ScheduleDefinition(
    name="energy_atlas_optimization_schedule",
    job=energy_atlas_optimization_job,
    cron_schedule="0 2 * * *",
    execution_timezone=TZ,
    description="Daily 02:00: recompute routing tables; report rising DAC energy and route costs.",
)

# the monthly partition of the month that just ended, on the 1st at 06:00
client_report_generation = dg.build_schedule_from_partitioned_job(
    client_report_job, name="client_report_generation", hour_of_day=6, minute_of_hour=0
)

lora_model_updates = dg.ScheduleDefinition(
    name="lora_model_updates_schedule",
    job=lora_model_updates_job,
    cron_schedule="0 4 * * 0",
    execution_timezone=TZ,
    description="Sundays 04:00: candidate base model; promoted only if it beats the current one.",
)

rdr_deep_crawl = dg.ScheduleDefinition(
    name="rdr_deep_crawl_schedule",
    job=rdr_deep_crawl_job,
    cron_schedule="0 3 * * 0",
    execution_timezone=TZ,
    description="Sundays 03:00: research crawl, per-domain trends, evolution experiments queued.",
)

cost_optimization = dg.ScheduleDefinition(
    name="cost_optimization_schedule",
    job=cost_optimization_job,
    cron_schedule="0 6 1 * *",
    execution_timezone=TZ,
    description="Monthly (1st) 06:00: cost recommendations (never applied automatically).",
)

schedules: list = [
    cost_optimization,
    rdr_deep_crawl,
    lora_model_updates,
    client_report_generation,
    energy_atlas_optimization_schedule,
    blockchain_sync_schedule,
    service_mesh_rebalancing,
    dac_health_check_schedule,
    security_audit_schedule,
]
