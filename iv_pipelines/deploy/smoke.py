"""Smoke test a deployed capsule with held-out Shadow Twin episodes of the client's room.

Episodes come from a seed no training or evaluation set used (training seed+101, evaluation
seed+202, smoke seed+303), simulated with the DAC's fitted device when it was calibrated, and
written as that device sends them (esp-csi lines, or amplitude-only CSV rows at its rate) and
posted one per request to `/v1/predict`. Accuracy is over the first window of
each episode; latency is the client-side round trip of each request.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import asdict, dataclass

import numpy as np

from iv_pipelines.sensing.formats import write_esp_csi_lines
from iv_pipelines.sensing.twin import ACTIVITIES, Resident, Room, simulate_dataset

SMOKE_SEED_OFFSET = 303


@dataclass
class SmokeResult:
    n: int
    correct: int
    accuracy: float
    per_class_accuracy: dict[str, float]
    latency_ms_p50: float
    latency_ms_p99: float
    latency_ms_max: float
    errors: list[str]

    def to_json(self) -> dict:
        return asdict(self)


def smoke_payloads(
    room: Room, resident: Resident, per_activity: int, seed: int, device=None, amplitude_only: bool = False
) -> list[tuple[str, dict]]:
    """(activity, request body) per held-out episode."""
    from iv_pipelines.sensing.formats import CsiCapture, to_legacy_amplitude, write_amplitude_csv

    eps = simulate_dataset(
        [room],
        per_activity,
        seed + SMOKE_SEED_OFFSET,
        duration_s=2.2,
        resident=resident,
        devices=[device] if device else None,
    )
    if not amplitude_only:
        return [(e.activity, {"lines": write_esp_csi_lines(e.csi, e.t_s)}) for e in eps]
    out = []
    for e in eps:
        amp = to_legacy_amplitude(CsiCapture(e.csi, e.t_s, np.zeros(len(e.t_s)), "twin"), 100.0)
        out.append(
            (e.activity, {"amplitude_csv": write_amplitude_csv(amp.csi, header=False), "rate_hz": 100.0})
        )
    return out


def post_json(url: str, body: dict, timeout: float = 30.0) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def run_smoke(base_url: str, payloads: list[tuple[str, dict]]) -> SmokeResult:
    lat, errors, hits = [], [], {a: [] for a in ACTIVITIES}
    for label, payload in payloads:
        if isinstance(payload, list):  # bare esp-csi lines
            payload = {"lines": payload}
        t0 = time.perf_counter()
        code, body = post_json(f"{base_url}/v1/predict", payload)
        lat.append(1000 * (time.perf_counter() - t0))
        if code != 200 or not body.get("windows"):
            errors.append(f"{label}: HTTP {code} {body.get('detail')}")
            hits[label].append(False)
            continue
        hits[label].append(body["windows"][0]["label"] == label)
    correct = sum(sum(v) for v in hits.values())
    n = len(payloads)
    a = np.asarray(lat)
    return SmokeResult(
        n=n,
        correct=correct,
        accuracy=correct / n if n else 0.0,
        per_class_accuracy={k: (sum(v) / len(v) if v else float("nan")) for k, v in hits.items()},
        latency_ms_p50=float(np.percentile(a, 50)),
        latency_ms_p99=float(np.percentile(a, 99)),
        latency_ms_max=float(a.max()),
        errors=errors[:10],
    )
