"""The three deployment targets behind one interface: deploy, status, stop.

- `LocalDeployer` (embedded default): a supervised runtime process on 127.0.0.1 and a free
  port; state under `<state_dir>/<dac_id>/` (state.json, capsule.log);
- `DockerDeployer`: builds the package directory (it is the Docker build context) and runs
  it with the Docker SDK, read-only, non-root, no new privileges; a clear error when no
  daemon answers;
- `KubernetesDeployer`: applies the package's validated manifests with the `kubernetes`
  client (create, or patch when the object exists) to the cluster of the kubeconfig.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from iv_pipelines.deploy import DeployError

INFERENCE_LOG_IN_CONTAINER = "/var/lib/iv/inference"  # the Docker target's mount point


def inference_log_env(request: dict | None, directory: str) -> dict[str, str]:
    """The capsule's `IV_INFERENCE_LOG_*` environment: the directory, then the deployer's own
    `IV_INFERENCE_LOG_RETENTION/_SAMPLE/_MAX_MB` (an operator's defaults), then the request's
    `inference_log` (the client's setting) over both."""
    from iv_pipelines.request import InferenceLogSpec

    env = {"IV_INFERENCE_LOG_DIR": directory}
    for k in ("RETENTION", "SAMPLE", "MAX_MB"):
        if os.environ.get(f"IV_INFERENCE_LOG_{k}"):
            env[f"IV_INFERENCE_LOG_{k}"] = os.environ[f"IV_INFERENCE_LOG_{k}"]
    spec = (request or {}).get("inference_log")
    if spec:
        env |= InferenceLogSpec.model_validate(spec).env(directory)
    return env


@dataclass
class DeploymentRecord:
    target: str
    dac_id: str
    version: str
    url: str | None
    details: dict

    def to_json(self) -> dict:
        return asdict(self)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, timeout: float = 2.0, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"{}")
        except json.JSONDecodeError:
            return e.code, {}


def wait_ready(url: str, timeout_s: float = 60.0, is_alive=lambda: True) -> float:
    """Poll GET {url}/readyz until 200; seconds waited. DeployError on timeout or death."""
    t0 = time.monotonic()
    last = "no answer"
    while time.monotonic() - t0 < timeout_s:
        if not is_alive():
            raise DeployError(f"capsule at {url} exited before becoming ready ({last})")
        try:
            code, body = http_json(f"{url}/readyz", timeout=1.0)
            if code == 200:
                return time.monotonic() - t0
            last = f"readyz {code}: {body.get('status')} {body.get('error') or ''}".strip()
            if body.get("status") == "failed":
                raise DeployError(f"capsule at {url} failed to load its model: {body.get('error')}")
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            last = str(e)
        time.sleep(0.1)
    raise DeployError(f"capsule at {url} not ready after {timeout_s:.0f} s ({last})")


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class LocalDeployer:
    target = "local"

    def __init__(self, state_dir: Path, ready_timeout_s: float = 90.0, threads: int = 1):
        self.state_dir = Path(state_dir)
        self.ready_timeout_s = ready_timeout_s
        self.threads = threads

    def _dir(self, dac_id: str) -> Path:
        return self.state_dir / dac_id

    def state(self, dac_id: str) -> dict | None:
        p = self._dir(dac_id) / "state.json"
        return json.loads(p.read_text()) if p.exists() else None

    def meta(self, dac_id: str) -> dict:
        p = self._dir(dac_id) / "meta.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def deploy(
        self,
        package_dir: Path,
        dac_id: str,
        version: str,
        env: dict | None = None,
        memory_limit_mib: int | None = None,
        wait: bool = True,
    ) -> DeploymentRecord:
        """Start (or replace) the supervised capsule; returns once /readyz answers 200 (or at
        once with `wait=False`). `env` is extra environment for the capsule; the memory
        limit (default: the package manifest's) is what the health check compares RSS with."""
        self.stop(dac_id)
        d = self._dir(dac_id)
        d.mkdir(parents=True, exist_ok=True)
        (d / "state.json").unlink(missing_ok=True)
        port = free_port()
        if memory_limit_mib is None:
            from iv_pipelines.packaging.k8s import memory_mib

            try:
                manifest = json.loads((Path(package_dir) / "manifest.json").read_text())
                memory_limit_mib = int(memory_mib(manifest["deployment"]["resources"]["memory"]))
            except (OSError, KeyError, ValueError):
                memory_limit_mib = None
        (d / "meta.json").write_text(
            json.dumps(
                {
                    "package": str(package_dir),
                    "version": version,
                    "memory_limit_mib": memory_limit_mib,
                    "port": port,
                    "env": env or {},
                }
            )
        )
        cmd = [
            sys.executable,
            "-m",
            "iv_pipelines.deploy.supervise",
            "--package",
            str(package_dir),
            "--port",
            str(port),
            "--state",
            str(d / "state.json"),
            "--log",
            str(d / "capsule.log"),
            "--threads",
            str(self.threads),
        ]
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=os.environ | (env or {}),
        )
        url = f"http://127.0.0.1:{port}"
        if not wait:
            return DeploymentRecord("local", dac_id, version, url, {"supervisor_pid": proc.pid, "port": port})
        try:
            waited = wait_ready(url, self.ready_timeout_s, is_alive=lambda: proc.poll() is None)
        except DeployError as e:
            self.stop(dac_id)
            tail = (
                (d / "capsule.log").read_text(errors="replace")[-1500:]
                if (d / "capsule.log").exists()
                else ""
            )
            raise DeployError(f"local: {e}\n{tail}") from None
        st = self.state(dac_id) or {}
        return DeploymentRecord(
            "local",
            dac_id,
            version,
            url,
            {
                "supervisor_pid": proc.pid,
                "capsule_pid": st.get("capsule_pid"),
                "port": port,
                "package": str(package_dir),
                "ready_seconds": round(waited, 2),
                "log": str(d / "capsule.log"),
            },
        )

    def status(self, dac_id: str) -> dict:
        st = self.state(dac_id)
        if not st:
            return {"running": False, "reason": "never deployed"}
        sup, cap = _alive(st.get("supervisor_pid")), _alive(st.get("capsule_pid"))
        ready = False
        if cap:
            try:
                ready = http_json(f"http://127.0.0.1:{st['port']}/readyz", 1.0)[0] == 200
            except OSError:
                ready = False
        rss = None
        if cap:
            try:
                with open(f"/proc/{st['capsule_pid']}/status") as fh:
                    rss = next(int(x.split()[1]) / 1024 for x in fh if x.startswith("VmRSS"))
            except (OSError, StopIteration):
                rss = None
        return (
            st
            | {
                "supervisor_alive": sup,
                "capsule_alive": cap,
                "ready": ready,
                "running": sup and cap,
                "rss_mib": rss,
                "url": f"http://127.0.0.1:{st['port']}",
            }
            | {k: v for k, v in self.meta(dac_id).items() if k in ("memory_limit_mib", "version", "package")}
        )

    def stop(self, dac_id: str, timeout_s: float = 10.0) -> bool:
        """Stop the supervisor (which stops the capsule); True if something was running."""
        st = self.state(dac_id)
        if not st:
            return False
        pids = [p for p in (st.get("supervisor_pid"), st.get("capsule_pid")) if _alive(p)]
        if not pids:
            return False
        if _alive(st.get("supervisor_pid")):
            os.kill(st["supervisor_pid"], signal.SIGTERM)
        t0 = time.monotonic()
        while any(_alive(p) for p in pids) and time.monotonic() - t0 < timeout_s:
            time.sleep(0.05)
        for p in pids:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        return True


