"""The adapter gate over training seeds 0-3 on the sample client room, with the base model
`make demo` trained (run `make demo` first): each seed draws its own adaptation, threshold and
held-out episodes; prints the paired test's verdict and which model the DAC would ship."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    import os

    from iv_pipelines.request import load_request_file
    from iv_pipelines.sensing.calibration import Calibration
    from iv_pipelines.sensing.client import train_client_adapter
    from iv_pipelines.sensing.formats import read_capture
    from iv_pipelines.sensing.pipeline import twin_context
    from iv_pipelines.storage import StorageLayout, default_storage_root

    # make demo's home unless the environment names another storage root
    configured = os.environ.get("IV_STORAGE_ROOT") or os.environ.get("DAGSTER_HOME")
    base = StorageLayout(
        default_storage_root() if configured else REPO / ".dagster_home" / "iv"
    ).base_model_dir()
    if not (base / "model.safetensors").exists():
        print(f"SKIPPED: no base model at {base}; run `make demo` first")
        return 0
    path = REPO / "examples/requests/fall-detection-acme.yaml"
    req = load_request_file(path)
    cals = []
    for c in req.calibration:
        cap, _, timed = read_capture(path.parent / c.path, c.format, c.rate_hz)
        cals.append((Calibration(c.activity, cap, timed, c.activity), c.origin))
    twin = twin_context(req, "wifi-sensing", 2, 0, cals)
    verdicts = []
    for seed in range(4):
        r = train_client_adapter(base, twin.room, twin.calibration, seed=seed, workers=2)
        verdicts.append(r.gate["verdict"])
        sim = r.evidence["simulation"]
        print(
            f"seed {seed}: {r.gate['verdict']}, ships the {r.selected}; accuracy {sim['accuracy']:.3f}, fall recall "
            f"{sim['recall_fall']:.3f}, fall false alarms {sim['fall_false_alarm_rate']:.3f} at threshold "
            f"{r.evidence['decision']['fall_threshold']:.2f} (simulated client room) — {r.why}"
        )
    print(f"verdicts over seeds 0-3: {verdicts}; the check fails only on 'worse'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
