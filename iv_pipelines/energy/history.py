"""Daily energy history: per day, one energy state per DAC (from metered lifecycle steps) and
per service (from telemetry files), for the `energy_history` asset.

- DAC state for day D: E_state = energy of all its metered steps that started in D (J),
  dE_dt = E_state / their summed wall time (W), S_state = normalised entropy of energy across
  those steps; ts = start of D (epoch ms); source `energy_history`, run_id = the day.
- Service state: telemetry JSON lines under `<storage>/telemetry/*.jsonl`, each
  `{"service": id, "ts_ms": ..., "cpu_seconds": ..., "wall_seconds": ...}` (written by the
  capsules' health checks); energy = cpu_seconds x the same per-core power model.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from iv_pipelines.energy.atlas import EnergyState
from iv_pipelines.energy.meter import CPU_W_PER_CORE
from iv_pipelines.energy.signature import normalised_entropy

SOURCE = "energy_history"
DAY_MS = 86_400_000


@dataclass
class StepRecord:
    dac_id: str
    step: str
    started_at_ms: int
    energy_j: float
    wall_seconds: float


def dac_states(steps: list[StepRecord], day_start_ms: int, day: str) -> list[EnergyState]:
    by = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    for s in steps:
        if day_start_ms <= s.started_at_ms < day_start_ms + DAY_MS:
            acc = by[s.dac_id][s.step]
            acc[0] += s.energy_j
            acc[1] += s.wall_seconds
    out = []
    for dac, per_step in sorted(by.items()):
        e = sum(v[0] for v in per_step.values())
        wall = sum(v[1] for v in per_step.values())
        out.append(
            EnergyState(
                f"dac:{dac}",
                day_start_ms,
                e,
                e / wall if wall > 0 else 0.0,
                normalised_entropy([v[0] for v in per_step.values()]),
                SOURCE,
                day,
            )
        )
    return out


def service_states(telemetry_dir: Path, day_start_ms: int, day: str) -> tuple[list[EnergyState], list[str]]:
    """States per service for the day, and problems (bad lines, named by file:line)."""
    by = defaultdict(lambda: [0.0, 0.0])
    problems = []
    for f in sorted(Path(telemetry_dir).glob("*.jsonl")) if Path(telemetry_dir).is_dir() else []:
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                ts, svc = int(r["ts_ms"]), str(r["service"])
                cpu, wall = float(r["cpu_seconds"]), float(r["wall_seconds"])
                if cpu < 0 or wall < 0:
                    raise ValueError("negative seconds")
            except (ValueError, KeyError, TypeError) as e:
                problems.append(f"{f.name}:{n}: {type(e).__name__}: {e}")
                continue
            if day_start_ms <= ts < day_start_ms + DAY_MS:
                by[svc][0] += cpu
                by[svc][1] += wall
    out = [
        EnergyState(
            f"service:{svc}",
            day_start_ms,
            cpu * CPU_W_PER_CORE,
            cpu * CPU_W_PER_CORE / wall if wall else 0.0,
            min(1.0, cpu / wall) if wall else 0.0,
            SOURCE,
            day,
        )
        for svc, (cpu, wall) in sorted(by.items())
    ]
    return out, problems
