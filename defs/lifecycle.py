"""The lifecycle job: one `dac` partition end to end, across the lifecycle's UI groups
(discovery, training, proof, packaging, deployment), less the shared unpartitioned assets
(they have their own jobs) and the fleet-wide ledger re-verification."""

import dagster as dg

from defs.common import dac_partitions
from defs.proof import SYNC_CHECK
from resources.selection import lifecycle_executor

LIFECYCLE_GROUPS = ("discovery", "training", "proof", "packaging", "deployment")
# Unpartitioned assets feeding the lifecycle run in their own jobs.
SHARED_ASSETS = ("score_calibration", "wifi_sensing_base_model", "service_mesh", "capsule_pins")

dac_lifecycle_job = dg.define_asset_job(
    name="dac_lifecycle_job",
    selection=dg.AssetSelection.groups(*LIFECYCLE_GROUPS)
    - dg.AssetSelection.assets(*SHARED_ASSETS)
    - dg.AssetSelection.checks(SYNC_CHECK),  # re-verifies every DAC: its own job
    partitions_def=dac_partitions,
    executor_def=lifecycle_executor(),
    description="Materializes the whole DAC lifecycle for one `dac` partition.",
)
