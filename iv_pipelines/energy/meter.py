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

Size, not only energy: `cores` is CPU time / wall time (cores kept busy on average) and
`peak_rss_mib` the largest resident memory of this process and its children, sampled every
`SAMPLE_S` while the block ran (Linux /proc; absent elsewhere). Run in-process after other
steps, the process's memory includes what they left, so it bounds from above what the step
needs alone. `iv k8s step-sizes` turns these into each step's Kubernetes requests (issue #19).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CPU_W_PER_CORE = 3.5 - 0.74
POWER_MODEL = "cpu-time x 2.76 W/core (CCF AWS coefficients 3.5 W max - 0.74 W idle per vCPU)"
RAPL_ROOT = Path("/sys/class/powercap")
SAMPLE_S = 0.1
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except (OSError, ValueError):
        pass
    return out


def tree_rss_bytes(pid: int | None = None) -> int:
    """Resident memory of `pid` (default: this process) and all its descendants, from /proc
    (0 where /proc is not there)."""
    todo, seen, total = [pid or os.getpid()], set(), 0
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss_bytes(p)
        todo += _children(p)
    return total


def _reset_own_peak() -> bool:
    """Reset this process's resident high-water mark (VmHWM; Linux: "5" > clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _own_peak_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class _PeakSampler(threading.Thread):
    """This process's own peak from the kernel's high-water mark (reset at the start, so a
    spike between two samples counts), its children's from samples every SAMPLE_S."""

    def __init__(self) -> None:
        super().__init__(name="iv-meter-rss", daemon=True)
        self._hwm = _reset_own_peak()
        self.peak = tree_rss_bytes()
        self.children = 0
        self._done = threading.Event()

    def _sample(self) -> None:
        total = tree_rss_bytes()
        self.peak = max(self.peak, total)
        self.children = max(self.children, total - _rss_bytes(os.getpid()))

    def run(self) -> None:
        while not self._done.wait(SAMPLE_S):
            self._sample()

    def stop(self) -> int:
        self._done.set()
        self.join(timeout=2)
        self._sample()
        own = _own_peak_bytes() if self._hwm else 0
        return max(self.peak, own + self.children)


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
    cores: float | None = None
    peak_rss_mib: float | None = None

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
        self._sampler = _PeakSampler()
        self._sampler.start()
        return self

    def stop(self) -> StepEnergy:
        peak = self._sampler.stop()
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
        self.result = StepEnergy(
            cpu,
            wall,
            energy,
            "; ".join(methods),
            rapl_j,
            gpu_j,
            self._t_ms,
            cores=cpu / wall if wall > 0 else None,
            peak_rss_mib=peak / 2**20 if peak else None,
        )
        return self.result

    def __enter__(self) -> Meter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
