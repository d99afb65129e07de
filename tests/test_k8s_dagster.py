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

import json
import re
from pathlib import Path

# imported here, at collection, in the main thread: kmock is a pytest plugin distribution, so
# pytest rewrites its modules on import (ast.parse); imported first inside the emulator's
# thread, that parse could race another thread's and CPython 3.11.7 raises "AST constructor
# recursion depth mismatch" (it failed the emulator's start once in a fresh-clone CI run)
import kmock
import pytest
import yaml
from conftest import TINY_SENSING

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


@pytest.mark.parametrize(
    "job_name, step",
    [
        ("base_model_update_job", "base_model_update"),
        ("dac_lifecycle_job", "shadow_twin_context"),
        ("dac_lifecycle_job", "lora_adapter"),
        ("dac_lifecycle_job", "dac_package"),
        ("dac_lifecycle_job", "dac_deployment"),
    ],
)
def test_each_step_job_is_valid_and_sized_by_its_measurement(job_name, step):
    """The prod executor's Job for a step, built as `k8s_job_executor` builds it (the step's
    `dagster-k8s/config` tag, then the executor's `per_step_k8s_config` from the shipped
    measurements): valid, and asking for what the step measured; the training steps' GPU is in
    their Pipes pod, so their Job keeps the launcher's default."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import (
        UserDefinedDagsterK8sConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )

    from iv_app.definitions import defs
    from iv_pipelines.deploy.step_sizes import PIPES_STEPS, executor_config, load

    sizes = load()
    per_step = executor_config(sizes)["per_step_k8s_config"]
    job_def = defs.resolve_job_def(job_name)
    tags = job_def.graph.node_dict[step].definition.tags
    ctx = K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(tags)).merge(
        K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(per_step.get(step, {})))
    )
    job = _serialised(
        construct_dagster_k8s_job(
            _job_config(),
            ["dagster", "api", "execute_step", "{}"],
            f"dagster-step-{step.replace('_', '-')}",
            user_defined_k8s_config=ctx.run_k8s_config,
            component="step_worker",
        )
    )
    _validate(job)
    res = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    if step in PIPES_STEPS:
        assert res == VALUES["runLauncher"]["config"]["k8sRunLauncher"]["resources"]
    else:
        assert res == sizes[step]["resources"]
        assert "nvidia.com/gpu" not in res["limits"]


def test_the_shipped_step_sizes_are_measured_and_valid_executor_config():
    """`deploy/step_resources.json` is what `iv k8s step-sizes --write` writes: every
    lifecycle step that meters itself is in it with its measured p95s, its requests follow
    the documented rule from them, and the executor config built from it passes
    `k8s_job_executor`'s own schema."""
    from dagster._config import process_config
    from dagster_k8s import k8s_job_executor

    from defs.packaging import METERED_STEPS
    from iv_pipelines.deploy import step_sizes

    doc = json.loads(step_sizes.DEFAULT_FILE.read_text())
    assert doc["measured"]["command"] == "iv k8s step-sizes --write"
    sizes = step_sizes.load()
    assert set(METERED_STEPS) | {"wifi_sensing_base_model", "dac_package"} <= set(sizes)
    for op, s in sizes.items():
        assert s["runs"] >= 1 and s["peak_rss_mib_p95"] > 0, op
        want = step_sizes.size([s["peak_rss_mib_p95"]], [s["cores_p95"]])
        assert s["resources"] == want, op
    cfg = step_sizes.executor_config(sizes)
    res = process_config(k8s_job_executor.config_schema.config_type, cfg)
    assert res.success, res.errors
    assert not set(cfg["per_step_k8s_config"]) & set(step_sizes.PIPES_STEPS)


def test_the_environment_helper_picks_the_executor():
    import dagster as dg
    from dagster_k8s import k8s_job_executor

    from resources.selection import lifecycle_executor

    prod = lifecycle_executor("prod")  # k8s_job_executor, configured with the measured sizes
    assert prod.name == k8s_job_executor.name and prod.executor_creation_fn is not None
    assert prod is not k8s_job_executor  # the shipped measurements are applied
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


