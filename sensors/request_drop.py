"""`dac_request_drop_sensor`: turns files dropped in `<storage>/drop/` into `dac` partitions."""

import json

import dagster as dg

from assets.jobs import dac_lifecycle_job
from assets.partitions import dac_partitions
from iv_pipelines.intake import process_drop_folder
from resources.storage import FactoryStorage

MAX_FILES_PER_TICK = 50  # bounded work: Dagster cuts sensor ticks at 60 s


@dg.sensor(
    name="dac_request_drop_sensor",
    job=dac_lifecycle_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the request drop folder: valid request files become `dac` partitions with a "
        "lifecycle run; invalid ones move to rejected/ with the error written beside them."
    ),
)
def dac_request_drop_sensor(context: dg.SensorEvaluationContext, storage: FactoryStorage):
    cursor = json.loads(context.cursor) if context.cursor else {"accepted": 0, "rejected": 0}
    outcome = process_drop_folder(storage.drop_dir(), storage.requests(), MAX_FILES_PER_TICK)
    for r in outcome.rejected:
        context.log.warning(f"rejected {r.source.name}: {r.message} (see {r.error_file})")
    new_ids = [a.request.dac_id for a in outcome.accepted]
    known = set(context.instance.get_dynamic_partitions(dac_partitions.name))
    to_add = sorted({i for i in new_ids if i not in known})
    cursor["accepted"] += len(outcome.accepted)
    cursor["rejected"] += len(outcome.rejected)
    runs = [
        dg.RunRequest(
            partition_key=a.request.dac_id,
            run_key=f"{a.request.dac_id}:{a.request.digest()[:16]}",
            tags={"iv/source_file": a.source.name},
        )
        for a in outcome.accepted
    ]
    if not runs and not outcome.rejected:
        return dg.SkipReason(f"no request files in {storage.drop_dir()}")
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=[dac_partitions.build_add_request(to_add)] if to_add else [],
        cursor=json.dumps(cursor),
    )
