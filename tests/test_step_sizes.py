"""Step sizes from measurements (issue #19): the meter's peak memory and cores, the sizing
rule on hand-computed cases, the saved file's errors, the GPU pod's measured resources."""

import json

import numpy as np
import pytest


def test_the_meter_records_cores_and_the_peak_memory_of_the_block():
    import mmap

    from iv_pipelines.energy.meter import Meter, tree_rss_bytes

    base = tree_rss_bytes() / 2**20
    with Meter() as m:
        # 64 MiB of fresh anonymous pages, touched: malloc may instead hand back memory the
        # process already holds (resident after earlier tests), which no meter could see grow
        buf = mmap.mmap(-1, 64 * 2**20)
        view = np.frombuffer(buf, dtype=np.uint8)
        view[:] = 1
        del view
        buf.close()
    r = m.result
    assert r.peak_rss_mib >= base + 60  # freed before the block ended: only a sampled peak sees it
    assert r.cores is not None and r.cores >= 0
    assert {"cores", "peak_rss_mib"} <= set(r.metadata())


def test_size_follows_the_rule_on_hand_computed_cases():
    from iv_pipelines.deploy.step_sizes import StepSizeError, size

    # one run: 1000 MiB x1.25 = 1250 -> 1280 Mi; x1.5 = 1500 -> 1536 Mi; 0.9 cores -> 1000m, limit 2000m
    assert size([1000.0], [0.9]) == {
        "requests": {"cpu": "1000m", "memory": "1280Mi"},
        "limits": {"cpu": "2000m", "memory": "1536Mi"},
    }
    # an idle step: at least a quarter core, a one-core limit
    assert size([100.0], [0.01]) == {
        "requests": {"cpu": "250m", "memory": "128Mi"},
        "limits": {"cpu": "1000m", "memory": "256Mi"},
    }
    # the 95th percentile of twenty runs, not the mean: one run of 2000 MiB among 19 of 100
    peaks = [100.0] * 19 + [2000.0]
    assert (
        size(peaks, [0.5] * 20)["requests"]["memory"]
        == f"{int(np.ceil(np.quantile(peaks, 0.95) * 1.25 / 128)) * 128}Mi"
    )
    with pytest.raises(StepSizeError, match="at least one measured"):
        size([], [1.0])


def test_sizes_skip_unmeasured_steps_and_size_base_model_update_like_pretraining():
    from iv_pipelines.deploy.step_sizes import executor_config, pipes_resources, sizes_from

    sizes = sizes_from(
        {
            "dac_request": [{"cores": 0.2, "peak_rss_mib": 300.0}],
            "hypotheses": [{"cores": 0.5}],  # metered before peak memory was recorded
            "wifi_sensing_base_model": [{"cores": 1.9, "peak_rss_mib": 2000.0}],
        }
    )
    assert set(sizes) == {"dac_request", "wifi_sensing_base_model", "base_model_update"}
    assert sizes["base_model_update"]["same_as"] == "wifi_sensing_base_model"
    assert set(executor_config(sizes)["per_step_k8s_config"]) == {"dac_request"}
    assert set(pipes_resources(sizes)) == {"pretrain_base_model", "update_base_model"}


def test_a_damaged_step_size_file_is_an_error_naming_it(tmp_path):
    from iv_pipelines.deploy.step_sizes import StepSizeError, load, sizes_from, write

    assert load(tmp_path / "none.json") == {}
    good = tmp_path / "ok.json"
    write(good, sizes_from({"dac_request": [{"cores": 0.2, "peak_rss_mib": 300.0}]}), "test")
    assert set(load(good)) == {"dac_request"}
    bad = tmp_path / "bad.json"
    for text in ("{", json.dumps({"steps": {"x": {"resources": {"requests": {"cpu": "1"}}}}}), "[]"):
        bad.write_text(text)
        with pytest.raises(StepSizeError, match="bad.json"):
            load(bad)


def test_the_gpu_pod_asks_for_the_steps_measured_size_and_one_gpu():
    from iv_pipelines.deploy.step_sizes import pipes_resources, sizes_from
    from resources.training import GPU_POD_SPEC, GpuStepResource

    sizes = sizes_from({"lora_adapter": [{"cores": 1.5, "peak_rss_mib": 3000.0}]})
    gpu = GpuStepResource(mode="k8s_pipes", image="x", step_resources=pipes_resources(sizes))
    [c] = gpu.pod_spec_for("train_lora_adapter")["containers"]
    assert c["resources"]["requests"] == {"cpu": "1500m", "memory": "3840Mi"}
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # an unmeasured step keeps the declared pod spec; the shared default is never mutated
    assert gpu.pod_spec_for("pretrain_base_model") == GPU_POD_SPEC
    assert "3840Mi" not in json.dumps(GPU_POD_SPEC)


def test_iv_k8s_step_sizes_reads_the_instance_and_writes_a_file_the_executor_loads(tmp_path):
    """`iv k8s step-sizes`: a clear error on an instance with no measured step; otherwise the
    table, and with --write a file `load` accepts, holding only what was measured (the
    unpartitioned pretraining step too) and naming its source."""
    import dagster as dg
    from click.testing import CliRunner

    from defs.common import ENERGY_TAG
    from iv_app.cli import main
    from iv_pipelines.deploy.step_sizes import load

    env = {"DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("")
    r = CliRunner().invoke(main, ["k8s", "step-sizes"], env=env)
    assert r.exit_code != 0 and "no step on this instance has recorded" in r.output
    assert CliRunner().invoke(main, ["k8s", "step-sizes", "--runs", "0"], env=env).exit_code != 0
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        instance.add_dynamic_partitions("dac", ["acme"])
        for asset, part, peak, cores in (
            ("lora_adapter", "acme", 1000.0, 0.9),
            ("dac_package", "acme", 100.0, 0.01),
            ("wifi_sensing_base_model", None, 4000.0, 1.9),
            ("hypotheses", "acme", None, 0.5),  # metered before peak memory was recorded
        ):
            md = {"cpu_seconds": 1.0, "cores": cores} | ({"peak_rss_mib": peak} if peak else {})
            instance.report_runless_asset_event(
                dg.AssetObservation(asset, partition=part, metadata=md, tags={ENERGY_TAG: "step"})
            )
    out = tmp_path / "sizes.json"
    r = CliRunner().invoke(
        main, ["k8s", "step-sizes", "--write", "--out", str(out), "--source", "a test"], env=env
    )
    assert r.exit_code == 0, r.output
    assert "| lora_adapter | 1 | 1000 | 0.90 | 1000m, 1280Mi | 2000m, 1536Mi |" in r.output
    sizes = load(out)
    assert set(sizes) == {"lora_adapter", "dac_package", "wifi_sensing_base_model", "base_model_update"}
    assert json.loads(out.read_text())["measured"]["source"].startswith("a test: ")
