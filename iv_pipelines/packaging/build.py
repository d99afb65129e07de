"""Build a DAC package: a directory, a deterministic tarball and a signed attestation.

Layout (`<storage>/packages/<dac_id>/`):
    <version>/                       the package directory (also the Docker build context)
        runtime.json                 what the capsule serves (dac id, version, classes, weights)
        weights/                     base model with the LoRA adapter merged (safetensors + config)
        adapter/                     the LoRA adapter as trained (peft files + evaluation)
        contracts/                   openapi.json, capsule.graphql, capsule.proto
        twin/                        the Shadow Twin snapshot (room, episodes, plots)
        lineage/                     the phase-2 lineage bundle (signed, Merkle, zk, UTID record)
        src/                         the runtime's Python sources (what the image runs)
        requirements.txt             pinned runtime dependencies
        Dockerfile, .dockerignore    multi-stage, non-root, pinned base
        k8s/                         Namespace, Deployment, Service, HPA, NetworkPolicies
        LICENSES.json                SPDX licence of every file
        manifest.json                the DAC manifest (schema-validated)
    <dac_id>-<version>.tar.gz        sorted entries, zeroed owners and times: same files -> same bytes
    <dac_id>-<version>.intoto.jsonl  DSSE envelope of an in-toto Statement (SLSA Provenance v1)
                                     whose subjects are the tarball and every package file

The attestation sits beside the package (it cannot sit inside the bytes it attests).
Versions: the same inputs (lineage root, adapter, base model, runtime sources) keep their
version; new inputs get the next minor version (`versions.json`).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from iv_pipelines.paths import atomic_write_bytes, atomic_write_text
from iv_pipelines.proof.dsse import (
    INTOTO_PAYLOAD_TYPE,
    SigningKey,
    canonical_json,
    sign_envelope,
    verify_envelope,
)
from iv_pipelines.proof.lineage import sha256_file

PACKAGE_FORMAT = "iv-dac-package-1"
BUILD_TYPE = "https://github.com/industriverse/dac-factory/package/v1"
RUNTIME_SOURCES = (
    "iv_pipelines/__init__.py",
    "iv_pipelines/runtime/__init__.py",
    "iv_pipelines/runtime/__main__.py",
    "iv_pipelines/runtime/app.py",
    "iv_pipelines/runtime/attest.py",
    "iv_pipelines/runtime/contracts.py",
    "iv_pipelines/runtime/inference_log.py",
    "iv_pipelines/runtime/limits.py",
    "iv_pipelines/runtime/predictor.py",
    "iv_pipelines/proof/__init__.py",
    "iv_pipelines/proof/dsse.py",
    "iv_pipelines/sensing/__init__.py",
    "iv_pipelines/sensing/context.py",
    "iv_pipelines/sensing/device.py",
    "iv_pipelines/sensing/devicestats.py",
    "iv_pipelines/sensing/drift.py",
    "iv_pipelines/sensing/evaluate.py",
    "iv_pipelines/sensing/features.py",
    "iv_pipelines/sensing/formats.py",
    "iv_pipelines/sensing/intensity.py",
    "iv_pipelines/sensing/model.py",
    "iv_pipelines/sensing/twin.py",
)  # everything the capsule imports: tests/test_packaging.py runs it from src/ alone
RUNTIME_REQUIREMENTS = (
    "cryptography",
    "torch",
    "numpy",
    "safetensors",
    "fastapi",
    "uvicorn",
    "pydantic",
    "prometheus-client",
)
LICENCES = [
    {"path": "src/*", "license": "Apache-2.0", "origin": "this repository (LICENSE)"},
    {"path": "weights/*", "license": "Apache-2.0", "origin": "trained here on Shadow Twin data only"},
    {"path": "adapter/*", "license": "Apache-2.0", "origin": "trained here on Shadow Twin data only"},
    {"path": "twin/*", "license": "Apache-2.0", "origin": "generated here by the Shadow Twin simulator"},
    {"path": "lineage/*", "license": "Apache-2.0", "origin": "generated here (digests, signatures, proofs)"},
    {
        "path": "contracts/*",
        "license": "Apache-2.0",
        "origin": "generated from iv_pipelines/runtime/contracts.py",
    },
    {"path": "k8s/*", "license": "Apache-2.0", "origin": "rendered from iv_pipelines/data/templates"},
    {"path": "Dockerfile", "license": "Apache-2.0", "origin": "rendered from iv_pipelines/data/templates"},
    {"path": ".dockerignore", "license": "Apache-2.0", "origin": "generated here"},
    {"path": "requirements.txt", "license": "Apache-2.0", "origin": "generated here (pins only)"},
    {"path": "runtime.json", "license": "Apache-2.0", "origin": "generated here"},
    {"path": "manifest.json", "license": "Apache-2.0", "origin": "generated here"},
]
_REPO = Path(__file__).resolve().parent.parent.parent


class PackageError(RuntimeError):
    """The package cannot be built; the message says which input is missing or wrong."""


@dataclass
class Package:
    dac_id: str
    version: str
    directory: Path
    tarball: Path
    attestation: Path
    digest: str  # sha256 of the tarball
    files: dict[str, str]  # relative path -> sha256
    manifest: dict
    probe: dict = field(default_factory=dict)


def merge_adapter(base_dir: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """Base model + peft LoRA adapter -> one merged model saved with the base's config."""
    from peft import PeftModel

    from iv_pipelines.sensing.model import load_model, save_model

    base, cfg = load_model(base_dir)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    extra = json.loads((Path(base_dir) / "config.json").read_text()).get("extra", {})
    return save_model(merged, cfg, out_dir, extra={"version": extra.get("version"), "merged_adapter": True})


