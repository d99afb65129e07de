"""Schedules: cron, timezone, target job, and what a tick at the scheduled time requests."""

import datetime as dt

import dagster as dg
import pytest
from dagster._utils.schedules import cron_string_iterator

from iv_app.definitions import defs


@pytest.mark.parametrize(
    "name, cron, job, when",
    [
        (
            "ledger_in_sync_schedule",
            "0 0 * * *",
            "ledger_in_sync_job",
            dt.datetime(2026, 11, 27, 0, 0, tzinfo=dt.UTC),
        ),
        (
            "dac_health_schedule",
            "0 */4 * * *",
            "dac_health_job",
            dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.UTC),
        ),
        (
            "client_report_schedule",
            "0 6 1 * *",
            "client_report_job",
            dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC),
        ),
        (
            "base_model_update_schedule",
            "0 4 * * 0",
            "base_model_update_job",
            dt.datetime(2026, 11, 29, 4, 0, tzinfo=dt.UTC),
        ),
        (
            "rdr_findings_schedule",
            "0 3 * * 0",
            "rdr_findings_job",
            dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.UTC),
        ),
        (
            "cost_recommendations_schedule",
            "0 6 1 * *",
            "cost_recommendations_job",
            dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC),
        ),
        (
            "energy_trends_schedule",
            "0 2 * * *",
            "energy_trends_job",
            dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC),
        ),
        (
            "security_audit_report_schedule",
            "0 7 1 * *",
            "security_audit_report_job",
            dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC),
        ),
        (
            "service_mesh_schedule",
            "0 5 * * 0",
            "service_mesh_job",
            dt.datetime(2026, 11, 29, 5, 0, tzinfo=dt.UTC),
        ),
    ],
)
def test_schedule_ticks_request_its_job(name, cron, job, when):
    sched = defs.get_schedule_def(name)
    assert (sched.cron_schedule, sched.execution_timezone, sched.job_name) == (cron, "UTC", job)
    with dg.instance_for_test() as instance:
        data = sched.evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
        )
    assert len(data.run_requests) == 1
    # the next fire time after one second before `when` is `when` itself (2026-11-29 is a Sunday)
    assert next(cron_string_iterator(when.timestamp() - 1, cron, "UTC")).timestamp() == when.timestamp()