class KubeEmulator:
    """kmock's Kubernetes API emulator on a loopback port, served from its own thread's event
    loop, so the synchronous `kubernetes` client Dagster uses talks HTTP to it."""

    def __init__(self):
        import asyncio
        import threading

        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        # generous: under a full `make test` on 2 cores the thread may wait for the CPU
        assert self._ready.wait(60), "the emulator did not start within 60 s"
        assert self._error is None, f"the emulator failed to start: {self._error!r}"

    def _serve(self):
        import asyncio

        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as e:  # reported to the test, never lost in the thread
            self._error = e
            self._ready.set()

    async def _main(self):
        import asyncio

        self._stop = asyncio.Event()
        async with kmock.KubernetesEmulator() as self.handler, kmock.Server(self.handler) as srv:
            self.url = str(srv.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def requests(self) -> list[tuple[str, str, object]]:
        return [(str(r.method.value), r.url.path, r.data) for r in list(self.handler)]

    def kubeconfig(self, path: Path, namespace: str) -> Path:
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "emu", "cluster": {"server": self.url}}],
                    "users": [{"name": "u", "user": {"token": "t"}}],
                    "contexts": [
                        {"name": "emu", "context": {"cluster": "emu", "user": "u", "namespace": namespace}}
                    ],
                    "current-context": "emu",
                }
            )
        )
        return path

    def close(self):
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


@pytest.fixture
def kube():
    emu = KubeEmulator()
    yield emu
    emu.close()


def test_k8s_run_launcher_launches_a_lifecycle_run_on_the_emulated_cluster(kube, tmp_path):
    """Dagster's own K8sRunLauncher, configured from the Helm values, launches a
    `dac_lifecycle_job` run: the one Job it POSTs is the run worker, in the values' image,
    with their secrets, env and volumes, valid against the Kubernetes schema; Dagster records
    the launch (engine events, the image tag)."""
    import dagster as dg
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.launcher import LaunchRunContext
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin

    from iv_app.definitions import defs

    image = "registry.example.com/iv/dac-factory-code:0.1.0"
    cfg = _launcher_config() | {
        "load_incluster_config": False,
        "kubeconfig_file": str(kube.kubeconfig(tmp_path / "kubeconfig", "dagster")),
        "job_namespace": "dagster",
        "instance_config_map": "dagster-instance",
        "service_account_name": "dagster",
        "dagster_home": "/opt/dagster/dagster_home",
        "postgres_password_secret": VALUES["global"]["postgresqlSecretName"],
    }
    (tmp_path / "dagster.yaml").write_text(
        yaml.safe_dump(
            {
                "telemetry": {"enabled": False},
                "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": cfg},
            }
        )
    )
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        job = defs.resolve_job_def("dac_lifecycle_job")
        origin = JobPythonOrigin(
            "dac_lifecycle_job",
            RepositoryPythonOrigin(
                "/usr/local/bin/python",  # the image's (deploy/Dockerfile)
                ModuleCodePointer("iv_app.definitions", "defs", "/opt/dagster/app"),
                container_image=image,
            ),
        )
        instance.add_dynamic_partitions("dac", ["fall-detection-acme"])
        run = instance.create_run_for_job(
            job, tags={"dagster/partition": "fall-detection-acme"}, job_code_origin=origin
        )
        instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
        [(method, path, body)] = kube.requests()
        assert (method, path) == ("POST", "/apis/batch/v1/namespaces/dagster/jobs")
        _validate(body)
        spec = body["spec"]["template"]["spec"]
        [c] = spec["containers"]
        assert c["image"] == image and c["args"][:5] == [
            "/usr/local/bin/python",
            "-m",
            "dagster",
            "api",
            "execute_run",
        ]
        assert {"secretRef": {"name": "iv-secrets"}} in c["envFrom"]
        assert {"name": "IV_ENV", "value": "prod"} in c["env"]
        assert any(
            v.get("persistentVolumeClaim", {}).get("claimName") == "iv-storage" for v in spec["volumes"]
        )
        assert body["metadata"]["labels"]["dagster/run-id"] == run.run_id
        events = [
            e.message
            for e in instance.all_logs(run.run_id)
            if e.dagster_event.event_type_value == "ENGINE_EVENT"
        ]
        assert "[K8sRunLauncher] Kubernetes run worker job created" in events
        assert instance.get_run_by_id(run.run_id).tags["dagster/image"] == image


