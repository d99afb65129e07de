"""Assemble one DAC's package from its stored upstream outputs (no Dagster here)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from iv_pipelines.manifest import validate_manifest
from iv_pipelines.packaging.build import (
    LICENCES,
    Package,
    PackageError,
    assign_version,
    attest,
    copy_base,
    copy_sources,
    deterministic_tar,
    file_digests,
    install,
    merge_adapter,
    probe,
    requirements_text,
    stage_dir,
    verify_package,
    write_contracts,
)
from iv_pipelines.packaging.k8s import RenderParams, render_dockerfile, render_manifests, validate_manifests
from iv_pipelines.paths import atomic_write_bytes
from iv_pipelines.proof.dsse import SigningKey
from iv_pipelines.proof.lineage import ENVELOPE_FILE, ZK_FILE, sha256_file, verify_bundle
from iv_pipelines.request import DacRequest
from iv_pipelines.runtime.contracts import endpoints
from iv_pipelines.runtime.limits import limits_for
from iv_pipelines.sensing.gate import decisive_evidence
from iv_pipelines.sensing.twin import ACTIVITIES
from iv_pipelines.shield.decision import Decision, Evidence, decide
from iv_pipelines.shield.policies import LICENCE_FILE, PolicyReport, run_policies
from iv_pipelines.storage import BASE_MODEL, StorageLayout

MEASUREMENTS = "measurements.json"
REVIEW_SUFFIX = ".review.json"
DOCKERIGNORE = "*.pyc\n__pycache__/\n.staging-*\n"


@dataclass
class PackageOptions:
    image_registry: str = "localhost:5000/iv"
    cpu_limit: str = "1"
    threads: int = 1
    replicas: int = 1
    max_replicas: int = 3
    memory_headroom: float = 1.25  # request = measured peak RSS x this
    kserve: bool = False


def _json(path: Path) -> dict:
    if not path.is_file():
        raise PackageError(f"{path} is missing: materialize the asset that writes it first")
    return json.loads(path.read_text())


def _mib(x: float) -> int:
    return int(-(-x // 16) * 16)  # up to a multiple of 16 MiB


def _inference_log_params(req: DacRequest) -> dict:
    from iv_pipelines.request import InferenceLogSpec

    spec = req.inference_log or InferenceLogSpec()
    return {
        "inference_retention": spec.retention,
        "inference_sample": float(spec.sample),
        "inference_max_mb": spec.max_mb,
    }


def runtime_json(
    dac_id: str, version: str, adapter_eval: dict, dac_dir: Path, limits: dict | None = None
) -> str:
    """The capsule's runtime config: model, the DAC's decision rule, the device context and
    the per-request limits that follow from the package's measured costs."""
    cal_path = dac_dir / "twin" / "calibration.json"
    cal = json.loads(cal_path.read_text()) if cal_path.exists() else {}
    from iv_pipelines.sensing.context import CONTEXT_FILE

    ctx_path = dac_dir / "twin" / CONTEXT_FILE
    context = json.loads(ctx_path.read_text())["context"] if ctx_path.exists() else None
    if context is None and cal.get("context_activities"):
        # a calibrated DAC served without its context would answer as an uncalibrated one,
        # not as the adapter that was trained and evaluated
        raise FileNotFoundError(
            f"{ctx_path}: the DAC was calibrated on {cal['context_activities']} but its device "
            "context is missing; re-materialize shadow_twin_context for this DAC"
        )
    doc = {
        "dac_id": dac_id,
        "version": version,
        "classes": list(ACTIVITIES),
        "weights_dir": "weights",
        "model": adapter_eval.get("selected", "adapter"),
        "decision": adapter_eval["evidence"]["decision"],
        "validated_on": adapter_eval["evidence"]["validated_on"],
        "amplitude_only": bool(cal.get("amplitude_only", False)),
        "context": context,
    }
    if limits is not None:
        doc["limits"] = limits
    return json.dumps(doc, indent=2) + "\n"


