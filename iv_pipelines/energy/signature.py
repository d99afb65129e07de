"""A DAC's energy signature from its metered lifecycle steps.

- `E_state` (J): total energy of the steps that produced the DAC;
- `dE_dt` (W): the rate over the run, E_state divided by the steps' summed wall time
  (mean power while producing the DAC); the Atlas keeps one state per materialization,
  so the trend across runs is a query over these states;
- `S_state` (0..1): normalised Shannon entropy of the energy shares across steps,
  H(p) / ln(n): 0 when one step used everything, 1 when all steps used the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class EnergySignature:
    E_state: float
    dE_dt: float
    S_state: float
    steps: dict[str, float]  # step -> J
    cpu_seconds: float
    wall_seconds: float
    method: str

    def manifest_fields(self) -> dict:
        return {
            "E_state": round(self.E_state, 3),
            "dE_dt": round(self.dE_dt, 4),
            "S_state": round(self.S_state, 4),
            "method": self.method,
        }


def normalised_entropy(values: list[float]) -> float:
    vals = [v for v in values if v > 0]
    total = sum(vals)
    if len(vals) < 2 or total <= 0:
        return 0.0
    h = -sum(v / total * math.log(v / total) for v in vals)
    return max(0.0, min(1.0, h / math.log(len(values))))


def signature(steps: dict[str, dict], method: str) -> EnergySignature:
    """`steps`: name -> {"energy_j", "cpu_seconds", "wall_seconds"} as metered."""
    if not steps:
        raise ValueError("no metered steps: nothing to build an energy signature from")
    for name, s in steps.items():
        for k in ("energy_j", "cpu_seconds", "wall_seconds"):
            v = s.get(k)
            if not isinstance(v, int | float) or v < 0 or math.isnan(v):
                raise ValueError(f"step {name!r}: {k} must be a number >= 0, got {v!r}")
    e = {k: float(s["energy_j"]) for k, s in steps.items()}
    total = sum(e.values())
    wall = sum(float(s["wall_seconds"]) for s in steps.values())
    cpu = sum(float(s["cpu_seconds"]) for s in steps.values())
    return EnergySignature(
        E_state=total,
        dE_dt=total / wall if wall > 0 else 0.0,
        S_state=normalised_entropy(list(e.values())),
        steps=e,
        cpu_seconds=cpu,
        wall_seconds=wall,
        method=method,
    )


def lifecycle_states(dac_id: str, steps: dict[str, dict], sig: EnergySignature, run_id: str) -> list:
    """What the Energy Atlas records for one DAC's lifecycle: its signature as one state of
    `dac:<id>` (at the newest step's start) and one state per metered step (`step:<id>/<name>`,
    power = energy / wall time, from the step's own run)."""
    from iv_pipelines.energy.atlas import EnergyState

    newest = max(s["started_at_ms"] for s in steps.values())
    out = [EnergyState(f"dac:{dac_id}", newest, sig.E_state, sig.dE_dt, sig.S_state, "lifecycle", run_id)]
    for name, s in steps.items():
        power = s["energy_j"] / s["wall_seconds"] if s["wall_seconds"] > 0 else 0.0
        out.append(
            EnergyState(
                f"step:{dac_id}/{name}",
                s["started_at_ms"],
                s["energy_j"],
                power,
                0.0,
                "lifecycle",
                s["run_id"],
            )
        )
    return out