class FakeKubelet:
    """Plays the node for every pod created on the emulated cluster: runs the pod's own
    command locally with the pod's environment (the real entrypoint), then serves what it
    printed as the pod's log and reports it terminated — the container runs to completion
    between two of Dagster's status polls (its status stays unset until then), so the log the
    Pipes reader follows is whole."""

    def __init__(self, kube):
        import threading

        self.kube, self.pods, self.logs, self.status, self.results = kube, {}, {}, {}, {}
        self._stop = threading.Event()

        def created(name: str) -> dict:
            return self.pods[name]

        def install():
            kube.handler[kmock.subresource("log")] << (lambda req: self.logs.get(req.name, "").encode())
            kube.handler[kmock.action.FETCH, kmock.resource("v1/pods")] << (
                lambda req: self.pods[req.name] | {"status": self.status.get(req.name, {"phase": "Pending"})}
            )
            # Dagster's client lists with a field selector (metadata.name=<pod>)
            kube.handler[kmock.action.LIST, kmock.resource("v1/pods")] << (
                lambda req: {
                    "apiVersion": "v1",
                    "kind": "PodList",
                    "metadata": {},
                    "items": [
                        self.pods[n] | {"status": self.status.get(n, {"phase": "Pending"})}
                        for n in [req.params["fieldSelector"].split("=", 1)[1]]
                        if n in self.pods
                    ],
                }
            )

        kube._loop.call_soon_threadsafe(install)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import time

        done = set()
        while not self._stop.is_set():
            for method, path, body in self.kube.requests():
                if method == "POST" and path.endswith("/pods") and body["metadata"]["name"] not in done:
                    name = body["metadata"]["name"]
                    done.add(name)
                    self.pods[name] = body
                    self._execute(name, body)
            time.sleep(0.02)

    def _execute(self, name: str, pod: dict):
        import datetime as dt
        import os
        import subprocess
        import sys

        [c] = pod["spec"]["containers"]
        env = os.environ | {e["name"]: e["value"] for e in c["env"]} | {"HF_HUB_OFFLINE": "1"}
        cmd = [sys.executable if a == "python" else a for a in c["command"]]
        r = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
        self.results[name] = r
        t0 = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
        self.logs[name] = "".join(
            f"{(t0 + dt.timedelta(microseconds=i)).strftime('%Y-%m-%dT%H:%M:%S.%f')}000Z {ln}\n"
            for i, ln in enumerate((r.stdout + r.stderr).splitlines())
        )
        state = {
            "terminated": {"exitCode": r.returncode, "reason": "Completed" if r.returncode == 0 else "Error"}
        }
        self.status[name] = {
            "phase": "Succeeded" if r.returncode == 0 else "Failed",
            "containerStatuses": [
                {
                    "name": c["name"],
                    "ready": False,
                    "restartCount": 0,
                    "image": c["image"],
                    "imageID": "",
                    "state": state,
                }
            ],
        }

    def stderr(self) -> str:
        return "\n".join(r.stderr[-3000:] for r in self.results.values())

    def close(self):
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def kubelet(kube):
    k = FakeKubelet(kube)
    yield k
    k.close()


def _gpu_steps(kube, tmp_path, **extra):
    from resources.training import GpuStepResource

    return GpuStepResource(
        mode="k8s_pipes",
        image="registry.example.com/iv/dac-factory-code:0.1.0-cu128",
        namespace="dagster",
        kubeconfig_file=str(kube.kubeconfig(tmp_path / "kubeconfig", "dagster")),
        poll_interval_s=0.2,
        **extra,
    )


