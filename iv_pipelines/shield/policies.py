"""Policy checks over a DAC package directory. Each returns findings naming the file.

Policies (all `critical`: one finding rejects the package):
- `no_secrets`: private-key PEM blocks, cloud/API token shapes, `secret = "..."`-style
  assignments with a high-entropy value, and any other high-entropy token (Shannon entropy
  >= 4.5 bits/char over >= 32 base64/url-safe characters) in text files. Values that are
  public by construction are skipped: DSSE `sig`/`payload` fields and PEM PUBLIC KEY blocks.
  Binary files (weights, images) are scanned for PEM private-key headers only.
- `images_pinned`: every image (Dockerfile FROM, Kubernetes containers) has a digest or an
  explicit tag other than `latest`.
- `resource_limits`: every Kubernetes container sets cpu and memory requests and limits.
- `network_policy`: a default-deny NetworkPolicy (empty pod selector, Ingress and Egress,
  no rules) is present.
- `hardening`: containers run as non-root with a read-only root filesystem and no
  privilege escalation; the Dockerfile switches to a non-root USER.
- `licences_known`: every file is covered by an entry of LICENSES.json whose SPDX id is in
  the allow-list.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

LICENCE_FILE = "LICENSES.json"
ALLOWED_LICENCES = {"Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause", "CC-BY-4.0", "CC0-1.0", "ISC"}
ENTROPY_BITS = 4.5
TOKEN_MIN = 32
PUBLIC_JSON_KEYS = {"sig", "payload"}  # DSSE: signatures and the signed payload are public
TEXT_SUFFIXES = {
    ".json",
    ".jsonl",
    ".yaml",
    ".yml",
    ".py",
    ".txt",
    ".md",
    ".csv",
    ".proto",
    ".graphql",
    ".pem",
    ".cfg",
    ".toml",
    ".ini",
    ".env",
    ".sh",
    "",
}
POLICIES = ("no_secrets", "images_pinned", "resource_limits", "network_policy", "hardening", "licences_known")

_PATTERNS = [
    ("private key", re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")),
    ("AWS access key id", re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("GitHub token", re.compile(rb"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("Slack token", re.compile(rb"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("OpenAI-style API key", re.compile(rb"\bsk-[A-Za-z0-9_-]{20,}")),
    ("password in a URL", re.compile(rb"\b[a-z][a-z0-9+.-]*://[^/\s:@\"']+:[^@\s/\"']{3,}@")),
    ("hex private key", re.compile(rb"(?i)(?:private[_ -]?key|secret)[\"'\s:=]{1,6}(?:0x)?[0-9a-f]{64}\b")),
]
_ASSIGN = re.compile(
    r"(?i)\b(\w*?(?:api[_-]?key|secret|password|passwd|token|private[_-]?key)\w*)"
    r"[\"']?\s*[:=]\s*[\"']([^\"'\s]{8,})[\"']"
)
_TOKEN = re.compile(rf"[A-Za-z0-9+/=_-]{{{TOKEN_MIN},}}")
_PEM_PUBLIC = re.compile(r"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", re.S)


@dataclass(frozen=True)
class Finding:
    policy: str
    file: str | None
    message: str

    def __str__(self) -> str:
        return f"[{self.policy}] {self.file + ': ' if self.file else ''}{self.message}"


@dataclass
class PolicyReport:
    findings: list[Finding]
    files_scanned: int

    @property
    def passed(self) -> dict[str, bool]:
        bad = {f.policy for f in self.findings}
        return {p: p not in bad for p in POLICIES}

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict:
        return {
            "passed": self.passed,
            "files_scanned": self.files_scanned,
            "findings": [asdict(f) for f in self.findings],
        }


def shannon_entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _strings(obj, key: str = ""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(v, str(k))
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v, key)
    elif isinstance(obj, str) and key not in PUBLIC_JSON_KEYS:
        yield obj


def _high_entropy(text: str) -> str | None:
    for tok in _TOKEN.findall(_PEM_PUBLIC.sub("", text)):
        if shannon_entropy(tok) >= ENTROPY_BITS:
            return tok
    return None


def _redact(tok: str) -> str:
    return tok[:4] + "..." + f"({len(tok)} chars)"


def scan_secrets(root: Path) -> list[Finding]:
    out = []
    for p in _files(root):
        rel = p.relative_to(root).as_posix()
        raw = p.read_bytes()
        for what, rx in _PATTERNS:
            if rx.search(raw):
                out.append(Finding("no_secrets", rel, f"contains a {what}"))
        if p.suffix.lower() not in TEXT_SUFFIXES:
            continue
        text = raw.decode("utf-8", errors="replace")
        for m in _ASSIGN.finditer(text):
            if shannon_entropy(m.group(2)) >= 3.0 and not m.group(2).startswith(("${", "$(")):
                line = text.count("\n", 0, m.start()) + 1
                out.append(Finding("no_secrets", rel, f"line {line}: {m.group(1)} assigned a literal value"))
        values = text
        if p.suffix.lower() in (".json", ".jsonl"):
            try:
                docs = (
                    [json.loads(x) for x in text.splitlines() if x.strip()]
                    if p.suffix == ".jsonl"
                    else [json.loads(text)]
                )
                values = "\n".join(s for d in docs for s in _strings(d))
            except json.JSONDecodeError:
                pass
        tok = _high_entropy(values)
        if tok:
            out.append(
                Finding(
                    "no_secrets", rel, f"high-entropy string {_redact(tok)} (>= {ENTROPY_BITS} bits/char)"
                )
            )
    return out


def _k8s_docs(root: Path) -> list[tuple[str, dict]]:
    docs = []
    for p in sorted((root / "k8s").glob("*.yaml")):
        for d in yaml.safe_load_all(p.read_text()):
            if d:
                docs.append((p.relative_to(root).as_posix(), d))
    return docs


def _containers(doc: dict) -> list[dict]:
    kind = doc.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return doc["spec"]["template"]["spec"].get("containers", [])
    if kind == "Pod":
        return doc["spec"].get("containers", [])
    if kind == "InferenceService":
        return doc["spec"]["predictor"].get("containers", [])
    return []


def image_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name = image.rsplit("/", 1)[-1]
    return ":" in name and not name.endswith(":latest")


def check_images(root: Path) -> list[Finding]:
    out = []
    dockerfile = root / "Dockerfile"
    if not dockerfile.is_file():
        out.append(Finding("images_pinned", "Dockerfile", "missing"))
    else:
        for n, line in enumerate(dockerfile.read_text().splitlines(), 1):
            m = re.match(r"\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", line, re.I)
            if m and not image_pinned(m.group(1)):
                out.append(
                    Finding(
                        "images_pinned",
                        "Dockerfile",
                        f"line {n}: base image {m.group(1)!r} is not pinned by tag or digest",
                    )
                )
    for rel, doc in _k8s_docs(root):
        for c in _containers(doc):
            if not image_pinned(c.get("image", "")):
                out.append(
                    Finding(
                        "images_pinned",
                        rel,
                        f"container {c.get('name')!r} image {c.get('image')!r} is not pinned",
                    )
                )
    return out


def check_resources(root: Path) -> list[Finding]:
    out = []
    for rel, doc in _k8s_docs(root):
        for c in _containers(doc):
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if not (res.get(part) or {}).get(r):
                        out.append(
                            Finding(
                                "resource_limits", rel, f"container {c.get('name')!r} sets no {r} {part[:-1]}"
                            )
                        )
    if not any(_containers(d) for _, d in _k8s_docs(root)):
        out.append(Finding("resource_limits", "k8s/", "no workload with containers found"))
    return out


def check_network_policy(root: Path) -> list[Finding]:
    for _rel, doc in _k8s_docs(root):
        spec = doc.get("spec") or {}
        if (
            doc.get("kind") == "NetworkPolicy"
            and spec.get("podSelector") == {}
            and set(spec.get("policyTypes", [])) == {"Ingress", "Egress"}
            and not spec.get("ingress")
            and not spec.get("egress")
        ):
            return []
    return [
        Finding(
            "network_policy",
            "k8s/",
            "no default-deny NetworkPolicy (empty podSelector, Ingress+Egress, no rules)",
        )
    ]


def check_hardening(root: Path) -> list[Finding]:
    out = []
    for rel, doc in _k8s_docs(root):
        pod = (
            (doc.get("spec", {}).get("template", {}) or {}).get("spec", {})
            if doc.get("kind") == "Deployment"
            else {}
        )
        for c in _containers(doc):
            sc = c.get("securityContext") or {}
            name = c.get("name")
            if sc.get("allowPrivilegeEscalation") is not False:
                out.append(Finding("hardening", rel, f"container {name!r} allows privilege escalation"))
            if sc.get("readOnlyRootFilesystem") is not True:
                out.append(Finding("hardening", rel, f"container {name!r} has a writable root filesystem"))
            if sc.get("privileged"):
                out.append(Finding("hardening", rel, f"container {name!r} is privileged"))
            non_root = sc.get("runAsNonRoot", (pod.get("securityContext") or {}).get("runAsNonRoot"))
            if non_root is not True:
                out.append(Finding("hardening", rel, f"container {name!r} may run as root"))
    dockerfile = root / "Dockerfile"
    if dockerfile.is_file():
        users = re.findall(r"(?im)^\s*USER\s+(\S+)", dockerfile.read_text())
        if not users or users[-1].split(":")[0] in ("root", "0"):
            out.append(
                Finding("hardening", "Dockerfile", "the final stage does not switch to a non-root USER")
            )
    return out


def check_licences(root: Path) -> list[Finding]:
    path = root / LICENCE_FILE
    if not path.is_file():
        return [Finding("licences_known", LICENCE_FILE, "missing: no licence declared for any file")]
    entries = json.loads(path.read_text()).get("files", [])
    out = []
    for e in entries:
        if e.get("license") not in ALLOWED_LICENCES:
            out.append(
                Finding(
                    "licences_known",
                    LICENCE_FILE,
                    f"{e.get('path')!r}: licence {e.get('license')!r} is not in the allow-list",
                )
            )
    for p in _files(root):
        rel = p.relative_to(root).as_posix()
        if rel == LICENCE_FILE:
            continue
        if not any(fnmatch.fnmatch(rel, e["path"]) for e in entries):
            out.append(Finding("licences_known", rel, "no licence declared for this file"))
    return out


def run_policies(root: Path) -> PolicyReport:
    root = Path(root)
    findings = (
        scan_secrets(root)
        + check_images(root)
        + check_resources(root)
        + check_network_policy(root)
        + check_hardening(root)
        + check_licences(root)
    )
    return PolicyReport(findings, len(_files(root)))
