"""The live demo's decisions against what the scene played (SIMULATED: Shadow Twin CSI).

`iv gateway serve --demo` plays a scripted scene of the sample client's room through the edge
ingest path into the DAC's running capsule. This bench plays that scene for several seeds
(each seed its own twin episodes; a replayed loop would repeat the same windows, so the
default is one loop) as fast as the capsule answers, on the device the DAC's calibration
fitted and again on the room's default twin device, and counts, for every 2 s window that lies
inside one step of the scene, what the capsule decided: the confusion by activity, and the
fall alarms on walking / sitting / empty windows next to the false-alarm rate the DAC's own
evaluation reported on held-out windows of the same simulated room.

    .venv/bin/python bench/demo_scene.py [--storage DIR] [--seeds 3] [--loops 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DAC = "fall-detection-acme"


def main() -> int:
    from iv_pipelines.deploy.targets import LocalDeployer
    from iv_pipelines.edge.forward import DetectionStream
    from iv_pipelines.gateway.demo import build_scene, play, scene_confusion
    from iv_pipelines.storage import StorageLayout, default_storage_root

    ap = argparse.ArgumentParser()
    ap.add_argument("--storage", type=Path, default=None, help="default: make demo's storage root")
    ap.add_argument("--seeds", type=int, default=10, help="scenes (each its own twin episodes)")
    ap.add_argument(
        "--loops", type=int, default=1, help="replays of each scene (the same CSI again: not new windows)"
    )
    args = ap.parse_args()
    import os

    # make demo's home unless the environment names another storage root
    configured = os.environ.get("IV_STORAGE_ROOT") or os.environ.get("DAGSTER_HOME")
    repo = Path(__file__).resolve().parent.parent
    src = StorageLayout(
        args.storage or (default_storage_root() if configured else repo / ".dagster_home" / "iv")
    )
    cur = src.current_package(DAC)
    if cur is None:
        print(f"SKIPPED: {DAC} has no package under {src.root}: run `make demo` first")
        return 0
    ev = json.loads((src.adapter_dir(DAC) / "evaluation.json").read_text())
    sim = (ev.get("evidence") or {}).get("simulation") or {}
    with tempfile.TemporaryDirectory() as tmp:
        layout = StorageLayout(Path(tmp) / "iv")  # captures and device keys stay out of the real store
        layout.dac_dir(DAC)
        shutil.copyfile(src.dac_request_file(DAC), layout.dac_request_file(DAC))
        twin = src.dac_dir(DAC, create=False) / "twin" / "calibration.json"  # the fitted device
        if twin.is_file():
            (layout.dac_dir(DAC) / "twin").mkdir(exist_ok=True)
            shutil.copyfile(twin, layout.dac_dir(DAC) / "twin" / "calibration.json")
        dep = LocalDeployer(Path(tmp) / "deployments")
        rec = dep.deploy(Path(cur["directory"]), DAC, cur["version"])
        totals: dict[str, dict[str, dict[str, int]]] = {}
        try:
            # the device the DAC's calibration fitted, then the room's default twin device (one
            # the DAC was not calibrated for: the drift case), on the same scenes
            for fitted in (True, False):
                total = totals.setdefault("fitted device" if fitted else "room's default device", {})
                for seed in range(args.seeds):
                    stream = DetectionStream()
                    sub = stream.subscribe(maxsize=1_000_000)
                    scene = build_scene(layout, DAC, seed=seed, fitted_device=fitted)
                    device = f"bench-scene-{int(fitted)}-{seed}"
                    asyncio.run(
                        play(
                            layout,
                            DAC,
                            rec.url,
                            stream,
                            scene,
                            rate_hz=400,
                            loops=args.loops,
                            device_id=device,
                        )
                    )
                    dets = []
                    while not sub.empty():
                        dets.append(sub.get_nowait())
                    for truth, row in scene_confusion(scene.schedule, dets).items():
                        for label, n in row.items():
                            total.setdefault(truth, {}).setdefault(label, 0)
                            total[truth][label] += n
        finally:
            dep.stop(DAC)
    labels = ["empty", "walk", "sit", "fall"]
    for name, total in totals.items():
        print(
            f"\n{DAC} {cur['version']} on the demo scene (SIMULATED), twin {name}, {args.seeds} seeds x "
            f"{args.loops} loops; windows inside one step of the scene (transitions excluded), rows = "
            "what the scene played:\n"
        )
        print("| scene \\ capsule | " + " | ".join(labels) + " | n | called fall |")
        print("|---|" + "---|" * (len(labels) + 2))
        for truth in labels:
            row = total.get(truth, {})
            n = sum(row.values())
            share = f"{row.get('fall', 0) / n:.3f}" if n else "-"
            print(f"| {truth} | " + " | ".join(str(row.get(x, 0)) for x in labels) + f" | {n} | {share} |")
    print(
        f"\nthe DAC's own evaluation (held-out windows of its simulated room): fall false-alarm rate "
        f"{sim.get('fall_false_alarm_rate')}, fall recall {sim.get('recall_fall')} on {sim.get('n')} windows"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
