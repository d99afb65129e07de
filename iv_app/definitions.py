"""The Dagster code location: assembles assets, jobs, schedules, sensors and resources."""

from __future__ import annotations

import dagster as dg

from assets import deployment, discovery, energy, mesh, operations, packaging, proof, training, validation
from assets.jobs import (
    blockchain_sync_job,
    client_report_job,
    cost_optimization_job,
    dac_health_check_job,
    dac_lifecycle_job,
    energy_atlas_optimization_job,
    lora_model_updates_job,
    rdr_deep_crawl_job,
    score_calibration_job,
    security_audit_job,
    service_mesh_job,
    wifi_sensing_base_model_job,
)
from resources.selection import resources_for
from schedules import schedules
from sensors.operations import sensors as operations_sensors
from sensors.request_drop import dac_request_drop_sensor

ASSET_MODULES = [discovery, validation, training, proof, packaging, deployment, energy, mesh, operations]
lifecycle_assets = dg.load_assets_from_modules(ASSET_MODULES)
# checks from every asset module: a check added to any of them is never silently dropped
lifecycle_checks = dg.load_asset_checks_from_modules(ASSET_MODULES)

defs = dg.Definitions(
    assets=lifecycle_assets,
    asset_checks=lifecycle_checks,
    jobs=[
        dac_lifecycle_job,
        score_calibration_job,
        wifi_sensing_base_model_job,
        blockchain_sync_job,
        service_mesh_job,
        dac_health_check_job,
        operations.dac_healing_job,
        security_audit_job,
        energy_atlas_optimization_job,
        client_report_job,
        lora_model_updates_job,
        rdr_deep_crawl_job,
        cost_optimization_job,
    ],
    schedules=schedules,
    sensors=[dac_request_drop_sensor, *operations_sensors],
    resources=resources_for(),
)
