"""Meter a block of work: process CPU time x a per-core power model, RAPL, NVML.

Power model (documented, not tuned): the Cloud Carbon Footprint methodology's compute
coefficients (cloudcarbonfootprint.org, "Methodology", coefficients as of 2024) average
0.74 W per idle vCPU and 3.5 W per fully used vCPU on AWS. A CPU-second of work is charged
the difference, `CPU_W_PER_CORE = 3.5 - 0.74 = 2.76 W`: the energy the work added over an
idle machine. CPU time = user + system time of this process and of the child processes it
waited for (snarkjs, vyper), from getrusage, so threads (torch intra-op) count in full.

Where the host exposes them, measured counters replace or add to the model:
- Intel RAPL (`/sys/class/powercap/intel-rapl:*/energy_uj`, package domains): whole-socket
  energy over the interval (includes other processes; reported separately, `rapl_j`);
- NVML (`nvidia-ml-py`, `nvmlDeviceGetTotalEnergyConsumption`, mJ) for GPU work: added
  to `energy_j`.
`method` says which sources were used. On this project's CI machines only the model applies
(no powercap, no GPU), and the metadata says so.
"""

from __future__ import annotations

import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CPU_W_PER_CORE = 3.5 - 0.74
POWER_MODEL = "cpu-time x 2.76 W/core (CCF AWS coefficients 3.5 W max - 0.74 W idle per vCPU)"
RAPL_ROOT = Path("/sys/class/powercap")


def _cpu_seconds() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _rapl_uj() -> int | None:
    total, found = 0, False
    for p in RAPL_ROOT.glob("intel-rapl:*/energy_uj"):
        if p.parent.name.count(":") != 1:  # package domains only (sub-domains are inside them)
            continue
        try:
            total += int(p.read_text())
            found = True
        except (OSError, ValueError):
            return None
    return total if found else None


def _nvml_mj() -> int | None:
    try:
        import pynvml  # nvidia-ml-py, optional
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        return sum(
            pynvml.nvmlDeviceGetTotalEnergyConsumption(pynvml.nvmlDeviceGetHandleByIndex(i))
            for i in range(pynvml.nvmlDeviceGetCount())
        )
    except Exception:
        return None


@dataclass
class StepEnergy:
    cpu_seconds: float
    wall_seconds: float
    energy_j: float
    method: str
    rapl_j: float | None = None
    gpu_j: float | None = None
    started_at_ms: int = 0

    def metadata(self) -> dict:
        return {
            k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items() if v is not None
        }


class Meter:
    """`with Meter() as m: ...` then `m.result`; or `m = Meter().start()` ... `m.stop()`."""

    def start(self) -> Meter:
        self._t_ms = int(time.time() * 1000)
        self._wall = time.perf_counter()
        self._cpu = _cpu_seconds()
        self._rapl = _rapl_uj()
        self._gpu = _nvml_mj()
        return self

    def stop(self) -> StepEnergy:
        cpu = _cpu_seconds() - self._cpu
        wall = time.perf_counter() - self._wall
        energy, methods = cpu * CPU_W_PER_CORE, [POWER_MODEL]
        rapl = _rapl_uj()
        rapl_j = (
            (rapl - self._rapl) / 1e6
            if rapl is not None and self._rapl is not None and rapl >= self._rapl
            else None
        )
        if rapl_j is not None:
            methods.append("RAPL package energy (whole socket) in rapl_j")
        gpu = _nvml_mj()
        gpu_j = (gpu - self._gpu) / 1e3 if gpu is not None and self._gpu is not None else None
        if gpu_j is not None:
            energy += gpu_j
            methods.append("NVML GPU energy counter")
        self.result = StepEnergy(cpu, wall, energy, "; ".join(methods), rapl_j, gpu_j, self._t_ms)
        return self.result

    def __enter__(self) -> Meter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
