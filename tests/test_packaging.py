"""DAC packages: validated manifests, determinism, tamper evidence, shield policies."""

import json
import shutil

import pytest

from iv_pipelines.packaging.build import verify_package
from iv_pipelines.packaging.k8s import RenderParams, render_manifests, validate_manifests
from iv_pipelines.shield.policies import POLICIES, run_policies


@pytest.fixture
def package_copy(small_package, tmp_path):
    """A copy of the built package (and its tarball/attestation) that a test may damage."""
    _root, _key, pkg, _ = small_package
    dest = tmp_path / "packages" / pkg.dac_id
    shutil.copytree(pkg.directory, dest / pkg.version)
    for p in (pkg.tarball, pkg.attestation):
        shutil.copyfile(p, dest / p.name)
    return dest / pkg.version


def test_every_rendered_manifest_passes_strict_validation(small_package):
    _root, _key, pkg, _ = small_package
    texts = {p.name: p.read_text() for p in sorted((pkg.directory / "k8s").glob("*.yaml"))}
    assert set(texts) == {
        "namespace.yaml",
        "inferencelog.yaml",
        "deployment.yaml",
        "service.yaml",
        "hpa.yaml",
        "networkpolicy.yaml",
    }
    assert validate_manifests(texts) == []
    params = RenderParams(
        "x-dac", "1.2.0", "client-a", "client-a", "r/x-dac:1.2.0", "50m", "1", "256Mi", "512Mi"
    )
    assert validate_manifests(render_manifests(params, kserve=True)) == []


def test_strict_validation_catches_unknown_and_wrong_fields():
    params = RenderParams(
        "x-dac", "1.2.0", "client-a", "client-a", "r/x-dac:1.2.0", "50m", "1", "256Mi", "512Mi"
    )
    texts = render_manifests(params)
    bad = dict(
        texts,
        **{"deployment.yaml": texts["deployment.yaml"].replace("readOnlyRootFilesystem", "readOnlyRoot")},
    )
    problems = validate_manifests(bad)
    assert len(problems) == 1 and "readOnlyRoot" in problems[0] and "Deployment/x-dac" in problems[0]
    bad = dict(texts, **{"service.yaml": texts["service.yaml"].replace("port: 80", "port: eighty")})
    assert any("Service/x-dac" in p for p in validate_manifests(bad))


def test_deployment_manifest_carries_probes_limits_and_hardening(small_package):
    import yaml

    _root, _key, pkg, _ = small_package
    dep = yaml.safe_load((pkg.directory / "k8s" / "deployment.yaml").read_text())
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    man = pkg.manifest
    assert c["resources"]["limits"]["memory"] == man["deployment"]["resources"]["memory"]
    assert c["resources"]["requests"]["cpu"] == man["deployment"]["resources"]["cpu"]
    # memory request = measured peak RSS of the packaged runtime x 1.25, in 16 MiB steps
    req_mib = int(c["resources"]["requests"]["memory"].removesuffix("Mi"))
    assert req_mib >= pkg.probe["peak_rss_mib"] * 1.25 and req_mib % 16 == 0
    docker = (pkg.directory / "Dockerfile").read_text()
    assert docker.count("\nFROM ") + docker.startswith("FROM ") == 2  # multi-stage
    assert "USER 10001" in docker and "HEALTHCHECK" in docker and ":latest" not in docker


def test_manifest_is_filled_from_upstream_values(small_package):
    from iv_pipelines.manifest import validate_manifest
    from iv_pipelines.proof.lineage import sha256_file

    root, _key, pkg, decision = small_package
    man = validate_manifest(pkg.manifest)
    dac = root / "dacs" / "fall-detection-acme"
    reg = json.loads((dac / "lineage" / "registration.json").read_text())
    lineage = json.loads((dac / "lineage" / "lineage.json").read_text())
    assert man.utid == "UTID-" + reg["utid"].split(":")[1]
    assert man.proof.blockchain_tx == "0x" + reg["tx_hash"]
    assert man.proof.lineage_merkle_root == lineage["merkle"]["root"]
    assert man.energy_signature.E_state == 12.5 and man.energy_signature.S_state == 0.6
    assert man.intelligence.adapter_digest == sha256_file(dac / "adapter" / "adapter_model.safetensors")
    ev = json.loads((dac / "adapter" / "evaluation.json").read_text())
    # the manifest's accuracy is the shipped model's, at its decision, on the evidence that
    # decides, and it says which evidence that is
    assert man.intelligence.metrics["accuracy"] == pytest.approx(ev["evidence"]["simulation"]["accuracy"])
    assert man.intelligence.validated_on == "simulation_only"
    assert "simulated client room" in man.intelligence.evaluated_on
    assert man.intelligence.fall_threshold == ev["evidence"]["decision"]["fall_threshold"]
    runtime = json.loads((pkg.directory / "runtime.json").read_text())
    assert runtime["decision"]["fall_threshold"] == man.intelligence.fall_threshold
    # uncalibrated: no walking reference, so no fall-intensity check, and both say so
    assert runtime["decision"]["intensity_check"] is None and man.intelligence.fall_intensity_check is None
    assert runtime["validated_on"] == "simulation_only" and runtime["model"] == "adapter"
    assert man.validation.ai_shield_approved is decision.approved
    assert man.version == pkg.version == json.loads((pkg.directory / "runtime.json").read_text())["version"]