def _flat_evidence(e: dict) -> dict:
    """One evidence kind for the manifest: its data note and numbers; a 95 % interval
    (`x_interval95: [lo, hi]`) becomes `x_low95` and `x_high95`; per-capture tables stay in
    the package's adapter/evaluation.json."""
    out = {}
    for m, v in e.items():
        if m == "data" or isinstance(v, int | float):
            out[m] = v
        elif m.endswith("_interval95") and isinstance(v, list | tuple) and len(v) == 2:
            out[m.removesuffix("_interval95") + "_low95"] = float(v[0])
            out[m.removesuffix("_interval95") + "_high95"] = float(v[1])
    return out


def measured_constraints(req: DacRequest, ev: dict, meas: dict) -> tuple[list, list[str]]:
    """(constraints with a measured value, unverified constraint notes) for the Shield.

    Accuracy-type constraints are judged on the client's own held-out captures when the DAC has
    them; on simulated evidence only if the request accepts it (`accept_simulation_evidence`),
    otherwise they are `unverified` and block approval (DESIGN §2)."""
    from iv_pipelines.sensing.gate import accuracy_constraints

    c = req.constraints
    labels = {"client_device": "client device, held-out captures", "simulation": "simulated client room"}
    constraints, unverified = [], []
    for name, key, limit, sense, n, source in accuracy_constraints(c, ev):
        src = ev[source] or {}
        usable = source == "client_device" or req.accept_simulation_evidence
        if usable and key in src:
            constraints.append((f"{name} ({labels[source]})", src[key], limit, sense, n))
        else:
            give = (
                "give evaluation captures of real falls on the client's device"
                if key == "recall_fall"
                else "give labelled calibration or evaluation captures of the client's device"
            )
            unverified.append(
                f"{name} {limit}: unverified, only simulated evidence "
                f"(measured {src.get(key, float('nan')):.3f} on the simulated client room); {give} "
                "or set accept_simulation_evidence"
            )
    if c.max_memory_mb is not None:
        constraints.append(("max_memory_mb (capsule peak RSS)", meas["peak_rss_mib"], c.max_memory_mb, "max"))
    if c.max_latency_ms is not None:
        constraints.append(
            (
                "max_latency_ms (model time per window, 1 thread)",
                1000 * meas["wall_seconds_per_window"],
                c.max_latency_ms,
                "max",
            )
        )
    return constraints, unverified


def evidence(pkg_dir: Path, provenance_ok: bool, policies: PolicyReport) -> Evidence:
    """What the decision engine weighs, read from the package's own files."""
    ev_adapter = _json(pkg_dir / "adapter" / "evaluation.json")
    meas = _json(pkg_dir / MEASUREMENTS)
    req = DacRequest.model_validate(_json(pkg_dir / "request.json"))
    ev = ev_adapter["evidence"]
    constraints, unverified = measured_constraints(req, ev, meas)
    decisive = decisive_evidence(ev)
    vh = _json(pkg_dir / "lineage" / "validation.json")  # the discovery gate's own record
    return Evidence(
        validation_score=vh["validation_score"],
        validation_passed=bool(vh["passed"]),
        adapter_accuracy=decisive.get("accuracy", 0.0),
        adapter_beats_base=bool(ev_adapter.get("check_passed", True)),
        validated_on=ev["validated_on"],
        unverified=unverified,
        provenance_ok=provenance_ok,
        policies_passed=policies.passed,
        constraints=constraints,
        policy_findings=[str(f) for f in policies.findings],
    )


