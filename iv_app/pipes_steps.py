"""The GPU steps' own entrypoint inside their Kubernetes pod (issue #19): `python -m
iv_app.pipes_steps`, launched by `GpuStepResource` (mode `k8s_pipes`) through
`PipesK8sClient`. It reads the step and its settings from the Pipes context, runs the same
function the in-process path runs, and reports the step's metadata and data version (the
weights' sha256) back through Pipes messages in the pod's log."""

from __future__ import annotations

STEPS = ("pretrain_base_model", "train_lora_adapter", "update_base_model")


def main() -> int:
    from dagster_pipes import open_dagster_pipes

    from iv_pipelines.storage import StorageLayout
    from resources.sensing import SensingResource
    from resources.training import to_pipes_metadata

    with open_dagster_pipes() as pipes:
        step = pipes.get_extra("step")
        if step not in STEPS:
            raise SystemExit(f"unknown step {step!r}; one of {', '.join(STEPS)}")
        sensing = SensingResource(**pipes.get_extra("sensing"))
        layout = StorageLayout(pipes.get_extra("storage_root"))
        layout.ensure()
        if step == "pretrain_base_model":
            from defs.training import pretrain_base_model

            summary = pretrain_base_model(sensing, layout, pipes.log.info, pipes.log.warning)
            pipes.report_asset_materialization(
                metadata=to_pipes_metadata(summary["metadata"]), data_version=summary["weights_sha256"]
            )
        elif step == "update_base_model":
            from defs.operations.base_model import update_base_model

            out = update_base_model(
                sensing,
                layout,
                int(pipes.get_extra("seed")),
                pipes.log.info,
                fleet_merge=bool(pipes.get_extra("fleet_merge")),
                fleet_merge_iterations=int(pipes.get_extra("fleet_merge_iterations")),
            )
            pipes.report_asset_materialization(metadata=to_pipes_metadata(out["metadata"]))
        else:
            import pickle

            from defs.training import ADAPTER_CHECK, TWIN_CONTEXT_FILE, train_lora_adapter
            from iv_pipelines.request import DacRequest

            dac_id = pipes.get_extra("dac_id")
            saved = layout.dac_request(dac_id)
            if saved is None:
                raise SystemExit(f"no saved request for {dac_id} under {layout.root}")
            twin = pickle.loads(layout.pipes_input_file(dac_id, TWIN_CONTEXT_FILE).read_bytes())
            out = train_lora_adapter(DacRequest.model_validate(saved), twin, sensing, layout, pipes.log.info)
            pipes.report_asset_materialization(
                metadata=to_pipes_metadata(out["metadata"]), data_version=out["adapter_sha256"]
            )
            pipes.report_asset_check(
                check_name=ADAPTER_CHECK,
                passed=out["check"]["passed"],
                severity="ERROR",
                metadata=to_pipes_metadata(out["check"]["metadata"]),
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
