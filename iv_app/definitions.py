"""The Dagster code location: every definition of the Dagster layer (`defs/`, one module per
UI group, loaded whole so nothing defined there is left out) and the resources of this
environment (`resources.selection`)."""

from __future__ import annotations

import importlib
import pkgutil

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

import defs as dagster_layer
from resources.selection import resources_for

_AUTOMATION = (dg.ScheduleDefinition, dg.SensorDefinition)
_JOBS = (dg.JobDefinition, UnresolvedAssetJobDefinition)


def _layer_objects(package) -> tuple[list, list, list]:
    """Jobs, schedules and sensors defined at the top level of any module of `package`
    (each once, however many modules import it)."""
    seen: dict[int, object] = {}
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, (*_JOBS, *_AUTOMATION)):
                seen.setdefault(id(value), value)
    objs = list(seen.values())
    return (
        [o for o in objs if isinstance(o, _JOBS)],
        [o for o in objs if isinstance(o, dg.ScheduleDefinition)],
        [o for o in objs if isinstance(o, dg.SensorDefinition)],
    )


jobs, schedules, sensors = _layer_objects(dagster_layer)

defs = dg.Definitions(
    assets=dg.load_assets_from_package_module(dagster_layer),
    # checks from every module: a check added to any of them is never silently dropped
    asset_checks=dg.load_asset_checks_from_package_module(dagster_layer),
    jobs=jobs,
    schedules=schedules,
    sensors=sensors,
    resources=resources_for(),
)
