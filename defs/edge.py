"""UI group `edge`: what the devices sent. `device_captures` (daily partitions, backfillable)
summarises each device's day from the ingest service's capture store and detection log."""

import datetime as dt

import dagster as dg

from defs.common import OWNERS, tidy
from resources.storage import FactoryStorage

daily_devices = dg.DailyPartitionsDefinition(start_date="2026-12-01", timezone="UTC")


@dg.asset(
    partitions_def=daily_devices,
    group_name="edge",
    owners=OWNERS,
    kinds={"python"},
    description=(
        "Per device, one day of what the edge ingest service stored: frames, the device-clock "
        "span and mean rate, gaps in its sequence numbers, mean RSSI, and the detections its "
        "DAC's capsule returned. Read from <storage>/edge/ (captures and detections.jsonl)."
    ),
)
def device_captures(context: dg.AssetExecutionContext, storage: FactoryStorage) -> dg.MaterializeResult:
    from iv_pipelines.edge.captures import summarise_day

    day = dt.date.fromisoformat(context.partition_key)
    layout = storage.layout
    rows = summarise_day(layout.edge_captures_dir(), layout.edge_detections_file(), day)
    context.log.info(f"{day}: {len(rows)} device(s), {sum(r['frames'] for r in rows)} frames")
    table = "| device | frames | span (s) | rate (Hz) | gaps | mean RSSI | detections |\n|---|---|---|---|---|---|---|\n"
    table += "\n".join(
        f"| {r['device_id']} | {r['frames']} | {r['span_s']} | {r['rate_hz']} | {r['gaps']} | {r['mean_rssi']} | "
        + (", ".join(f"{k} {v}" for k, v in sorted(r["detections"].items())) or "-")
        + " |"
        for r in rows
    )
    return dg.MaterializeResult(
        metadata=tidy(
            {
                "devices": len(rows),
                "frames": sum(r["frames"] for r in rows),
                "gaps": sum(r["gaps"] for r in rows),
                "by_device": dg.MetadataValue.md(table if rows else "(no device sent frames that day)"),
                "captures_dir": dg.MetadataValue.path(str(layout.edge_captures_dir())),
            }
        )
    )


device_captures_job = dg.define_asset_job(
    name="device_captures_job",
    selection=dg.AssetSelection.assets("device_captures"),
    partitions_def=daily_devices,
    description="Summarises one day of device captures (what each ESP32 sent, gaps, detections).",
)

device_captures_schedule = dg.build_schedule_from_partitioned_job(
    device_captures_job,
    name="device_captures_schedule",
    hour_of_day=0,
    minute_of_hour=30,
    description="Daily 00:30: the day that ended, for every device the edge ingest service heard.",
)