def copy_base(base_dir: Path, out_dir: Path) -> Path:
    """The base model as the package's weights (when the gate ships the base, not the adapter)."""
    from iv_pipelines.sensing.model import load_model, save_model

    base, cfg = load_model(base_dir)
    extra = json.loads((Path(base_dir) / "config.json").read_text()).get("extra", {})
    return save_model(base, cfg, out_dir, extra={"version": extra.get("version"), "merged_adapter": False})


def requirements_text() -> str:
    pins = []
    for name in RUNTIME_REQUIREMENTS:
        try:
            v = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise PackageError(f"runtime dependency {name!r} is not installed; cannot pin it") from None
        pins.append(f"{name}=={v.split('+')[0]}")
    return "# pinned from the factory's environment\n" + "\n".join(pins) + "\n"


def copy_sources(dest: Path) -> None:
    for rel in RUNTIME_SOURCES:
        src = _REPO / rel
        if not src.is_file():  # installed (non-editable): read from the package itself
            src = Path(sys.modules["iv_pipelines"].__file__).parent.parent / rel
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / rel)


def write_contracts(dest: Path) -> None:
    from iv_pipelines.runtime.contracts import generated_contracts

    dest.mkdir(parents=True, exist_ok=True)
    for name, text in generated_contracts().items():
        (dest / name).write_text(text)


