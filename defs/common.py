"""What every UI group shares: owners, partitions, the schedule helper, and `@metered`.

`@metered` meters an asset's compute (CPU time x power model, RAPL, NVML) and logs the step's
energy as an AssetObservation tagged `iv/metered`, which `energy_signature` and
`energy_history` read back (`step_observations`). Put it under `@dg.asset`; it keeps the
function's signature (Dagster reads parameters through `__wrapped__`) and works for functions
that return and for generators that yield.
"""

import base64
import functools
import inspect
import math
from collections.abc import Iterator

import dagster as dg

from iv_pipelines.energy.meter import Meter

OWNERS = ["team:dac-factory"]
TZ = "UTC"  # every schedule (DESIGN §6)
ENERGY_TAG = "iv/metered"

# What a step's own Kubernetes Job asks for in prod is measured, not declared here: every
# metered step records its cores and peak memory, `iv k8s step-sizes --write` turns them into
# `deploy/step_resources.json`, and the prod executor sizes each step's Job from it
# (`resources/selection.lifecycle_executor`; the training steps' GPU pods: `GpuStepResource`).

# one `dac` partition per Deploy Anywhere Capsule
dac_partitions = dg.DynamicPartitionsDefinition(name="dac")
# completed months (client reports)
monthly_partitions = dg.MonthlyPartitionsDefinition(start_date="2026-01-01", timezone=TZ)


def tidy(metadata: dict) -> dict:
    """Metadata as the UI shows it: plain floats rounded to 4 decimals (a score printed with
    16 digits claims a precision nobody measured); everything else as given, in the order
    given (each asset puts its result first)."""
    return {k: round(v, 4) if isinstance(v, float) and math.isfinite(v) else v for k, v in metadata.items()}


def image(path) -> dg.MetadataValue:
    """A PNG shown inline in the UI (markdown with a data URI), not a file path."""
    from pathlib import Path

    data = base64.b64encode(Path(path).read_bytes()).decode()
    return dg.MetadataValue.md(f"![{Path(path).name}](data:image/png;base64,{data})")


def schedule(name: str, job, cron: str, description: str) -> dg.ScheduleDefinition:
    """A cron schedule in UTC."""
    return dg.ScheduleDefinition(
        name=name, job=job, cron_schedule=cron, execution_timezone=TZ, description=description
    )


def step_observations(
    instance: dg.DagsterInstance, asset: str, partition: str | None = None, limit: int | None = None
) -> Iterator[tuple[str, dict, str]]:
    """The metered-step observations of `asset` (newest first; of one partition if given):
    (partition, metadata values, run id)."""
    cursor, seen = None, 0
    while True:
        if partition is not None:
            res = instance.fetch_observations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]),
                limit=min(limit or 1000, 1000),
                cursor=cursor,
            )
        else:
            res = instance.fetch_observations(dg.AssetKey(asset), limit=1000, cursor=cursor)
        for r in res.records:
            obs = r.event_log_entry.asset_observation
            if obs is None or (obs.tags or {}).get(ENERGY_TAG) != "step" or not obs.partition:
                continue
            yield obs.partition, {k: v.value for k, v in obs.metadata.items()}, r.event_log_entry.run_id
            seen += 1
            if limit is not None and seen >= limit:
                return
        if not res.has_more:
            return
        cursor = res.cursor


def step_measurements(instance: dg.DagsterInstance, assets, limit: int = 200) -> dict[str, list[dict]]:
    """{asset: [metadata of its newest metered observations, partitioned or not]} (at most
    `limit` each): what `iv k8s step-sizes` sizes each step's Kubernetes Job from."""
    out: dict[str, list[dict]] = {}
    for asset in assets:
        res = instance.fetch_observations(dg.AssetKey(asset), limit=limit)
        rows = [
            {k: v.value for k, v in obs.metadata.items()}
            for r in res.records
            if (obs := r.event_log_entry.asset_observation) is not None
            and (obs.tags or {}).get(ENERGY_TAG) == "step"
        ]
        if rows:
            out[asset] = rows
    return out


def _observe(context, meter: Meter) -> None:
    step = meter.stop()
    pk = context.partition_key if context.has_partition_key else None
    context.log_event(
        dg.AssetObservation(
            asset_key=context.asset_key,
            partition=pk,
            metadata=step.metadata(),
            tags={ENERGY_TAG: "step"},
        )
    )
    context.log.debug(
        f"metered {context.asset_key.to_user_string()}: {step.energy_j:.2f} J, {step.cpu_seconds:.2f} CPU s"
    )


def metered(fn):
    """The metering observation is logged before the asset's own result (its materialization
    is then the newest event, with the result's metadata), and after the compute it meters."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(context, *args, **kwargs):
            m, observed = Meter().start(), False
            try:
                for item in fn(context, *args, **kwargs):
                    if not observed and isinstance(item, (dg.Output, dg.MaterializeResult)):
                        _observe(context, m)
                        observed = True
                    yield item
            except BaseException:
                if not observed:
                    m.stop()  # ends its memory sampler; a failed step logs no observation
                raise
            if not observed:
                _observe(context, m)

        return gen

    @functools.wraps(fn)
    def wrapper(context, *args, **kwargs):
        m = Meter().start()
        try:
            out = fn(context, *args, **kwargs)
        except BaseException:
            m.stop()
            raise
        _observe(context, m)
        return out

    return wrapper
