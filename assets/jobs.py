"""Asset jobs: the main lifecycle job that materializes one DAC partition end to end."""

import dagster as dg

from assets.partitions import dac_partitions

LIFECYCLE_GROUPS = ("discovery", "proof", "training", "deployment")

dac_lifecycle_job = dg.define_asset_job(
    name="dac_lifecycle_job",
    selection=dg.AssetSelection.groups(*LIFECYCLE_GROUPS),
    partitions_def=dac_partitions,
    description="Materializes the whole DAC lifecycle for one `dac` partition.",
)
