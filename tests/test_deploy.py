"""Deployers: a supervised local capsule (restart after a crash), Docker without a daemon,
and the exact Kubernetes API requests the manifests turn into."""

import json
import os
import signal
import time

import pytest

from iv_pipelines.deploy import DeployError
from iv_pipelines.deploy.targets import (
    DockerDeployer,
    KubernetesDeployer,
    LocalDeployer,
    http_json,
    wait_ready,
)


def test_local_capsule_serves_is_restarted_after_a_kill_and_stops(small_package, tmp_path):
    from iv_pipelines.deploy.smoke import run_smoke, smoke_payloads
    from iv_pipelines.request import parse_request_text
    from iv_pipelines.sensing.pipeline import client_resident, client_room
    from tests.conftest import REPO

    _root, _key, pkg, _ = small_package
    dep = LocalDeployer(tmp_path / "deployments", ready_timeout_s=60)
    rec = dep.deploy(pkg.directory, pkg.dac_id, pkg.version)
    try:
        assert rec.url.startswith("http://127.0.0.1:")
        req = parse_request_text((REPO / "examples" / "requests" / "fall-detection-acme.yaml").read_text())
        smoke = run_smoke(rec.url, smoke_payloads(client_room(req), client_resident(req), 1, 0))
        assert smoke.n == 4 and not smoke.errors and smoke.latency_ms_p99 > 0
        st = dep.status(pkg.dac_id)
        assert st["running"] and st["ready"] and st["restarts"] == 0
        first = st["capsule_pid"]
        os.kill(first, signal.SIGKILL)  # crash the capsule
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st = dep.status(pkg.dac_id)
            if st["capsule_pid"] != first and st["ready"]:
                break
            time.sleep(0.2)
        assert st["capsule_pid"] != first and st["ready"], st
        assert st["restarts"] == 1 and st["last_exit_code"] == -signal.SIGKILL
        assert http_json(f"{rec.url}/healthz")[0] == 200
    finally:
        assert dep.stop(pkg.dac_id)
    st = dep.status(pkg.dac_id)
    assert not st["supervisor_alive"] and not st["capsule_alive"] and st["status"] == "stopped"
    with pytest.raises(DeployError, match="not ready"):
        wait_ready(rec.url, timeout_s=0.5)


def test_local_deploy_of_a_broken_package_fails_with_the_log(small_package, tmp_path):
    import shutil

    _root, _key, pkg, _ = small_package
    broken = tmp_path / "broken"
    shutil.copytree(pkg.directory, broken)
    (broken / "weights" / "model.safetensors").write_bytes(b"not weights")
    dep = LocalDeployer(tmp_path / "deployments", ready_timeout_s=30)
    with pytest.raises(DeployError, match="failed to load its model"):
        dep.deploy(broken, pkg.dac_id, pkg.version)
    assert not dep.status(pkg.dac_id)["running"]


