"""Write the sample request's calibration captures (twin-generated stand-ins, not real data).

A fresh clone has no real captures it may redistribute (the espectre recordings are GPL-3.0
and stay in ../shared), so the sample request `examples/requests/fall-detection-acme.yaml`
carries 20 s of `empty` and 20 s of `walk` simulated by the Shadow Twin for a stated device
profile: an ESP32-S3 with an amplitude-only firmware (legacy LLTF, 52 subcarriers, 100 Hz),
its impairments set to the values the calibration fit gives for the real S3 captures in
../shared (`bench/real_devices.py` prints those fits); `examples/requests/clients/08-*`
carries 12 s of walking for a C3 profile the same way. The request marks them
`origin: simulated`, so they calibrate the twin but never count as real evidence.

    .venv/bin/python scripts/make_sample_calibration.py   # deterministic: same bytes each run
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = REPO / "examples" / "requests" / "calibration"

S3_PROFILE = dict(  # fit of the real ESP32-S3 captures (rounded), see bench/real_devices.py
    name="esp32-s3-amplitude-firmware",
    rate_hz=100.0,
    jitter_ms=1.2,
    drop_rate=0.03,
    burst_len=1.5,
    snr_db=29.5,
    gain_jitter=0.06,
    target_peak=55.0,
    motion_noise=0.02,
    body_gain=5.0,
    glitch_rate=0.004,
    glitch_size=0.15,
)


C3_PROFILE = dict(  # fit of the real ESP32-C3 captures (rounded), see bench/real_devices.py
    name="esp32-c3-amplitude-firmware",
    rate_hz=100.0,
    jitter_ms=1.0,
    drop_rate=0.02,
    snr_db=30.0,
    gain_jitter=0.021,
    target_peak=52.0,
    motion_noise=0.01,
    body_gain=5.5,
)

CAPTURES = [  # file, profile, request (whose twin room the capture is recorded in), activity, seconds, seed
    ("acme-living-room-empty.csv", S3_PROFILE, "fall-detection-acme.yaml", "empty", 20.5, 11),
    ("acme-living-room-walk.csv", S3_PROFILE, "fall-detection-acme.yaml", "walk", 20.5, 12),
    ("riverside-walk.csv", C3_PROFILE, "clients/08-riverside-living-room-calibrated.yaml", "walk", 12.5, 21),
]


def main() -> int:
    from iv_pipelines.sensing.device import Device
    from iv_pipelines.sensing.formats import CsiCapture, to_legacy_amplitude, write_amplitude_csv
    from iv_pipelines.sensing.twin import CALIBRATION_VARIANT, simulate_episode

    OUT.mkdir(parents=True, exist_ok=True)
    from iv_pipelines.request import parse_request_text
    from iv_pipelines.sensing.pipeline import client_resident, client_room

    for name, profile, request, activity, seconds, seed in CAPTURES:
        dev = Device(**profile)
        req = parse_request_text((REPO / "examples" / "requests" / request).read_text())
        room = client_room(req)  # the twin room of the request (placement does not depend on captures)
        ep = simulate_episode(
            room,
            activity,
            seed,
            duration_s=seconds,
            device=dev,
            resident=client_resident(req),
            variant=CALIBRATION_VARIANT.get(activity),
        )
        cap = to_legacy_amplitude(CsiCapture(ep.csi, ep.t_s, np.zeros(len(ep.t_s)), "twin"), 100.0)
        rows = write_amplitude_csv(cap.csi, header=True, decimals=1)
        path = OUT / name
        path.write_text("\n".join(rows) + "\n")
        print(
            f"wrote {path.relative_to(REPO)}: {len(rows) - 1} rows at 100 Hz ({activity}, {profile['name']}, simulated)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