class DockerDeployer:
    target = "docker"

    def __init__(self, base_url: str | None = None, client=None):
        self.base_url = base_url
        self._client = client

    def client(self):
        if self._client is not None:
            return self._client
        import docker

        where = self.base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        try:
            c = docker.DockerClient(base_url=self.base_url) if self.base_url else docker.from_env()
            c.ping()
        except Exception as e:
            raise DeployError(
                f"docker: no Docker daemon is reachable at {where} ({type(e).__name__}: {str(e)[:200]}); "
                "start one or set DOCKER_HOST, or deploy with target 'local'"
            ) from None
        self._client = c
        return c

    def deploy(
        self,
        package_dir: Path,
        dac_id: str,
        version: str,
        image: str,
        memory_limit: str,
        inference_log: tuple[Path, dict[str, str]] | None = None,
    ) -> DeploymentRecord:
        """`inference_log`: (host directory, environment) — the directory is bind-mounted
        read-write at INFERENCE_LOG_IN_CONTAINER (the rest of the container stays read-only)."""
        c = self.client()
        volumes = {
            str(attestation_file(package_dir, dac_id, version)): {"bind": ATTESTATION_IN_IMAGE, "mode": "ro"}
        }
        environment = {}
        if inference_log is not None:
            host_dir, environment = inference_log
            host_dir = Path(host_dir)
            host_dir.mkdir(parents=True, exist_ok=True)
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                os.chown(host_dir, 10001, 10001)  # the capsule's user writes it
            volumes[str(host_dir)] = {"bind": INFERENCE_LOG_IN_CONTAINER, "mode": "rw"}
        img, _logs = c.images.build(path=str(package_dir), tag=image, rm=True, pull=False)
        name = f"iv-{dac_id}"
        for old in c.containers.list(all=True, filters={"name": name}):
            old.remove(force=True)
        port = free_port()
        cont = c.containers.run(
            image,
            name=name,
            detach=True,
            ports={"8080/tcp": ("127.0.0.1", port)},
            read_only=True,
            tmpfs={"/tmp": "size=64m"},
            # the package's signed attestation, checked by the capsule before it becomes ready;
            # the inference log's directory in the client's storage namespace
            volumes=volumes,
            environment=environment,
            user="10001:10001",
            security_opt=["no-new-privileges"],
            mem_limit=memory_limit.replace("Mi", "m").replace("Gi", "g"),
            restart_policy={"Name": "on-failure", "MaximumRetryCount": 5},
            labels={"iv.industriverse.dev/dac": dac_id, "iv.industriverse.dev/version": version},
        )
        url = f"http://127.0.0.1:{port}"
        waited = wait_ready(url, 120)
        return DeploymentRecord(
            "docker",
            dac_id,
            version,
            url,
            {"container": cont.id, "image": img.id, "ready_seconds": round(waited, 2)},
        )

    def stop(self, dac_id: str) -> bool:
        c = self.client()
        found = c.containers.list(all=True, filters={"name": f"iv-{dac_id}"})
        for cont in found:
            cont.remove(force=True)
        return bool(found)


