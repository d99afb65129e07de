"""The Dagster layer, one module per UI group: each holds its group's assets, checks, jobs,
schedules and sensors, and `iv_app.definitions` loads them all
(`dg.load_definitions_from_package_module`), so nothing defined here can be left out.

    common.py        owners, partitions, the schedule helper, @metered
    lifecycle.py     dac_lifecycle_job (spans the lifecycle groups)
    discovery.py     group discovery:  dac_request ... validated_hypothesis
    training.py      group training:   wifi_sensing_base_model, lora_adapter
    proof.py         group proof:      lineage_proof, utid (+ the daily ledger re-verification)
    packaging.py     group packaging:  energy_signature, dac_package, shield_review
    deployment.py    group deployment: dac_deployment, service_mesh, capsule_pins
    edge.py          group edge:       device_captures (what each ESP32 sent, daily)
    operations/      group operations: health, energy, reports, research, base_model
"""
