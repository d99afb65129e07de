"""Dagster itself on Kubernetes (issue #19, items 2-3), checked without a cluster (no API
server can run here):

- the Helm values (`deploy/helm/values.yaml`): the keys that become Dagster configuration are
  checked against Dagster's own config schemas (K8sRunLauncher, QueuedRunCoordinator, the
  instance's `concurrency`), the user deployment against the chart's documented keys, and
  every Kubernetes object in them (volumes, resources, security contexts) strictly against
  the Kubernetes schema;
- the Jobs Dagster would create: the run worker (`construct_dagster_k8s_job`, as
  K8sRunLauncher builds it from that config) and each lifecycle step's own Job under
  `k8s_job_executor`, sized by the step's `dagster-k8s/config` tag — serialised as the
  client would send them and validated strictly (`kubernetes-validate`);
- the environment helper picks `k8s_job_executor` in prod and in-process steps locally.

What this cannot check (docs/production.md says so too): that helm renders these values
(helm is not installed), and anything a live cluster does.
"""

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
VALUES = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
# the UserDeployment keys of the chart's values.schema.json (dagster-user-deployments subchart)
USER_DEPLOYMENT_KEYS = {
    "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns", "port",
    "env", "envConfigMaps", "envSecrets", "annotations", "nodeSelector", "affinity", "tolerations",
    "podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe",
    "startupProbe", "labels", "volumeMounts", "volumes", "schedulerName", "initContainers",
    "sidecarContainers",
}  # fmt: skip
K8S_VERSION = "1.37.0"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _launcher_config() -> dict:
    """The run launcher's values as the chart writes them into the instance's dagster.yaml:
    snake_case keys, and `envSecrets` / `envConfigMaps` objects reduced to their names (what
    the chart's run-launcher template does with them)."""
    cfg = {_snake(k): v for k, v in VALUES["runLauncher"]["config"]["k8sRunLauncher"].items()}
    for k in ("env_secrets", "env_config_maps"):
        if k in cfg:
            cfg[k] = [s["name"] for s in cfg[k]]
    return cfg


def _validate(doc: dict) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _pod(container: dict, **spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "check"},
        "spec": {"containers": [{"name": "c", "image": "img:1"} | container], **spec},
    }


def test_the_user_deployment_uses_documented_keys_and_valid_kubernetes_objects():
    [dep] = VALUES["dagster-user-deployments"]["deployments"]
    assert set(dep) <= USER_DEPLOYMENT_KEYS, set(dep) - USER_DEPLOYMENT_KEYS
    assert dep["codeServerArgs"] == ["-m", "iv_app.definitions"]  # the code location's module
    env = {e["name"]: e["value"] for e in dep["env"]}
    assert env["IV_ENV"] == "prod"
    # secrets only through Kubernetes Secrets: no credential-like value in the file
    text = (REPO / "deploy" / "helm" / "values.yaml").read_text()
    assert not re.search(
        r"(?i)(password|private_key|secret_key)\s*:\s*\S", text.replace("postgresqlSecretName", "")
    )
    assert VALUES["postgresql"]["enabled"] is False and VALUES["generatePostgresqlPasswordSecret"] is False
    _validate(
        _pod(
            {
                "env": dep["env"],
                "envFrom": [{"secretRef": s} for s in dep["envSecrets"]],
                "resources": dep["resources"],
                "securityContext": dep["securityContext"],
                "volumeMounts": dep["volumeMounts"],
            },
            volumes=dep["volumes"],
            securityContext=dep["podSecurityContext"],
        )
    )


def test_run_launcher_and_queue_values_are_valid_dagster_config():
    from dagster._config import process_config
    from dagster._core.instance.config import get_concurrency_config
    from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator
    from dagster_k8s.launcher import K8sRunLauncher

    rl = VALUES["runLauncher"]
    assert rl["type"] == "K8sRunLauncher"
    cfg = _launcher_config()
    launcher_fields = K8sRunLauncher.config_type()
    assert set(cfg) <= set(launcher_fields), set(cfg) - set(launcher_fields)
    from dagster import Shape

    res = process_config(Shape(launcher_fields), cfg | {"instance_config_map": "dagster-instance"})
    assert res.success, res.errors
    q = VALUES["dagsterDaemon"]["runCoordinator"]
    assert q["type"] == "QueuedRunCoordinator"
    qcfg = {_snake(k): v for k, v in q["config"]["queuedRunCoordinator"].items()}
    res = process_config(Shape(QueuedRunCoordinator.config_type()), qcfg)
    assert res.success, res.errors
    assert qcfg["tag_concurrency_limits"][0]["key"] == "dagster/partition"  # one run per DAC
    res = process_config(
        get_concurrency_config().config_type, VALUES["additionalInstanceConfig"]["concurrency"]
    )
    assert res.success, res.errors
    # the same queue and pools as the machine's own config, with more runs
    local = yaml.safe_load((REPO / "deploy" / "dagster.local.yaml").read_text())["concurrency"]
    assert VALUES["additionalInstanceConfig"]["concurrency"]["pools"] == local["pools"]
    assert qcfg["tag_concurrency_limits"] == local["runs"]["tag_concurrency_limits"]