def _assert_gpu_pod(kube, pod: dict) -> None:
    _validate({"apiVersion": "v1", "kind": "Pod"} | pod)  # the client sends the body without them
    [c] = pod["spec"]["containers"]
    assert c["image"].endswith("-cu128") and c["command"] == ["python", "-m", "iv_app.pipes_steps"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["spec"]["nodeSelector"] == {"iv.industriverse.dev/accelerator": "nvidia-gpu"}
    assert {"secretRef": {"name": "iv-secrets"}} in c["envFrom"]
    assert any(e["name"] == "DAGSTER_PIPES_CONTEXT" for e in c["env"])
    assert ("DELETE", f"/api/v1/namespaces/dagster/pods/{pod['metadata']['name']}") in [
        (m, p) for m, p, _ in kube.requests()
    ]


def test_base_model_pretraining_runs_in_a_gpu_pod_through_pipes(kube, kubelet, tmp_path):
    """`wifi_sensing_base_model` with `GpuStepResource(mode="k8s_pipes")`: Dagster's
    PipesK8sClient creates the training pod on the emulated cluster (one GPU, on a GPU node,
    the storage volume and secrets), waits for it, reads its log and deletes it; the kubelet
    stand-in runs the pod's real command (a tiny pretraining budget). The metadata and data
    version Dagster records come from the pod."""
    import hashlib

    import dagster as dg

    from defs.training import wifi_sensing_base_model
    from resources.sensing import SensingResource
    from resources.storage import FactoryStorage

    root = tmp_path / "iv"
    tiny = SensingResource(**TINY_SENSING, real_data_dir=str(tmp_path / "no-real-captures"))
    res = dg.materialize(
        [wifi_sensing_base_model],
        resources={
            "storage": FactoryStorage(root_dir=str(root)),
            "sensing": tiny,
            "gpu_steps": _gpu_steps(kube, tmp_path),
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert res.success, kubelet.stderr()
    [pod] = kubelet.pods.values()
    assert [r.returncode for r in kubelet.results.values()] == [0]
    _assert_gpu_pod(kube, pod)
    [mat] = res.asset_materializations_for_node("wifi_sensing_base_model")
    weights = root / "models" / "wifi-sensing-base" / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert mat.metadata["weights_sha256"].value == digest
    assert 0.0 <= mat.metadata["heldout_rooms_accuracy"].value <= 1.0
    assert "simulation:" in mat.metadata["evaluated_on"].value
    assert mat.tags.get("dagster/data_version") == digest


def test_lora_adapter_trains_in_a_gpu_pod_through_pipes(kube, kubelet, tmp_path):
    """`lora_adapter` in the same mode: the step hands the pod the twin context it received
    (`<storage>/pipes/<dac>/`, outside the DAC's lineage inputs), the pod trains (tiny budget)
    and reports the adapter's metadata and digest and the blocking check `adapter_beats_base`,
    which Dagster records as the step's own."""
    import hashlib

    from tests.conftest import materialize_to_adapter, tiny_home

    storage, tiny, req = tiny_home(tmp_path / "iv")
    layout = storage.layout
    res = materialize_to_adapter(storage, tiny, req, _gpu_steps(kube, tmp_path))
    checks = {c.check_name: c for c in res.get_asset_check_evaluations()}
    assert "adapter_beats_base" in checks, kubelet.stderr()  # reported by the pod
    [pod] = kubelet.pods.values()
    _assert_gpu_pod(kube, pod)
    assert layout.pipes_input_file(req.dac_id, "twin_context.pkl").is_file()
    assert not list(layout.dac_dir(req.dac_id).rglob("*.pkl"))  # not a lineage input
    [mat] = res.asset_materializations_for_node("lora_adapter")
    digest = hashlib.sha256(
        (layout.adapter_dir(req.dac_id) / "adapter_model.safetensors").read_bytes()
    ).hexdigest()
    assert mat.metadata["adapter_sha256"].value == digest == mat.tags.get("dagster/data_version")
    assert mat.metadata["validated_on"].value == "simulation_only"
    chk = checks["adapter_beats_base"]
    assert chk.metadata["dac_id"].value == req.dac_id and chk.metadata["why"].value
    # a blocking check that failed would fail the step, exactly as in-process
    assert res.success == chk.passed


def test_base_model_update_trains_its_candidate_in_a_gpu_pod_through_pipes(kube, kubelet, tmp_path):
    """`base_model_update` (lora_model_updates) in prod mode: the candidate's pretraining and
    the paired decision against the current model run in the GPU pod, sized by the measured
    pretraining step; the decision Dagster records (and the promotion sensor reads) comes from
    the pod, and what the pod decided is what storage holds."""
    import dagster as dg

    from defs.operations.base_model import base_model_update
    from defs.training import pretrain_base_model
    from iv_pipelines.deploy.step_sizes import load, pipes_resources
    from iv_pipelines.storage import StorageLayout
    from resources.sensing import SensingResource
    from resources.storage import FactoryStorage

    root = tmp_path / "iv"
    tiny = SensingResource(**TINY_SENSING, real_data_dir=str(tmp_path / "no-real-captures"))
    pretrain_base_model(tiny, StorageLayout(root))  # the current model, in-process
    gpu = _gpu_steps(kube, tmp_path, step_resources=pipes_resources(load()))
    res = dg.materialize(
        [base_model_update],
        resources={"storage": FactoryStorage(root_dir=str(root)), "sensing": tiny, "gpu_steps": gpu},
        run_config={"ops": {"base_model_update": {"config": {"candidate_seed": 7}}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert res.success, kubelet.stderr()
    [pod] = kubelet.pods.values()
    _assert_gpu_pod(kube, pod)
    [c] = pod["spec"]["containers"]
    measured = load()["base_model_update"]["resources"]
    assert c["resources"]["requests"] == measured["requests"]
    [mat] = res.asset_materializations_for_node("base_model_update")
    md = {k: v.value for k, v in mat.metadata.items()}
    assert md["candidate_seed"] == 7 and isinstance(md["promoted"], bool)
    assert md["verdict"] in {"better", "non-inferior", "inconclusive", "worse"}
    history = root / "models" / "history"
    assert (history.is_dir() and any(history.iterdir())) == md["promoted"]
    assert md["dacs_to_retrain"] == []  # no DAC has an adapter yet
