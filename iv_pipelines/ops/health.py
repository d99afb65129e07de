"""Health checks of deployed capsules: state, a fresh score, and telemetry for the Atlas.

For each local deployment: `diagnose` (see healing.py); when it serves, a fresh score =
accuracy on newly simulated held-out episodes of the client room (a new seed per check: the
twin stands in for field feedback, which this project does not have); telemetry = the
capsule process's CPU seconds since the previous check, appended as one JSON line to
the telemetry file of `iv_pipelines.storage` (what `energy_history` turns into service states).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from iv_pipelines.ops.healing import diagnose


def process_cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class HealthRow:
    dac_id: str
    issue: str | None
    score: float | None
    threshold: float
    degraded: bool
    latency_ms_p99: float | None
    cpu_seconds: float | None
    url: str | None

    def to_json(self) -> dict:
        return asdict(self)


def check_dac(
    deployer, dac_id: str, payloads, threshold: float, telemetry: Path, now_ms: int | None = None
) -> HealthRow:
    from iv_pipelines.deploy.smoke import run_smoke

    now_ms = now_ms or int(time.time() * 1000)
    diag = diagnose(deployer, dac_id)
    st = deployer.status(dac_id)
    score = p99 = cpu = None
    if diag.issue is None and st.get("ready"):
        smoke = run_smoke(st["url"], payloads)
        score, p99 = smoke.accuracy, smoke.latency_ms_p99
        cpu_total = process_cpu_seconds(st["capsule_pid"])
        mark = telemetry.parent / f".{dac_id}.cpu.json"
        prev = json.loads(mark.read_text()) if mark.exists() else None
        if cpu_total is not None:
            same = prev and prev.get("pid") == st["capsule_pid"]
            cpu = cpu_total - prev["cpu"] if same else cpu_total
            wall = (
                (now_ms - prev["ts_ms"]) / 1000
                if same
                else max(time.time() - st.get("started_at", time.time()), 1e-3)
            )
            telemetry.parent.mkdir(parents=True, exist_ok=True)
            with open(telemetry, "a") as fh:
                fh.write(
                    json.dumps(
                        {
                            "service": dac_id,
                            "ts_ms": now_ms,
                            "cpu_seconds": round(cpu, 4),
                            "wall_seconds": round(wall, 3),
                        }
                    )
                    + "\n"
                )
            mark.write_text(json.dumps({"pid": st["capsule_pid"], "cpu": cpu_total, "ts_ms": now_ms}))
    issue = diag.issue
    if issue is None and not st.get("ready"):
        # deployed, yet not serving: stopped (on purpose or not) or still loading is an issue
        # for the health report, never "no issue, no score" (healing decides on its own
        # diagnosis, which leaves a capsule stopped on purpose alone)
        issue = "stopped" if not st.get("capsule_alive") else "not_ready"
    degraded = issue is not None or (score is not None and score < threshold)
    return HealthRow(dac_id, issue, score, threshold, degraded, p99, cpu, st.get("url"))
