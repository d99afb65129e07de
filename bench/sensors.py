"""Sensor tick times with 1,000 DACs registered (goal DESIGN §8: < 2 s per tick), each next to
the same tick with 10 DACs measured in the same run.

Setup per size N: N `dac` partitions; a `dac_health` materialization scoring all N (a third
under threshold); an Energy Atlas with 30 lifecycle states per DAC plus one 3-sigma spike for
every tenth DAC; N `dac_deployment` materializations; a drop folder with 50 valid requests
(the drop sensor handles at most 50 per tick); 10 telemetry samples per DAC, every
tenth DAC jumping to 4x its CPU rate in the last one; N `dac_feedback` materializations (every
tenth DAC drifted, every seventh under its accuracy constraint).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def setup(n: int, root: Path):
    import dagster as dg
    import yaml

    from iv_pipelines.energy.atlas import EnergyState
    from resources.deploy import EnergyAtlasResource
    from resources.storage import FactoryStorage

    instance = dg.DagsterInstance.ephemeral()
    dacs = [f"dac-{i:04d}" for i in range(n)]
    instance.add_dynamic_partitions("dac", dacs)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            "dac_health",
            metadata={
                "scores": dg.MetadataValue.json(
                    {d: (0.8 if i % 3 == 0 else 0.97) for i, d in enumerate(dacs)}
                ),
                "thresholds": dg.MetadataValue.json(dict.fromkeys(dacs, 0.95)),
            },
        )
    )
    for d in dacs:
        instance.report_runless_asset_event(dg.AssetMaterialization("dac_deployment", partition=d))
    for i, d in enumerate(dacs):  # every tenth DAC drifted, every seventh under its constraint
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "dac_feedback",
                partition=d,
                metadata={
                    "drifted": i % 10 == 0,
                    "drift_p_value": 0.005 if i % 10 == 0 else 0.4,
                    "feedback_n": 30,
                    "feedback_accuracy": 0.7 if i % 7 == 0 else 0.97,
                    "feedback_ci95": dg.MetadataValue.json([0.52, 0.83] if i % 7 == 0 else [0.83, 0.99]),
                    "feedback_below_constraint": i % 7 == 0,
                    "min_accuracy": 0.95,
                },
            )
        )
    storage = FactoryStorage(root_dir=str(root / "iv"))
    atlas = EnergyAtlasResource(root_dir=str(root / "atlas"))
    states = [
        EnergyState(f"dac:{d}", 1000 * t, 10.0 + (t % 3) * 0.1, 0.0, 0.5, "lifecycle", f"r{t}")
        for d in dacs
        for t in range(30)
    ]
    states += [EnergyState(f"dac:{d}", 40_000, 90.0, 0.0, 0.5, "lifecycle", "spike") for d in dacs[::10]]
    with atlas.open(storage.root) as g:
        g.record(states)
    tel = storage.layout.telemetry_file()
    tel.parent.mkdir(parents=True, exist_ok=True)
    with open(tel, "w") as fh:  # 10 samples per DAC, every tenth DAC jumps at the end
        for t in range(10):
            for i, d in enumerate(dacs):
                cpu = 40.0 if (t == 9 and i % 10 == 0) else 10.0
                fh.write(f'{{"service": "{d}", "ts_ms": {t}, "cpu_seconds": {cpu}, "wall_seconds": 100.0}}\n')
    drop = storage.drop_dir()
    drop.mkdir(parents=True, exist_ok=True)
    sample = yaml.safe_load(
        (Path(__file__).resolve().parent.parent / "examples/requests/fall-detection-acme.yaml").read_text()
    )
    sample.pop("calibration", None)  # its capture paths are relative to examples/requests/
    for i in range(50):
        (drop / f"req-{i:03d}.yaml").write_text(
            yaml.safe_dump(sample | {"dac_id": f"drop-{i:03d}", "client_id": f"client-{i:03d}"})
        )
    return instance, {"storage": storage, "atlas": atlas}


def tick_times(n: int) -> dict[str, float]:
    import dagster as dg

    from defs.deployment import dac_deployed_sensor
    from defs.discovery import dac_request_drop_sensor
    from defs.operations.energy import energy_variance_sensor
    from defs.operations.feedback import dac_drift_sensor, feedback_accuracy_sensor
    from defs.operations.health import cost_anomaly_sensor, score_below_threshold_sensor
    from iv_app.definitions import defs

    repo = defs.get_repository_def()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        instance, res = setup(n, Path(tmp))
        for s in (
            score_below_threshold_sensor,
            energy_variance_sensor,
            dac_deployed_sensor,
            cost_anomaly_sensor,
            dac_request_drop_sensor,
            dac_drift_sensor,
            feedback_accuracy_sensor,
        ):
            ctx = dg.build_sensor_context(instance=instance, resources=res, repository_def=repo)
            t0 = time.perf_counter()
            if s is dac_request_drop_sensor:  # its new partitions are added by the daemon after the tick
                data = s(ctx)
            else:
                with dg.partition_loading_context(dynamic_partitions_store=instance):
                    data = s.evaluate_tick(ctx)
            out[s.name] = (time.perf_counter() - t0, len(getattr(data, "run_requests", None) or []))
    return out


def main() -> int:
    # the sensors import their domain code lazily (polars for the telemetry): pay that once,
    # before timing, and say what it costs (a daemon pays it on its first tick only)
    t0 = time.perf_counter()
    import iv_pipelines.telemetry  # noqa: F401

    print(
        f"first import of the telemetry analytics (polars): {(time.perf_counter() - t0) * 1000:.0f} ms, once per process"
    )
    small, big = tick_times(10), tick_times(1000)
    for name in big:
        (t, r), (t0, r0) = big[name], small[name]
        print(
            f"{name}: {t * 1000:.0f} ms with 1,000 DACs ({r} run requests) | 10 DACs: {t0 * 1000:.0f} ms ({r0}) | "
            f"ratio {t / t0:.1f}x | goal < 2 s: {'met' if t < 2 else 'NOT met'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