def probe(package_dir: Path, n_windows: int = 16, timeout_s: float = 120) -> dict:
    """Load the staged package in a fresh process, as the capsule would (its own src/ only:
    `-P`, cwd = the package, PYTHONPATH = src), and measure it: peak RSS, load time, CPU
    seconds per window of the model alone (single thread), and what a request costs per parsed
    frame (`frame_seconds`: esp-csi text to CSI) and per window (`window_seconds`: resampling,
    features and model), from which the capsule's per-request limits follow (runtime/limits.py)."""
    code = (
        "import json,sys,time\n"
        "t0=time.perf_counter()\n"
        "import torch; torch.set_num_threads(1)\n"
        "import numpy as np\n"
        "from iv_pipelines.runtime.predictor import Predictor, windows\n"
        "from iv_pipelines.sensing.features import T, N_FEATURES\n"
        "from iv_pipelines.sensing.formats import parse_lines, write_esp_csi_lines\n"
        "p=Predictor(sys.argv[1], verify=False); load=time.perf_counter()-t0\n"
        f"x=np.random.default_rng(0).normal(size=({n_windows},T,N_FEATURES)).astype('float32')\n"
        "p.proba(x[:1]); c0=time.process_time(); w0=time.perf_counter(); p.proba(x)\n"
        f"cpu=(time.process_time()-c0)/{n_windows}; wall=(time.perf_counter()-w0)/{n_windows}\n"
        # a 12 s capture of noisy CSI as ESP32 text: parse it, then window it every 0.5 s
        "rng=np.random.default_rng(1); n=1200; t=np.arange(n)/100.0\n"
        "csi=(rng.normal(20,5,(n,64))+1j*rng.normal(20,5,(n,64))).astype(np.complex64)\n"
        "lines=write_esp_csi_lines(csi,t)\n"
        "c0=time.process_time(); cap,_=parse_lines(lines); frame=(time.process_time()-c0)/n\n"
        "c0=time.process_time(); xs,_,_=windows(cap,0.5,False); pr=p.proba(xs)\n"
        "window=(time.process_time()-c0)/len(xs)\n"
        # VmHWM (peak RSS of this address space): getrusage's ru_maxrss survives exec and
        # would report the parent's peak when a big parent process spawned this probe
        "rss=[int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0]/1024\n"
        "print(json.dumps({'peak_rss_mib':rss,'load_seconds':load,'cpu_seconds_per_window':cpu,"
        "'wall_seconds_per_window':wall,'frame_seconds':frame,'window_seconds':window}))\n"
    )
    env = os.environ | {
        "PYTHONPATH": str(package_dir / "src"),
        "OMP_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",  # the staged package stays as built
    }
    r = subprocess.run(
        [sys.executable, "-P", "-c", code, str(package_dir)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        cwd=package_dir,
    )
    if r.returncode != 0:
        raise PackageError(f"the staged package does not load in a fresh process:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def deterministic_tar(src: Path, dest: Path, arcroot: str) -> str:
    """gzip'd tar of `src` with sorted entries, zero mtimes/owners, fixed modes; sha256."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            members = [p for p in src.rglob("*") if "__pycache__" not in p.relative_to(src).parts]
            for p in sorted(members, key=lambda q: q.relative_to(src).as_posix()):
                rel = p.relative_to(src).as_posix()
                info = tarfile.TarInfo(f"{arcroot}/{rel}")
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if p.is_dir():
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                else:
                    info.size, info.mode = p.stat().st_size, 0o644
                    with p.open("rb") as fh:
                        tar.addfile(info, fh)
    data = buf.getvalue()
    atomic_write_bytes(dest, data)
    return hashlib.sha256(data).hexdigest()


def file_digests(directory: Path) -> dict[str, str]:
    """sha256 of every file under `directory` by relative path; bytecode caches (`__pycache__`,
    written when the capsule runs from the package's src/) are derived, not content."""
    return {
        p.relative_to(directory).as_posix(): sha256_file(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and "__pycache__" not in p.relative_to(directory).parts
    }


def assign_version(root: Path, input_key: str) -> str:
    """Same inputs -> same version; new inputs -> next minor (1.0.0, 1.1.0, ...)."""
    path = root / "versions.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    if input_key in known:
        return known[input_key]
    minors = [int(v.split(".")[1]) for v in known.values()]
    version = f"1.{max(minors) + 1 if minors else 0}.0"
    atomic_write_text(path, json.dumps(known | {input_key: version}, indent=2, sort_keys=True) + "\n")
    return version


def attest(
    pkg_dir: Path,
    tarball: Path,
    tar_digest: str,
    files: dict[str, str],
    key: SigningKey,
    dac_id: str,
    version: str,
    dependencies: list[dict],
    run_id: str,
) -> bytes:
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": tarball.name, "digest": {"sha256": tar_digest}}]
        + [{"name": f"{pkg_dir.name}/{rel}", "digest": {"sha256": d}} for rel, d in files.items()],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"dac_id": dac_id, "version": version},
                "internalParameters": {"format": PACKAGE_FORMAT},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": "dagster://iv_pipelines.definitions"},
                "metadata": {"invocationId": run_id},
            },
        },
    }
    env = sign_envelope(canonical_json(statement), key)
    return (json.dumps(env, sort_keys=True) + "\n").encode()


@dataclass
class PackageReport:
    problems: list[str]
    files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_package(pkg_dir: Path, trusted_key) -> PackageReport:
    """Check the attestation beside `pkg_dir`: signature, tarball digest, every file's digest,
    and no file the attestation does not list."""
    pkg_dir = Path(pkg_dir)
    root, version = pkg_dir.parent, pkg_dir.name
    dac_id = root.name
    att = root / f"{dac_id}-{version}.intoto.jsonl"
    tarball = root / f"{dac_id}-{version}.tar.gz"
    rep = PackageReport([])
    statement = _statement(att, trusted_key, rep)
    if statement is None:
        return rep
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement.get("subject", [])}
    if tarball.name not in subjects:
        rep.problems.append(f"{tarball.name}: not a subject of the attestation")
    elif not tarball.is_file():
        rep.problems.append(f"{tarball.name}: missing")
    elif sha256_file(tarball) != subjects[tarball.name]:
        rep.problems.append(f"{tarball.name}: sha256 differs from the attestation (tampered?)")
    listed = {k.split("/", 1)[1]: v for k, v in subjects.items() if k.startswith(f"{version}/")}
    actual = file_digests(pkg_dir) if pkg_dir.is_dir() else {}
    for rel, d in listed.items():
        if rel not in actual:
            rep.problems.append(f"{rel}: listed in the attestation but missing")
        elif actual[rel] != d:
            rep.problems.append(f"{rel}: sha256 differs from the attestation (tampered?)")
    for rel in sorted(set(actual) - set(listed)):
        rep.problems.append(f"{rel}: not in the attestation (added after packaging?)")
    rep.files = len(listed)
    return rep