def test_same_inputs_give_the_same_package_digest(small_package):
    from iv_pipelines.packaging.dac import build_dac_package

    root, key, pkg, _ = small_package
    energy = {"E_state": 12.5, "dE_dt": 3.1, "S_state": 0.6, "method": "test fixture"}
    again, _, _ = build_dac_package(root, "fall-detection-acme", key, key.public, energy, "run-1", [])
    assert (again.version, again.digest) == (pkg.version, pkg.digest)
    changed, _, _ = build_dac_package(
        root, "fall-detection-acme", key, key.public, energy | {"E_state": 13.0}, "run-1", []
    )
    assert changed.version == "1.1.0" and changed.digest != pkg.digest
    # the first version is still there, untouched
    assert verify_package(pkg.directory, key.public).ok


def test_merged_weights_match_the_peft_adapter(small_package):
    import numpy as np
    from peft import PeftModel

    from iv_pipelines.runtime.predictor import Predictor
    from iv_pipelines.sensing.features import N_FEATURES, T
    from iv_pipelines.sensing.model import load_model, predict_proba

    root, _key, pkg, _ = small_package
    base, _ = load_model(root / "models" / "wifi-sensing-base")
    peft_model = PeftModel.from_pretrained(base, str(root / "dacs" / "fall-detection-acme" / "adapter"))
    x = np.random.default_rng(0).normal(size=(6, T, N_FEATURES)).astype(np.float32)
    np.testing.assert_allclose(Predictor(pkg.directory).proba(x), predict_proba(peft_model, x), atol=1e-5)


def test_tampered_package_fails_provenance(package_copy, small_package):
    from iv_pipelines.packaging.dac import review_package

    _root, key, _pkg, _ = small_package
    assert verify_package(package_copy, key.public).ok
    w = package_copy / "weights" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1
    w.write_bytes(bytes(data))
    rep = verify_package(package_copy, key.public)
    assert rep.problems == ["weights/model.safetensors: sha256 differs from the attestation (tampered?)"]
    decision, _policies, prov = review_package(package_copy, key.public)
    assert not decision.approved and prov
    assert any("provenance" in r for r in decision.reasons)


def test_attestation_signed_by_another_key_is_rejected(package_copy):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from iv_pipelines.proof.dsse import SigningKey

    other = SigningKey(Ed25519PrivateKey.generate(), "test").public
    rep = verify_package(package_copy, other)
    assert not rep.ok and "signature" in rep.problems[0]


def test_clean_package_passes_every_policy(small_package):
    _root, _key, pkg, _ = small_package
    rep = run_policies(pkg.directory)
    assert rep.findings == [] and all(rep.passed[p] for p in POLICIES) and rep.files_scanned > 20


@pytest.mark.parametrize(
    "rel, text, what",
    [
        (
            "src/iv_pipelines/settings.py",
            'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"\n',
            "assigned a literal",
        ),
        (
            "twin/notes.txt",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
            "private key",
        ),
        ("runtime.json", None, "high-entropy"),
        (
            "requirements.txt",
            "--index-url https://svc:Zq8#xV2!mR7@pypi.internal/simple\n",
            "password in a URL",
        ),
        (
            "k8s/extra.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {k: AKIAIOSFODNN7EXAMPLE}\n",
            "AWS access key",
        ),
    ],
)
def test_planted_secret_fails_review_naming_the_file(package_copy, small_package, rel, text, what):
    from iv_pipelines.packaging.dac import review_package

    _root, key, _pkg, _ = small_package
    p = package_copy / rel
    if text is None:  # a random token inside an otherwise valid JSON file
        doc = json.loads(p.read_text())
        doc["note"] = "Zq8xV2mR7kP4wL9tN6yB3hJ5Qm9fT2xWv8KcZ4rPs1Ud"  # 44 random base62 characters
        text = json.dumps(doc)
    p.write_text(text)
    rep = run_policies(package_copy)
    hits = [f for f in rep.findings if f.policy == "no_secrets"]
    assert any(f.file == rel and what in f.message for f in hits), rep.findings
    decision, _, _ = review_package(package_copy, key.public)
    assert not decision.approved
    assert any("no_secrets failed" in r for r in decision.reasons)
    assert any(rel in r for r in decision.reasons)


@pytest.mark.parametrize(
    "mutate, policy",
    [
        (
            lambda d: (d / "Dockerfile").write_text(
                (d / "Dockerfile").read_text().replace("python:3.11.11-slim-bookworm", "python")
            ),
            "images_pinned",
        ),
        (lambda d: (d / "k8s" / "networkpolicy.yaml").unlink(), "network_policy"),
        (
            lambda d: (d / "k8s" / "deployment.yaml").write_text(
                (d / "k8s" / "deployment.yaml")
                .read_text()
                .replace("          limits:\n", "          unused:\n")
            ),
            "resource_limits",
        ),
        (
            lambda d: (d / "k8s" / "deployment.yaml").write_text(
                (d / "k8s" / "deployment.yaml")
                .read_text()
                .replace("allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true")
            ),
            "hardening",
        ),
        (lambda d: (d / "blob.bin").write_bytes(b"\x00\x01"), "licences_known"),
    ],
)
def test_each_policy_fails_when_its_rule_is_broken(package_copy, mutate, policy):
    mutate(package_copy)
    rep = run_policies(package_copy)
    assert not rep.passed[policy], rep.findings


def test_kubernetes_quantities():
    from iv_pipelines.packaging.k8s import cpu_cores, memory_mib

    assert cpu_cores("500m") == 0.5 and cpu_cores("2") == 2.0
    assert memory_mib("512Mi") == 512 and memory_mib("1Gi") == 1024 and memory_mib(str(2**20)) == 1
    assert memory_mib("1G") == pytest.approx(10**9 / 2**20)
