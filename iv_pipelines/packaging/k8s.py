"""Kubernetes manifests and the Dockerfile, rendered from jinja2 templates and validated.

`validate_manifests` checks every document against the Kubernetes JSON schemas shipped with
`kubernetes-validate` (offline, `--strict`: unknown fields are errors). Custom resources
(KServe `InferenceService`) have no bundled schema; they are rendered only when asked for
and checked for the fields KServe requires.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources as importlib_resources

import yaml

K8S_VERSION = "1.37.0"
TEMPLATES = ("namespace", "inferencelog", "deployment", "service", "hpa", "networkpolicy")
BASE_IMAGE = "python:3.11.11-slim-bookworm"  # exact tag; a digest when the registry is reachable
GATEWAY_LABEL = ("iv.industriverse.dev/role", "gateway")
PORT = 8080


@dataclass
class RenderParams:
    dac_id: str
    version: str
    client_id: str
    namespace: str
    image: str
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    replicas: int = 1
    max_replicas: int = 3
    target_cpu_percent: int = 70
    threads: int = 1
    utid: str = ""
    merkle_root: str = ""
    base_image: str = BASE_IMAGE
    port: int = PORT
    # the request's `inference_log` (defaults: InferenceLogSpec's)
    inference_retention: str = "features"
    inference_sample: float = 0.25
    inference_max_mb: int = 64

    @property
    def name(self) -> str:
        return self.dac_id

    def context(self) -> dict:
        return asdict(self) | {
            "name": self.name,
            "labels": {
                "app.kubernetes.io/name": self.name,
                "app.kubernetes.io/version": self.version,
                "app.kubernetes.io/managed-by": "iv-dac-factory",
                "iv.industriverse.dev/client": self.client_id,
            },
            "gateway_label_key": GATEWAY_LABEL[0],
            "gateway_label_value": GATEWAY_LABEL[1],
            # every replica's bound, with room for the rotation's current file
            "inference_volume_mib": int(self.max_replicas * self.inference_max_mb * 1.25 + 1),
        }


_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def cpu_cores(q: str) -> float:
    """Kubernetes CPU quantity -> cores ('500m' -> 0.5, '2' -> 2.0)."""
    q = str(q).strip()
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def memory_mib(q: str) -> float:
    """Kubernetes memory quantity -> MiB ('512Mi' -> 512, '1Gi' -> 1024, '1G' -> 953.7, bytes)."""
    q = str(q).strip()
    for table in (_BINARY, _DECIMAL):
        for suffix, factor in table.items():
            if q.endswith(suffix):
                return float(q[: -len(suffix)]) * factor / 2**20
    return float(q) / 2**20


def _env():
    import jinja2

    loader = jinja2.FunctionLoader(
        lambda name: (importlib_resources.files("iv_pipelines") / "data" / "templates" / name).read_text()
    )
    return jinja2.Environment(
        loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )


def render_manifests(p: RenderParams, kserve: bool = False) -> dict[str, str]:
    """file name -> YAML text, in apply order."""
    env = _env()
    names = TEMPLATES + (("inferenceservice",) if kserve else ())
    return {f"{n}.yaml": env.get_template(f"k8s/{n}.yaml.j2").render(**p.context()) for n in names}


def render_dockerfile(p: RenderParams) -> str:
    return _env().get_template("Dockerfile.j2").render(**p.context())


def documents(texts: dict[str, str]) -> list[tuple[str, dict]]:
    return [(name, d) for name, t in texts.items() for d in yaml.safe_load_all(t) if d]


def validate_manifests(texts: dict[str, str], version: str = K8S_VERSION) -> list[str]:
    """Problems, one per failing document (empty: every document is valid)."""
    import kubernetes_validate

    problems = []
    for name, doc in documents(texts):
        what = f"{name}: {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        if doc.get("kind") == "InferenceService":
            pred = (doc.get("spec") or {}).get("predictor") or {}
            if doc.get("apiVersion") != "serving.kserve.io/v1beta1" or not pred.get("containers"):
                problems.append(f"{what}: not a KServe v1beta1 InferenceService with predictor containers")
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(x) for x in e.path)
            problems.append(f"{what}: {path + ': ' if path else ''}{e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            problems.append(f"{what}: no schema ({e})")
    return problems