MAX_TARBALL_BYTES = 4 << 30  # decompressed: a package is tens of MB; refuse a tar bomb


def _statement(att: Path, trusted_key, rep: PackageReport) -> dict | None:
    if not att.is_file():
        rep.problems.append(f"{att.name}: attestation missing (expected beside the package)")
        return None
    try:
        env = json.loads(att.read_text().splitlines()[0])
        statement = json.loads(verify_envelope(env, trusted_key))
    except Exception as e:  # noqa: BLE001 - any malformed or unsigned attestation
        rep.problems.append(f"{att.name}: signature does not verify ({str(e)[:200]})")
        return None
    if env.get("payloadType") != INTOTO_PAYLOAD_TYPE:
        rep.problems.append(f"{att.name}: payloadType {env.get('payloadType')!r} is not in-toto")
    return statement


def verify_tarball(tarball: Path, trusted_key) -> PackageReport:
    """Check a package tarball against the attestation beside it
    (`<dac>-<version>.tar.gz` -> `<dac>-<version>.intoto.jsonl`): signature, the tarball's digest,
    and every member's digest, so a tampered tarball names the file inside it that changed.
    Members are hashed as a stream, never extracted; links, absolute or `..` paths and more than
    MAX_TARBALL_BYTES of content are reported, not followed."""
    tarball = Path(tarball)
    rep = PackageReport([])
    stem = tarball.name[: -len(".tar.gz")] if tarball.name.endswith(".tar.gz") else tarball.stem
    statement = _statement(tarball.with_name(f"{stem}.intoto.jsonl"), trusted_key, rep)
    if statement is None:
        return rep
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement.get("subject", [])}
    version = (
        statement.get("predicate", {})
        .get("buildDefinition", {})
        .get("externalParameters", {})
        .get("version", "")
    )
    if subjects.get(tarball.name) != sha256_file(tarball):
        rep.problems.append(f"{tarball.name}: sha256 differs from the attestation (tampered?)")
    listed = {k.split("/", 1)[1]: v for k, v in subjects.items() if k.startswith(f"{version}/")}
    seen: set[str] = set()
    total = 0
    try:
        with tarfile.open(tarball, mode="r:gz") as tar:
            for m in tar:
                parts = Path(m.name).parts
                rel = "/".join(parts[1:])
                if m.name.startswith("/") or ".." in parts:
                    rep.problems.append(f"{m.name}: unsafe path in the tarball")
                    continue
                if m.issym() or m.islnk() or m.isdev():
                    rep.problems.append(f"{m.name}: a link or device in the tarball")
                    continue
                if not m.isfile():
                    continue
                total += m.size
                if total > MAX_TARBALL_BYTES:
                    rep.problems.append(
                        f"{tarball.name}: more than {MAX_TARBALL_BYTES >> 30} GiB inside; not read further"
                    )
                    break
                h = hashlib.sha256()
                fh = tar.extractfile(m)
                while block := fh.read(1 << 20):
                    h.update(block)
                seen.add(rel)
                if rel not in listed:
                    rep.problems.append(
                        f"{rel} (in {tarball.name}): not in the attestation (added after packaging?)"
                    )
                elif h.hexdigest() != listed[rel]:
                    rep.problems.append(
                        f"{rel} (in {tarball.name}): sha256 differs from the attestation (tampered?)"
                    )
    except (tarfile.TarError, OSError, EOFError) as e:
        rep.problems.append(f"{tarball.name}: not a readable gzip'd tar ({e})")
        return rep
    for rel in sorted(set(listed) - seen):
        rep.problems.append(f"{rel}: listed in the attestation but missing from {tarball.name}")
    rep.files = len(listed)
    return rep


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def stage_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".staging-", dir=root))


def install(staged: Path, final: Path) -> None:
    """Move a staged package into place; an existing version directory is replaced whole."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.replace(final, old)
    os.replace(staged, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
