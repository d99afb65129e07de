"""Asset jobs: the main lifecycle job that materializes one DAC partition end to end."""

import dagster as dg

from assets.partitions import dac_partitions

LIFECYCLE_GROUPS = ("discovery", "proof", "training", "deployment")

# Unpartitioned assets feeding the lifecycle (calibration) run in their own job.
SHARED_ASSETS = (
    "score_calibration",
    "wifi_sensing_base_model",
    "service_mesh",
    "capsule_pins",
)  # + operations group
SYNC_CHECK = dg.AssetCheckKey(dg.AssetKey("utid"), "ledger_in_sync")

dac_lifecycle_job = dg.define_asset_job(
    name="dac_lifecycle_job",
    selection=dg.AssetSelection.groups(*LIFECYCLE_GROUPS)
    - dg.AssetSelection.assets(*SHARED_ASSETS)
    - dg.AssetSelection.checks(SYNC_CHECK),  # re-verifies every DAC: its own job
    partitions_def=dac_partitions,
    description="Materializes the whole DAC lifecycle for one `dac` partition.",
)

score_calibration_job = dg.define_asset_job(
    name="score_calibration_job",
    selection=dg.AssetSelection.assets("score_calibration"),
    description="Rebuilds the null set and the split-conformal calibration of the scores.",
)

wifi_sensing_base_model_job = dg.define_asset_job(
    name="wifi_sensing_base_model_job",
    selection=dg.AssetSelection.assets("wifi_sensing_base_model"),
    description="Pretrains the wifi-sensing base model on Shadow Twin data from random rooms.",
)

blockchain_sync_job = dg.define_asset_job(
    name="blockchain_sync",
    selection=dg.AssetSelection.checks(SYNC_CHECK),
    description=(
        "Re-verifies every registered DAC (on-chain record, receipt event, signature, Merkle "
        "tree, zk proof); the daily midnight schedule comes with the operations issue."
    ),
)

service_mesh_job = dg.define_asset_job(
    name="service_mesh_job",
    selection=dg.AssetSelection.assets("service_mesh", "capsule_pins"),
    description="Recomputes TTF routes over the ASI registry, re-routes deployed capsules (hysteresis), refreshes Capsule Pin records.",
)

dac_health_check_job = dg.define_asset_job(
    name="dac_health_check",
    selection=dg.AssetSelection.assets("dac_health"),
    description="Probes every deployed DAC, rescores it on fresh twin episodes, writes capsule telemetry.",
)

security_audit_job = dg.define_asset_job(
    name="security_audit",
    selection=dg.AssetSelection.assets("security_audit_report"),
    description="Re-reviews every package (shield policies + provenance); audits dependency pins and licences.",
)

energy_atlas_optimization_job = dg.define_asset_job(
    name="energy_atlas_optimization",
    selection=dg.AssetSelection.assets("service_mesh", "energy_trends"),
    description="Recomputes routing tables and reports DACs and routes whose energy cost rose (last 24 h).",
)

client_report_job = dg.define_asset_job(
    name="client_report_generation",
    selection=dg.AssetSelection.assets("client_report"),
    partitions_def=dg.MonthlyPartitionsDefinition(start_date="2026-01-01", timezone="UTC"),
    description="Monthly client reports (HTML): DACs, scores, energy, revenue on the ledger, incidents healed.",
)

lora_model_updates_job = dg.define_asset_job(
    name="lora_model_updates",
    selection=dg.AssetSelection.assets("base_model_update"),
    description="Trains a candidate base model; promotes it only if it beats the current one on held-out rooms.",
)

rdr_deep_crawl_job = dg.define_asset_job(
    name="rdr_deep_crawl",
    selection=dg.AssetSelection.assets("rdr_findings"),
    description="Embeds, clusters and trends a document source; queues evolution experiments for trending domains.",
)

cost_optimization_job = dg.define_asset_job(
    name="cost_optimization",
    selection=dg.AssetSelection.assets("cost_recommendations"),
    description="Idle capsules, reserved vs on-demand, multi-cloud arbitrage: recommendations with savings.",
)
