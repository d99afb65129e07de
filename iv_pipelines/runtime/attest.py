"""The capsule checks the package it is about to serve against the package attestation.

The factory signs an in-toto statement (DSSE, Ed25519) listing the sha256 of every file of
the package and of its tarball, and writes it beside the package (`<dac>-<version>.intoto.jsonl`;
`packaging/build.py`). At load the capsule verifies the signature and every file's digest,
and refuses to become ready on any mismatch, naming the file (`/readyz` shows why): a package
altered after it was reviewed is not served.

Which key is trusted: the one the deployment names (`--trusted-key` or `IV_CAPSULE_TRUSTED_KEY`,
a PEM file), or else the factory key the package itself carries (`lineage/public_key.pem`).
The latter proves the files are the ones that key signed, not who holds the key: someone able
to replace the package could replace that key too, so production deployments name the key.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

TRUSTED_KEY_ENV = "IV_CAPSULE_TRUSTED_KEY"
ATTESTATION_ENV = "IV_CAPSULE_ATTESTATION"


class AttestationError(RuntimeError):
    """The package does not match its attestation (or the attestation cannot be checked)."""


@dataclass
class AttestationReport:
    attestation: str
    key: str  # "deployment" (named by the deployment) | "package" (the package's own key)
    files: int
    problems: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def attestation_path(package_dir: Path, dac_id: str, version: str) -> Path:
    given = os.environ.get(ATTESTATION_ENV)
    if given:
        return Path(given)
    return Path(package_dir).parent / f"{dac_id}-{version}.intoto.jsonl"


def verify_package_files(
    package_dir: Path, dac_id: str, version: str, trusted_key_pem: Path | None = None
) -> AttestationReport:
    """Verify the attestation's signature and every file of `package_dir` against it."""
    from iv_pipelines.proof.dsse import SignatureError, load_public_pem, verify_envelope

    pkg = Path(package_dir)
    att = attestation_path(pkg, dac_id, version)
    key_path = trusted_key_pem or (
        Path(os.environ[TRUSTED_KEY_ENV]) if os.environ.get(TRUSTED_KEY_ENV) else None
    )
    who = "deployment" if key_path else "package"
    key_path = key_path or pkg / "lineage" / "public_key.pem"
    if not att.is_file():
        raise AttestationError(
            f"{att}: no attestation to verify the package against (set {ATTESTATION_ENV} to its path)"
        )
    if not key_path.is_file():
        raise AttestationError(f"{key_path}: trusted key missing")
    try:
        envelope = json.loads(att.read_text().splitlines()[0])
        statement = json.loads(verify_envelope(envelope, load_public_pem(key_path.read_bytes())))
    except (SignatureError, ValueError, IndexError, OSError) as e:
        raise AttestationError(f"{att.name}: signature does not verify ({e})") from None
    prefix = f"{pkg.name}/"
    listed = {
        s["name"][len(prefix) :]: s["digest"]["sha256"]
        for s in statement.get("subject", [])
        if isinstance(s, dict) and str(s.get("name", "")).startswith(prefix)
    }
    if not listed:
        raise AttestationError(f"{att.name}: lists no file of {pkg.name}/ (another package's attestation?)")
    # bytecode caches are derived, not content (the capsule runs from the package's src/)
    actual = {
        p.relative_to(pkg).as_posix(): p
        for p in sorted(pkg.rglob("*"))
        if p.is_file() and "__pycache__" not in p.relative_to(pkg).parts
    }
    rep = AttestationReport(str(att), who, len(listed))
    for rel, digest in listed.items():
        if rel not in actual:
            rep.problems.append(f"{rel}: listed in the attestation but missing")
        elif _sha256(actual[rel]) != digest:
            rep.problems.append(f"{rel}: sha256 differs from the attestation (altered after packaging)")
    for rel in sorted(set(actual) - set(listed)):
        rep.problems.append(f"{rel}: not in the attestation (added after packaging)")
    return rep