def build_manifest(
    req: DacRequest,
    version: str,
    created_at: str,
    vh: dict,
    adapter_eval: dict,
    adapter_digest: str,
    base_version: str,
    zk_bytes: bytes | None,
    registration: dict,
    merkle_root: str,
    energy: dict,
    params: RenderParams,
    approved: bool,
) -> dict:
    h = vh["hypothesis"]
    pct = vh["percentiles"]
    zk = None
    if zk_bytes is not None:
        doc = json.loads(zk_bytes)
        zk = {
            "system": "groth16",
            "curve": "bn254",
            "proof_digest": hashlib.sha256(zk_bytes).hexdigest(),
            "public_inputs_digest": hashlib.sha256(json.dumps(doc["public"]).encode()).hexdigest(),
            "verified": True,  # lineage_proof verifies every proof before writing it
        }
    tx = registration.get("tx_hash")
    ev = adapter_eval["evidence"]
    decisive = decisive_evidence(ev)
    metrics = {
        k: float(v) for k, v in decisive.items() if isinstance(v, int | float) and not k.startswith("n")
    }
    manifest = {
        "dac_id": req.dac_id,
        "utid": "UTID-" + registration["utid"].split(":", 1)[-1],
        "version": version,
        "created_at": created_at,
        "hypothesis": {
            "text": h["text"],
            "domain": h["domain"],
            "task": h["task"],
            "approach": h.get("approach"),
            "target_metric": h.get("target_metric"),
            "generator": h.get("origin"),
        },
        "validation": {
            "obmi_scores": {**{k: pct[k] for k in ("AROE", "AESP", "QERO", "AIEO")}, "PRIN": vh["prin"]},
            "asal_consciousness": vh["ods"],
            "threshold": vh["threshold"],
            "null_set": f"score_calibration sha256:{vh['calibration_digest']}",
            "ai_shield_approved": approved,
            "iterations": vh["iterations"],
        },
        "proof": {
            "lineage_merkle_root": merkle_root,
            "zk_snark": zk,
            "blockchain_tx": ("0x" + tx.removeprefix("0x")) if tx else None,
            "provenance": f"lineage/{ENVELOPE_FILE}",
        },
        "energy_signature": energy,
        "intelligence": {
            "base_model": f"{BASE_MODEL}@{base_version}",
            "adapter": "adapter/adapter_model.safetensors"
            if adapter_eval.get("selected") != "base"
            else None,
            "adapter_digest": adapter_digest if adapter_eval.get("selected") != "base" else None,
            "trainable_params": adapter_eval["trainable_params"],
            "metrics": metrics,
            "validated_on": ev["validated_on"],
            "evidence": {
                k: (_flat_evidence(ev[k]) if ev[k] else None)
                for k in ("simulation", "client_device", "public_real")
            },
            "fall_threshold": ev["decision"]["fall_threshold"],
            "fall_intensity_check": ev["decision"].get("intensity_check"),
            "evaluated_on": decisive["data"],
        },
        "deployment": {
            "target": req.target,
            "image": params.image,
            "namespace": params.namespace,
            "replicas": params.replicas,
            "resources": {"cpu": params.cpu_request, "memory": params.memory_limit, "gpu": 0},
            "endpoint": f"http://{params.name}.{params.namespace}.svc.cluster.local/v1/predict"
            if req.target == "kubernetes"
            else None,
        },
        "api": {
            "openapi": "contracts/openapi.json",
            "graphql": "contracts/capsule.graphql",
            "grpc": "contracts/capsule.proto",
            "endpoints": endpoints(),
        },
        "whitelabel": {"client_name": req.client_id},
    }
    return validate_manifest(manifest, source="package manifest").model_dump(mode="json", exclude_none=True)


