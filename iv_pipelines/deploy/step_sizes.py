"""Each Dagster step's Kubernetes size, from what the steps measured (issue #19).

Every metered step records `cores` (CPU time / wall time) and `peak_rss_mib` (the largest
resident memory of its process tree while it ran; `iv_pipelines/energy/meter.py`). Over the
runs seen, a step's size is:

- memory request = the 95th percentile of its peaks x 1.25, rounded up to 128 MiB; memory
  limit = x 1.5 (a step over its limit is killed, so the limit keeps a margin the request
  does not need);
- CPU request = the 95th percentile of its cores, rounded up to 0.25 core (at least 0.25);
  CPU limit = twice that, at least one core (a CPU limit only throttles).

Measured in-process (the embedded default), a step's process also holds what earlier steps
left in memory, so its size is an upper bound of what its own pod needs. The training steps
(`PIPES_STEPS`) run their work in a GPU pod through Pipes in prod: their size goes to that
pod (`GpuStepResource`), and their step Job, which only waits for it, keeps the default.
`base_model_update` pretrains as `wifi_sensing_base_model` does and takes its size.

`iv k8s step-sizes` computes the table from a Dagster instance and `--write` saves it where
the prod executor reads it (`deploy/step_resources.json`, or `$IV_STEP_RESOURCES`).
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from iv_pipelines.paths import atomic_write_text

QUANTILE = 0.95
MEMORY_REQUEST_HEADROOM = 1.25
MEMORY_LIMIT_HEADROOM = 1.5
MEMORY_STEP_MIB = 128
CPU_STEP = 0.25
# op name -> the Pipes step its work runs in (iv_app/pipes_steps.py)
PIPES_STEPS = {
    "wifi_sensing_base_model": "pretrain_base_model",
    "lora_adapter": "train_lora_adapter",
    "base_model_update": "update_base_model",
}
# steps that do the same work as another measured one
SAME_AS = {"base_model_update": "wifi_sensing_base_model"}
DEFAULT_FILE = Path(__file__).resolve().parents[2] / "deploy" / "step_resources.json"


class StepSizeError(ValueError):
    """A step size that cannot be computed, or a step-size file that is not what `write` writes."""


def _up(x: float, step: float) -> float:
    return math.ceil(x / step - 1e-9) * step


def _cpu(cores: float) -> str:
    return f"{round(cores * 1000)}m"


def size(peaks_mib: Iterable[float], cores: Iterable[float]) -> dict:
    """Kubernetes `resources` for a step from its measured peaks (MiB) and cores."""
    peaks = [float(p) for p in peaks_mib if p is not None and p > 0]
    used = [float(c) for c in cores if c is not None and c >= 0]
    if not peaks or not used:
        raise StepSizeError("a step size needs at least one measured peak memory and CPU use")
    peak = float(np.quantile(peaks, QUANTILE))
    core = float(np.quantile(used, QUANTILE))
    cpu_req = max(CPU_STEP, _up(core, CPU_STEP))
    return {
        "requests": {
            "cpu": _cpu(cpu_req),
            "memory": f"{int(_up(peak * MEMORY_REQUEST_HEADROOM, MEMORY_STEP_MIB))}Mi",
        },
        "limits": {
            "cpu": _cpu(max(1.0, 2 * cpu_req)),
            "memory": f"{int(_up(peak * MEMORY_LIMIT_HEADROOM, MEMORY_STEP_MIB))}Mi",
        },
    }


def sizes_from(measurements: dict[str, list[dict]]) -> dict[str, dict]:
    """{op: [step metadata with cores and peak_rss_mib, ...]} -> {op: {runs, p95s, resources}};
    steps without a usable measurement are left out (the executor's default applies)."""
    out: dict[str, dict] = {}
    for op, rows in sorted(measurements.items()):
        rows = [r for r in rows if r.get("peak_rss_mib") and r.get("cores") is not None]
        if not rows:
            continue
        peaks = [r["peak_rss_mib"] for r in rows]
        cores = [r["cores"] for r in rows]
        out[op] = {
            "runs": len(rows),
            "peak_rss_mib_p95": round(float(np.quantile(peaks, QUANTILE)), 1),
            "cores_p95": round(float(np.quantile(cores, QUANTILE)), 3),
            "resources": size(peaks, cores),
        }
    for op, like in SAME_AS.items():
        if op not in out and like in out:
            out[op] = out[like] | {"same_as": like}
    return out


def table_md(sizes: dict[str, dict]) -> str:
    head = (
        "| step | runs | peak memory p95 (MiB) | cores p95 | requests | limits |\n|---|---|---|---|---|---|\n"
    )
    return head + "\n".join(
        f"| {op} | {s['runs']} | {s['peak_rss_mib_p95']:.0f} | {s['cores_p95']:.2f} | "
        f"{s['resources']['requests']['cpu']}, {s['resources']['requests']['memory']} | "
        f"{s['resources']['limits']['cpu']}, {s['resources']['limits']['memory']} |"
        for op, s in sizes.items()
    )


def write(path: Path, sizes: dict[str, dict], source: str) -> None:
    doc = {
        "measured": {
            "source": source,
            "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
            "command": "iv k8s step-sizes --write",
        },
        "rule": "memory: p95 peak x1.25 request, x1.5 limit (128 MiB steps); cpu: p95 cores request "
        "(0.25 steps), limit 2x (>= 1)",
        "steps": sizes,
    }
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")


def load(path: Path | None = None) -> dict[str, dict]:
    """The saved sizes ({} when there is no file). A file that is not what `write` writes is
    an error naming the file: a prod executor must not start with half a config."""
    path = Path(path or os.environ.get("IV_STEP_RESOURCES") or DEFAULT_FILE)
    if not path.exists():
        return {}
    try:
        steps = json.loads(path.read_text())["steps"]
        for op, s in steps.items():
            r = s["resources"]
            assert set(r) == {"requests", "limits"} and all(set(r[k]) == {"cpu", "memory"} for k in r), op
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        raise StepSizeError(
            f"{path}: not a step-size file written by `iv k8s step-sizes --write` ({e!r})"
        ) from e
    return steps


def executor_config(sizes: dict[str, dict]) -> dict:
    """`k8s_job_executor` config: each measured step's Job sized by `per_step_k8s_config`
    (the executor merges it over the step's own `dagster-k8s/config` tag). Steps whose work
    runs in a Pipes pod are sized there instead (`pipes_resources`)."""
    return {
        "per_step_k8s_config": {
            op: {"container_config": {"resources": s["resources"]}}
            for op, s in sizes.items()
            if op not in PIPES_STEPS
        }
    }


def pipes_resources(sizes: dict[str, dict]) -> dict[str, dict]:
    """{Pipes step: container resources} for the GPU pods (the GPU itself is added there)."""
    return {PIPES_STEPS[op]: s["resources"] for op, s in sizes.items() if op in PIPES_STEPS}