def _job_config():
    from dagster_k8s.job import DagsterK8sJobConfig

    cfg = _launcher_config()
    return DagsterK8sJobConfig(
        job_image="registry.example.com/iv/dac-factory-code:0.1.0",
        dagster_home="/opt/dagster/dagster_home",
        image_pull_policy="IfNotPresent",
        instance_config_map="dagster-instance",
        postgres_password_secret=VALUES["global"]["postgresqlSecretName"],
        env_secrets=cfg["env_secrets"],
        env_vars=cfg["env_vars"],
        volumes=cfg["volumes"],
        volume_mounts=cfg["volume_mounts"],
        resources=cfg["resources"],
    )


def _serialised(job) -> dict:
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(job)


def test_the_run_worker_job_is_valid_kubernetes():
    from dagster_k8s.job import construct_dagster_k8s_job, get_job_name_from_run_id

    name = get_job_name_from_run_id("0123456789abcdef0123456789abcdef")
    job = _serialised(
        construct_dagster_k8s_job(
            _job_config(),
            ["dagster", "api", "execute_run", "{}"],
            name,
            component="run_worker",
            labels={"dagster/job": "dac_lifecycle_job"},
        )
    )
    _validate(job)
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "iv-secrets"}} in c["envFrom"]
    assert {"name": "IV_ENV", "value": "prod"} in c["env"]
    assert any(v["name"] == "iv-storage" for v in job["spec"]["template"]["spec"]["volumes"])


@pytest.mark.parametrize("step", ["lora_adapter", "shadow_twin_context", "dac_package"])
def test_each_lifecycle_step_job_is_valid_and_sized_by_its_tag(step):
    from dagster_k8s.job import construct_dagster_k8s_job, get_user_defined_k8s_config

    from iv_app.definitions import defs

    job_def = defs.resolve_job_def("dac_lifecycle_job")
    tags = job_def.graph.node_dict[step].definition.tags
    job = _serialised(
        construct_dagster_k8s_job(
            _job_config(),
            ["dagster", "api", "execute_step", "{}"],
            f"dagster-step-{step.replace('_', '-')}",
            user_defined_k8s_config=get_user_defined_k8s_config(tags),
            component="step_worker",
        )
    )
    _validate(job)
    res = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    if step == "lora_adapter":  # a GPU, on a GPU node
        assert res["limits"]["nvidia.com/gpu"] == "1"
        assert job["spec"]["template"]["spec"]["nodeSelector"] == {
            "iv.industriverse.dev/accelerator": "nvidia-gpu"
        }
    elif step == "shadow_twin_context":
        assert res["requests"]["cpu"] == "2" and "nvidia.com/gpu" not in res.get("limits", {})
    else:  # no tag: the run launcher's default
        assert res == VALUES["runLauncher"]["config"]["k8sRunLauncher"]["resources"]


def test_the_environment_helper_picks_the_executor():
    import dagster as dg
    from dagster_k8s import k8s_job_executor

    from resources.selection import lifecycle_executor

    assert lifecycle_executor("prod") is k8s_job_executor
    assert lifecycle_executor("local") is dg.in_process_executor


def test_the_code_location_image_follows_the_install_recipe():
    """No Docker engine here to build it: the Dockerfile is checked for what must hold — the
    pinned base, the torch pin of `make install`, extras that exist, a non-root user, and the
    module the code server loads being the code location's."""
    import tomllib

    text = (REPO / "deploy" / "Dockerfile").read_text()
    py = tomllib.loads((REPO / "pyproject.toml").read_text())
    make = (REPO / "Makefile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim-bookworm$", text, re.M)
    torch_pin = re.search(r"torch==[\d.]+", make).group()
    assert torch_pin in text
    extras = re.search(r"-e '\.\[([a-z,]+)\]'", text).group(1).split(",")
    assert set(extras) <= set(py["project"]["optional-dependencies"])
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert f'"-m", "{py["tool"]["dagster"]["module_name"]}"' in text
    [dep] = VALUES["dagster-user-deployments"]["deployments"]
    assert dep["port"] == 4000 and "EXPOSE 4000" in text
