"""The Dagster code location: assembles assets, jobs, schedules, sensors and resources."""

from __future__ import annotations

import dagster as dg

from assets import deployment, discovery, energy, mesh, packaging, proof, training, validation
from assets.jobs import (
    blockchain_sync_job,
    dac_lifecycle_job,
    score_calibration_job,
    service_mesh_job,
    wifi_sensing_base_model_job,
)
from resources.selection import resources_for
from schedules import schedules
from sensors.request_drop import dac_request_drop_sensor

lifecycle_assets = dg.load_assets_from_modules(
    [discovery, validation, training, proof, packaging, deployment, energy, mesh]
)
lifecycle_checks = dg.load_asset_checks_from_modules([proof, packaging])

defs = dg.Definitions(
    assets=lifecycle_assets,
    asset_checks=lifecycle_checks,
    jobs=[
        dac_lifecycle_job,
        score_calibration_job,
        wifi_sensing_base_model_job,
        blockchain_sync_job,
        service_mesh_job,
    ],
    schedules=schedules,
    sensors=[dac_request_drop_sensor],
    resources=resources_for(),
)