# kind -> (api class, create method, patch method, namespaced)
_K8S_METHODS = {
    "Namespace": ("CoreV1Api", "create_namespace", "patch_namespace", False),
    "Deployment": ("AppsV1Api", "create_namespaced_deployment", "patch_namespaced_deployment", True),
    "Service": ("CoreV1Api", "create_namespaced_service", "patch_namespaced_service", True),
    "HorizontalPodAutoscaler": (
        "AutoscalingV2Api",
        "create_namespaced_horizontal_pod_autoscaler",
        "patch_namespaced_horizontal_pod_autoscaler",
        True,
    ),
    "PersistentVolumeClaim": (
        "CoreV1Api",
        "create_namespaced_persistent_volume_claim",
        "patch_namespaced_persistent_volume_claim",
        True,
    ),
    "ConfigMap": ("CoreV1Api", "create_namespaced_config_map", "patch_namespaced_config_map", True),
    "NetworkPolicy": (
        "NetworkingV1Api",
        "create_namespaced_network_policy",
        "patch_namespaced_network_policy",
        True,
    ),
}


ATTESTATION_IN_IMAGE = "/attestation/attestation.intoto.jsonl"  # Dockerfile's IV_CAPSULE_ATTESTATION


def attestation_file(package_dir: Path, dac_id: str, version: str) -> Path:
    path = Path(package_dir).parent / f"{dac_id}-{version}.intoto.jsonl"
    if not path.is_file():
        raise DeployError(f"{path}: the package's attestation is missing; the capsule would refuse to start")
    return path


