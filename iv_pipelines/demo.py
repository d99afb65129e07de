"""`make demo`: register the sample request and run the lifecycle job on embedded defaults."""

from __future__ import annotations

import time
from importlib import resources as importlib_resources
from pathlib import Path

SAMPLE_REQUEST = "fall-detection-acme.yaml"


def sample_request_path() -> Path:
    repo_copy = Path(__file__).resolve().parent.parent / "examples" / "requests" / SAMPLE_REQUEST
    if repo_copy.exists():
        return repo_copy
    return Path(str(importlib_resources.files("iv_pipelines") / "data" / SAMPLE_REQUEST))


def run_demo(request_file: Path | None = None) -> int:
    import dagster as dg

    from iv_pipelines.cli import _instance, register_request
    from iv_pipelines.definitions import defs

    t0 = time.perf_counter()
    instance = _instance()
    storage = defs.resources["storage"]
    path = request_file or sample_request_path()
    dac_id, stored, created = register_request(path, instance, storage)
    print(f"[demo] request {path.name} -> dac partition {dac_id!r} ({'new' if created else 'existing'})")
    job = defs.resolve_job_def("dac_lifecycle_job")
    result = job.execute_in_process(instance=instance, partition_key=dac_id, raise_on_error=False)
    print(f"[demo] run {result.run_id} {'succeeded' if result.success else 'FAILED'}")
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        print(f"[demo]   {mat.asset_key.to_user_string()}[{dac_id}]")
        for key, value in mat.metadata.items():
            if isinstance(value, dg.PathMetadataValue) or key in ("path",):
                print(f"[demo]     {key}: {value.value}")
    if not result.success:
        for ev in result.all_events:
            if ev.is_failure:
                print(f"[demo]   failure: {ev.message}")
    print(f"[demo] Dagster home: {instance.root_directory}; storage: {storage.root}")
    print(f"[demo] wall time {time.perf_counter() - t0:.1f} s")
    return 0 if result.success else 1
