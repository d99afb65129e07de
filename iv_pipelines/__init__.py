"""Industriverse DAC Factory: the domain core.

Plain Python (no Dagster imports) except `iv_pipelines.definitions`, which assembles the
Dagster code location from `assets/`, `resources/`, `schedules/` and `sensors/`.
"""

__version__ = "0.1.0"
