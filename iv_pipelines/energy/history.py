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

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from iv_pipelines.energy.atlas import EnergyState
from iv_pipelines.energy.meter import CPU_W_PER_CORE
from iv_pipelines.energy.signature import normalised_entropy
from iv_pipelines.telemetry import daily_totals

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
    files = sorted(Path(telemetry_dir).glob("*.jsonl")) if Path(telemetry_dir).is_dir() else []
    totals, problems = daily_totals(files, day_start_ms, DAY_MS)
    out = [
        EnergyState(
            f"service:{svc}",
            day_start_ms,
            t["cpu_seconds"] * CPU_W_PER_CORE,
            t["cpu_seconds"] * CPU_W_PER_CORE / t["wall_seconds"] if t["wall_seconds"] else 0.0,
            min(1.0, t["cpu_seconds"] / t["wall_seconds"]) if t["wall_seconds"] else 0.0,
            SOURCE,
            day,
        )
        for svc, t in sorted(totals.items())
    ]
    return out, problems