def build_dac_package(
    storage_root: Path,
    dac_id: str,
    key: SigningKey,
    trusted_key,
    energy: dict,
    run_id: str,
    dependencies: list[dict],
    options: PackageOptions | None = None,
    log=lambda _m: None,
) -> tuple[Package, Decision, PolicyReport]:
    """Stage, measure, render, pre-review, seal and attest one DAC's package."""
    opts = options or PackageOptions()
    storage_root = Path(storage_root).resolve()
    layout = StorageLayout(storage_root)
    dac_dir = layout.dac_dir(dac_id, create=False)
    req = DacRequest.model_validate(_json(dac_dir / "request.json"))
    vh = _json(dac_dir / "validated_hypothesis.json")
    adapter_dir = layout.adapter_dir(dac_id)
    adapter_eval = _json(adapter_dir / "evaluation.json")
    base_dir = layout.base_model_dir()
    lineage_dir = layout.lineage_dir(dac_id)
    registration = _json(lineage_dir / "registration.json")
    lin = verify_bundle(lineage_dir, trusted_key)
    if not lin.ok:
        raise PackageError("the lineage bundle does not verify: " + "; ".join(lin.problems[:5]))
    envelope = _json(lineage_dir / ENVELOPE_FILE)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    created_at = statement["predicate"]["runDetails"]["metadata"]["finishedOn"]
    root = layout.package_root(dac_id)
    staged = stage_dir(root)
    try:
        if adapter_eval.get("selected", "adapter") == "adapter":
            log("merging the LoRA adapter into the base model")
            merge_adapter(base_dir, adapter_dir, staged / "weights")
        else:
            log(f"shipping the base model: {adapter_eval.get('why', '')}")
            copy_base(base_dir, staged / "weights")
        for name in (
            "adapter_model.safetensors",
            "adapter_config.json",
            "evaluation.json",
            "confusion.png",
            "training_curve.png",
        ):
            if (adapter_dir / name).exists():
                (staged / "adapter").mkdir(exist_ok=True)
                shutil.copyfile(adapter_dir / name, staged / "adapter" / name)
        shutil.copytree(dac_dir / "twin", staged / "twin")
        shutil.copytree(lineage_dir, staged / "lineage")
        shutil.copyfile(dac_dir / "validated_hypothesis.json", staged / "lineage" / "validation.json")
        shutil.copyfile(dac_dir / "request.json", staged / "request.json")
        copy_sources(staged / "src")
        write_contracts(staged / "contracts")
        (staged / "requirements.txt").write_text(requirements_text())
        (staged / ".dockerignore").write_text(DOCKERIGNORE)
        (staged / "runtime.json").write_text(runtime_json(dac_id, "0.0.0", adapter_eval, dac_dir))
        # measured once per content (weights, sources, ...): rebuilding the same inputs reuses
        # the measurement, so the package stays byte-identical
        content_key = hashlib.sha256(json.dumps(file_digests(staged), sort_keys=True).encode()).hexdigest()
        cache_path = root / "probes.json"
        cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
        meas = cache.get(content_key)
        if meas is None or "window_seconds" not in meas:  # (older probes measured less)
            log("probing the staged package in a fresh process (load time, memory, CPU per window)")
            meas = {k: round(v, 6) for k, v in probe(staged).items()}
            atomic_write_bytes(
                cache_path,
                (json.dumps(cache | {content_key: meas}, indent=2, sort_keys=True) + "\n").encode(),
            )
        else:
            log("reusing the probe measured for this exact content")
        (staged / MEASUREMENTS).write_text(json.dumps(meas, indent=2, sort_keys=True) + "\n")
        # the version follows the content that does not mention the version
        key_digest = hashlib.sha256(
            json.dumps(file_digests(staged), sort_keys=True).encode()
            + json.dumps(energy, sort_keys=True).encode()
        ).hexdigest()
        version = assign_version(root, key_digest)
        mem_req = _mib(meas["peak_rss_mib"] * opts.memory_headroom)
        mem_limit = max(mem_req, req.constraints.max_memory_mb or 0)
        limits = limits_for(meas["frame_seconds"], meas["window_seconds"], meas["peak_rss_mib"], mem_limit)
        (staged / "runtime.json").write_text(
            runtime_json(dac_id, version, adapter_eval, dac_dir, limits.to_dict())
        )
        cpu_req = max(10, int(-(-meas["cpu_seconds_per_window"] * 1000 // 1)))  # one window per second
        params = RenderParams(
            dac_id=dac_id,
            version=version,
            client_id=req.client_id,
            namespace=req.client_id,
            image=f"{opts.image_registry}/{dac_id}:{version}",
            cpu_request=f"{cpu_req}m",
            cpu_limit=opts.cpu_limit,
            memory_request=f"{mem_req}Mi",
            memory_limit=f"{mem_limit}Mi",
            replicas=opts.replicas,
            max_replicas=opts.max_replicas,
            threads=opts.threads,
            utid=registration["utid"],
            merkle_root=lin.merkle_root or "",
            **_inference_log_params(req),
        )
        texts = render_manifests(params, kserve=opts.kserve)
        problems = validate_manifests(texts)
        if problems:
            raise PackageError("rendered Kubernetes manifests are invalid: " + "; ".join(problems))
        (staged / "k8s").mkdir()
        for name, text in texts.items():
            (staged / "k8s" / name).write_text(text)
        (staged / "Dockerfile").write_text(render_dockerfile(params))
        (staged / LICENCE_FILE).write_text(
            json.dumps(
                {
                    "files": LICENCES
                    + [
                        {"path": p, "license": "Apache-2.0", "origin": "generated here"}
                        for p in ("request.json", MEASUREMENTS)
                    ]
                },
                indent=2,
            )
            + "\n"
        )
        zk_path = lineage_dir / ZK_FILE
        base_version = json.loads((base_dir / "config.json").read_text())["extra"]["version"]

        def manifest(approved: bool) -> None:
            doc = build_manifest(
                req,
                version,
                created_at,
                vh,
                adapter_eval,
                sha256_file(adapter_dir / "adapter_model.safetensors"),
                base_version,
                zk_path.read_bytes() if zk_path.exists() else None,
                registration,
                lin.merkle_root,
                energy,
                params,
                approved,
            )
            (staged / "manifest.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")

        manifest(False)  # provisional: the review below scans it too
        policies = run_policies(staged)
        decision = decide(evidence(staged, provenance_ok=True, policies=policies))
        manifest(decision.approved)
        log(f"pre-seal review: {decision.reasons[0]}")
        final = root / version
        install(staged, final)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    tarball = root / f"{dac_id}-{version}.tar.gz"
    digest = deterministic_tar(final, tarball, f"{dac_id}-{version}")
    files = file_digests(final)
    deps = dependencies + [
        {"name": "lineage_merkle_root", "digest": {"sha256": lin.merkle_root}},
        {"name": "adapter", "digest": {"sha256": sha256_file(adapter_dir / "adapter_model.safetensors")}},
        {"name": "base_model", "digest": {"sha256": sha256_file(base_dir / "model.safetensors")}},
    ]
    att = root / f"{dac_id}-{version}.intoto.jsonl"
    atomic_write_bytes(att, attest(final, tarball, digest, files, key, dac_id, version, deps, run_id))
    return (
        Package(dac_id, version, final, tarball, att, digest, files, _json(final / "manifest.json"), meas),
        decision,
        policies,
    )


def package_provenance(pkg_dir: Path, trusted_key) -> list[str]:
    """Both layers of proof (DESIGN §4): the package attestation beside the package (every
    file, the tarball) and the signature of the phase-2 lineage bundle inside it. Problems,
    each naming the file; empty when both verify."""
    pkg_dir = Path(pkg_dir)
    prov = verify_package(pkg_dir, trusted_key).problems
    if not (pkg_dir / "lineage").is_dir():
        return prov + ["lineage/: the lineage bundle is missing from the package"]
    lin = verify_bundle(pkg_dir / "lineage", trusted_key, storage_root=None)
    # the copy's leaves point into the factory's storage: the signature and the statement
    # are checked here; the copied files' digests are covered by the package attestation
    return prov + [f"lineage/{p}" for p in lin.problems if "signature" in p or "statement" in p]


def review_package(pkg_dir: Path, trusted_key) -> tuple[Decision, PolicyReport, list[str]]:
    """The AI Shield review of a sealed package: provenance (attestation + lineage bundle),
    policies, decision. Returns (decision, policy report, provenance problems)."""
    pkg_dir = Path(pkg_dir)
    prov = package_provenance(pkg_dir, trusted_key)
    policies = run_policies(pkg_dir)
    return decide(evidence(pkg_dir, provenance_ok=not prov, policies=policies)), policies, prov