def test_docker_without_a_daemon_says_so(tmp_path):
    dep = DockerDeployer(base_url=f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(DeployError, match="no Docker daemon is reachable at unix://"):
        dep.deploy(tmp_path, "x", "1.0.0", "img:1", "256Mi")


def test_docker_mounts_the_inference_log_in_the_clients_storage(small_package, tmp_path):
    """The container is read-only but for its log directory, a bind mount of
    `<storage>/inference/<dac>/`, and gets the client's log settings (a fake Docker SDK client
    records what the deployer asks; no daemon runs here)."""
    from iv_pipelines.deploy.targets import INFERENCE_LOG_IN_CONTAINER, inference_log_env

    _root, _key, pkg, _ = small_package
    asked = {}

    class Fake:
        class images:
            @staticmethod
            def build(**kw):
                return type("I", (), {"id": "sha256:img"})(), []

        class containers:
            @staticmethod
            def list(**kw):
                return []

            @staticmethod
            def run(image, **kw):
                asked.update(kw, image=image)
                raise RuntimeError("stop here")  # nothing listens: the request is what is tested

    log_dir = tmp_path / "iv" / "inference" / pkg.dac_id
    env = inference_log_env({"inference_log": {"retention": "raw", "sample": 1}}, INFERENCE_LOG_IN_CONTAINER)
    with pytest.raises(RuntimeError, match="stop here"):
        DockerDeployer(client=Fake()).deploy(
            pkg.directory, pkg.dac_id, pkg.version, "img:1", "256Mi", inference_log=(log_dir, env)
        )
    assert asked["read_only"] is True and asked["user"] == "10001:10001"
    assert asked["volumes"][str(log_dir)] == {"bind": INFERENCE_LOG_IN_CONTAINER, "mode": "rw"}
    assert log_dir.is_dir() and log_dir.stat().st_uid in (10001, os.geteuid())
    assert asked["environment"] == {
        "IV_INFERENCE_LOG_DIR": INFERENCE_LOG_IN_CONTAINER,
        "IV_INFERENCE_LOG_RETENTION": "raw",
        "IV_INFERENCE_LOG_SAMPLE": "1.0",
        "IV_INFERENCE_LOG_MAX_MB": "64",
    }


class _Recorder:
    """Stands in for the REST layer of kubernetes.client.ApiClient: records every request
    the typed APIs send, answers 201, or 409 for objects listed in `existing`."""

    def __init__(self, existing=()):
        self.calls = []
        self.existing = set(existing)

    def __call__(self, method, url, query_params=None, headers=None, post_params=None, body=None, **_):
        from kubernetes.client.exceptions import ApiException

        path = url.split("://", 1)[-1].split("/", 1)[1]
        self.calls.append((method, "/" + path, body))
        name = (body or {}).get("metadata", {}).get("name")
        if method == "POST" and name in self.existing:
            e = ApiException(status=409, reason="AlreadyExists")
            e.body = b'{"reason": "AlreadyExists"}'
            raise e

        class R:
            status = 201 if method == "POST" else 200
            data = json.dumps(body or {}).encode()

            def getheaders(self):
                return {}

            def getheader(self, _n, default=None):
                return default

        return R()


def _client(recorder):
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = "https://k8s.example:6443"
    api = client.ApiClient(cfg)
    api.request = recorder
    return api


def test_kubernetes_deployer_sends_exactly_the_validated_manifests(small_package):
    import yaml

    _root, _key, pkg, _ = small_package
    rec = _Recorder()
    out = KubernetesDeployer(api_client=_client(rec)).deploy(pkg.directory, pkg.dac_id, pkg.version)
    ns = "acme-healthcare"
    assert [(m, p) for m, p, _ in rec.calls] == [
        ("POST", "/api/v1/namespaces"),
        ("POST", f"/api/v1/namespaces/{ns}/configmaps"),  # the attestation the capsule checks
        ("POST", f"/api/v1/namespaces/{ns}/persistentvolumeclaims"),  # the inference log
        ("POST", f"/apis/apps/v1/namespaces/{ns}/deployments"),
        ("POST", f"/api/v1/namespaces/{ns}/services"),
        ("POST", f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers"),
        ("POST", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"),
        ("POST", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"),
    ]
    sent = [body for _, _, body in rec.calls]
    cm = sent.pop(1)
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["namespace"] == ns
    assert cm["data"]["attestation.intoto.jsonl"] == pkg.attestation.read_text()
    dep = next(d for d in sent if d["kind"] == "Deployment")
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert vols["attestation"]["configMap"]["name"] == cm["metadata"]["name"]
    assert vols["inference-log"]["persistentVolumeClaim"]["claimName"] == f"{pkg.dac_id}-inference-log"
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["IV_INFERENCE_LOG_DIR"] == "/var/lib/iv/inference/$(POD_NAME)"  # one directory per pod
    assert env["IV_INFERENCE_LOG_RETENTION"] == "features"  # the sample request sets none: the default
    files = ["namespace", "inferencelog", "deployment", "service", "hpa", "networkpolicy"]
    expected = [
        d for f in files for d in yaml.safe_load_all((pkg.directory / "k8s" / f"{f}.yaml").read_text()) if d
    ]
    assert sent == expected  # byte-for-byte the objects that passed strict validation
    assert out.url == f"http://{pkg.dac_id}.{ns}.svc.cluster.local"


def test_kubernetes_deployer_patches_existing_objects(small_package):
    _root, _key, pkg, _ = small_package
    rec = _Recorder(existing={"acme-healthcare", pkg.dac_id})
    out = KubernetesDeployer(api_client=_client(rec)).deploy(pkg.directory, pkg.dac_id, pkg.version)
    methods = [(m, p.rsplit("/", 1)[-1]) for m, p, _ in rec.calls]
    assert ("PATCH", "acme-healthcare") in methods and ("PATCH", pkg.dac_id) in methods
    assert [a[3] for a in out.details["applied"]].count("patched") == 4  # namespace, deployment, service, hpa


def test_kubernetes_without_kubeconfig_is_a_clear_error(tmp_path, small_package):
    _root, _key, pkg, _ = small_package
    dep = KubernetesDeployer(kubeconfig=str(tmp_path / "missing-kubeconfig"))
    with pytest.raises(DeployError, match="cannot load kubeconfig"):
        dep.deploy(pkg.directory, pkg.dac_id, pkg.version)
