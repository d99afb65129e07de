"""Shared helpers for bench scripts: timing with repeats, ratio printing."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def time_cmd(args: list[str], repeats: int = 5, env: dict | None = None) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def report(name: str, value: float, unit: str, baseline_name: str, baseline: float, goal: str) -> None:
    ratio = value / baseline if baseline else float("inf")
    print(
        f"{name}: {value:.4g} {unit} | baseline {baseline_name}: {baseline:.4g} {unit} | ratio {ratio:.2f}x | goal {goal}"
    )


PY = sys.executable


def demo_base_model_dir():
    """The base model `make demo` trains (under the repo's .dagster_home), the default
    `--base-model` of the benches that score the product's own model."""
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from iv_pipelines.storage import StorageLayout

    return StorageLayout(repo / ".dagster_home" / "iv").base_model_dir()
