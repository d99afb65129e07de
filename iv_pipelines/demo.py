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
    if instance.get_latest_materialization_event(dg.AssetKey("score_calibration")) is None:
        print("[demo] calibrating scores against the null set (first run only, ~20-40 s)...")
        cal = defs.resolve_job_def("score_calibration_job").execute_in_process(instance=instance)
        if not cal.success:
            print("[demo] calibration FAILED")
            return 1
    job = defs.resolve_job_def("dac_lifecycle_job")
    result = job.execute_in_process(instance=instance, partition_key=dac_id, raise_on_error=False)
    print(f"[demo] run {result.run_id} {'succeeded' if result.success else 'FAILED'}")
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        print(f"[demo]   {mat.asset_key.to_user_string()}[{dac_id}]")
        for key, value in mat.metadata.items():
            if isinstance(value, dg.PathMetadataValue) or key in ("path",):
                print(f"[demo]     {key}: {value.value}")
    _print_discovery(result)
    if not result.success:
        for ev in result.all_events:
            if ev.is_failure:
                print(f"[demo]   failure: {ev.message}")
    print(f"[demo] Dagster home: {instance.root_directory}; storage: {storage.root}")
    print(f"[demo] wall time {time.perf_counter() - t0:.1f} s")
    return 0 if result.success else 1


def _print_discovery(result) -> None:
    try:
        outcome = result.output_for_node("validated_hypothesis")
    except Exception:  # the asset did not run (an upstream failure is printed below)
        return
    print(f"[demo] chosen hypothesis: {outcome.hypothesis.text}")
    ops = "  ".join(f"{op}={outcome.percentiles[op]:.3f}" for op in outcome.percentiles)
    print(f"[demo] OBMI percentiles: {ops}  PRIN={outcome.prin:.3f}")
    print(
        f"[demo] validation score {outcome.validation_score:.3f} (threshold {outcome.threshold}) -> "
        f"{'PASS' if outcome.passed else 'FAIL'}; ODS (asal_consciousness) {outcome.ods:.3f}; "
        f"DGM iterations {outcome.iterations} ({outcome.candidates_scored} candidates scored)"
    )