def attestation_config_map(package_dir: Path, dac_id: str, version: str, docs: list[dict]) -> dict:
    dep = next((d for d in docs if d["kind"] == "Deployment"), None)
    if dep is None:
        raise DeployError(f"kubernetes: no Deployment among the manifests of {package_dir}")
    meta = dep["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{meta['name']}-attestation",
            "namespace": meta["namespace"],
            "labels": meta.get("labels", {}),
        },
        "data": {"attestation.intoto.jsonl": attestation_file(package_dir, dac_id, version).read_text()},
    }


class KubernetesDeployer:
    target = "kubernetes"

    def __init__(self, kubeconfig: str | None = None, context: str | None = None, api_client=None):
        self.kubeconfig = kubeconfig
        self.context = context
        self._api_client = api_client

    def api_client(self):
        if self._api_client is None:
            from kubernetes import client, config

            try:
                cfg = client.Configuration()
                config.load_kube_config(
                    config_file=self.kubeconfig, context=self.context, client_configuration=cfg
                )
            except Exception as e:
                raise DeployError(
                    f"kubernetes: cannot load kubeconfig {self.kubeconfig or '~/.kube/config'}: {e}"
                ) from None
            self._api_client = client.ApiClient(cfg)
        return self._api_client

    @staticmethod
    def documents(package_dir: Path) -> list[dict]:
        from iv_pipelines.packaging.k8s import TEMPLATES

        order = {f"{n}.yaml": i for i, n in enumerate(TEMPLATES)}
        files = sorted((Path(package_dir) / "k8s").glob("*.yaml"), key=lambda p: order.get(p.name, 99))
        if not files:
            raise DeployError(f"kubernetes: no manifests under {package_dir}/k8s")
        return [d for p in files for d in yaml.safe_load_all(p.read_text()) if d]

    def deploy(self, package_dir: Path, dac_id: str, version: str) -> DeploymentRecord:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        api = self.api_client()
        applied = []
        docs = self.documents(package_dir)
        # the attestation the capsule checks at start, as a ConfigMap the Deployment mounts
        # (created here: it attests the manifests, so it cannot be one of them)
        at = next((i for i, d in enumerate(docs) if d["kind"] == "Namespace"), -1) + 1
        docs.insert(at, attestation_config_map(package_dir, dac_id, version, docs))
        for doc in docs:
            kind, meta = doc["kind"], doc["metadata"]
            ns = meta.get("namespace")
            if kind == "InferenceService":
                group, ver = doc["apiVersion"].split("/")
                co = client.CustomObjectsApi(api)
                try:
                    co.create_namespaced_custom_object(
                        group, ver, ns, "inferenceservices", doc, _preload_content=False
                    )
                    applied.append((kind, ns, meta["name"], "created"))
                except ApiException as e:
                    if e.status != 409:
                        raise DeployError(
                            f"kubernetes: {kind} {meta['name']}: {e.status} {e.reason}"
                        ) from None
                    co.patch_namespaced_custom_object(
                        group, ver, ns, "inferenceservices", meta["name"], doc, _preload_content=False
                    )
                    applied.append((kind, ns, meta["name"], "patched"))
                continue
            if kind not in _K8S_METHODS:
                raise DeployError(f"kubernetes: no apply rule for kind {kind!r}")
            cls, create, patch, namespaced = _K8S_METHODS[kind]
            a = getattr(client, cls)(api)
            args = (ns, doc) if namespaced else (doc,)
            try:
                getattr(a, create)(*args, _preload_content=False)
                applied.append((kind, ns, meta["name"], "created"))
            except ApiException as e:
                if e.status != 409:
                    raise DeployError(
                        f"kubernetes: {kind} {meta['name']}: {e.status} {e.reason} {e.body or ''}"[:500]
                    ) from None
                pargs = (meta["name"], ns, doc) if namespaced else (meta["name"], doc)
                getattr(a, patch)(*pargs, _preload_content=False)
                applied.append((kind, ns, meta["name"], "patched"))
        ns = next(
            (d["metadata"]["name"] for d in self.documents(package_dir) if d["kind"] == "Namespace"), None
        )
        return DeploymentRecord(
            "kubernetes",
            dac_id,
            version,
            f"http://{dac_id}.{ns}.svc.cluster.local",
            {"applied": [list(x) for x in applied], "namespace": ns},
        )
