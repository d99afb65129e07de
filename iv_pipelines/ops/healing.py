"""Self-healing (the seed's AI Shield Phase 5): diagnose a deployed capsule, pick one of six
strategies from the issue type, act on the local deployer (and emit the equivalent
Kubernetes patch), and log the action to the Energy Atlas.

issue            -> strategy  what it does on `local`                      Kubernetes patch
crashed          -> restart   redeploy the same version                     restartedAt annotation
unresponsive     -> migrate   a new process on a new port (registry updated) anti-affinity to the node
http_errors      -> rollback  the previous package version, when one exists image of the previous version
                 -> replace   otherwise a fresh instance of this version    (delete the pod)
memory_exceeded  -> scale     memory limit x1.5 (above the measured RSS)    resources.limits.memory
score_drop       -> evolve    an evolution run request for the DAC          (none: a new DAC version)
Every action records the issue, strategy, outcome and details as a HealingAction node
(HEALED from the DAC) in the Atlas.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from iv_pipelines.deploy.targets import http_json

STRATEGY = {
    "crashed": "restart",
    "unresponsive": "migrate",
    "http_errors": "replace",  # or rollback, see choose()
    "memory_exceeded": "scale",
    "score_drop": "evolve",
}
SCALE_FACTOR = 1.5


@dataclass
class Diagnosis:
    dac_id: str
    issue: str | None
    details: dict = field(default_factory=dict)


@dataclass
class HealingAction:
    dac_id: str
    issue: str
    strategy: str
    ok: bool
    details: dict
    k8s_patch: dict | None
    run_request: dict | None = None
    ts_ms: int = 0

    def to_json(self) -> dict:
        return asdict(self)


def diagnose(deployer, dac_id: str, score: float | None = None, threshold: float | None = None) -> Diagnosis:
    st = deployer.status(dac_id)
    d = {
        k: st.get(k)
        for k in ("supervisor_alive", "capsule_alive", "status", "rss_mib", "memory_limit_mib", "url")
    }
    if st.get("reason") == "never deployed":
        return Diagnosis(dac_id, None, {"reason": "never deployed"})
    if st.get("status") == "stopped" and not st["capsule_alive"]:  # stopped on purpose (deployer.stop)
        return Diagnosis(dac_id, None, d | {"reason": "stopped on purpose"})
    if not st["capsule_alive"] and (not st["supervisor_alive"] or st.get("status") == "failed"):
        return Diagnosis(dac_id, "crashed", d)
    if st["capsule_alive"]:
        try:
            code, _ = http_json(f"{st['url']}/readyz", timeout=2.0)
        except OSError as e:  # timeouts, refused: the process is there but does not answer
            return Diagnosis(dac_id, "unresponsive", d | {"error": str(e)})
        if code >= 500:
            return Diagnosis(dac_id, "http_errors", d | {"readyz": code})
        if st.get("rss_mib") and st.get("memory_limit_mib") and st["rss_mib"] > st["memory_limit_mib"]:
            return Diagnosis(dac_id, "memory_exceeded", d)
    if score is not None and threshold is not None and score < threshold:
        return Diagnosis(dac_id, "score_drop", d | {"score": score, "threshold": threshold})
    return Diagnosis(dac_id, None, d)


def previous_version(package_dir: Path) -> Path | None:
    """The newest package version older than `package_dir`'s (semver order), if any."""
    package_dir = Path(package_dir)

    def key(p: Path):
        try:
            return tuple(int(x) for x in p.name.split("."))
        except ValueError:
            return None

    mine = key(package_dir)
    older = [
        p
        for p in package_dir.parent.iterdir()
        if p.is_dir() and key(p) is not None and mine and key(p) < mine
    ]
    return max(older, key=key) if older else None


def k8s_patch(strategy: str, dac_id: str, details: dict) -> dict | None:
    now = dt.datetime.now(dt.UTC).isoformat()
    if strategy == "restart":
        return {
            "spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}
        }
    if strategy == "scale":
        return {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "capsule",
                                "resources": {"limits": {"memory": f"{details['new_limit_mib']}Mi"}},
                            }
                        ]
                    }
                }
            }
        }
    if strategy == "rollback":
        return {
            "spec": {"template": {"spec": {"containers": [{"name": "capsule", "image": details["image"]}]}}}
        }
    if strategy == "migrate":
        return {
            "spec": {
                "template": {
                    "spec": {
                        "affinity": {
                            "podAntiAffinity": {
                                "requiredDuringSchedulingIgnoredDuringExecution": [
                                    {
                                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": dac_id}},
                                        "topologyKey": "kubernetes.io/hostname",
                                    }
                                ]
                            }
                        }
                    }
                }
            }
        }
    return None


class Healer:
    def __init__(self, deployer, atlas_open=None, registry=None):
        self.deployer = deployer
        self.atlas_open = atlas_open  # a context manager factory yielding an Atlas, or None
        self.registry = registry

    def choose(self, diag: Diagnosis) -> str:
        if diag.issue == "http_errors":
            meta = self.deployer.meta(diag.dac_id)
            return (
                "rollback" if meta.get("package") and previous_version(Path(meta["package"])) else "replace"
            )
        return STRATEGY[diag.issue]

    def heal(self, diag: Diagnosis) -> HealingAction | None:
        if diag.issue is None:
            return None
        strategy = self.choose(diag)
        meta = self.deployer.meta(diag.dac_id)
        pkg, version = Path(meta.get("package", "")), meta.get("version", "")
        details: dict = {"before": diag.details}
        run_request = None
        # a fresh start drops injected settings but keeps where the capsule logs its windows
        keep = {k: v for k, v in (meta.get("env") or {}).items() if k.startswith("IV_INFERENCE_LOG")}
        if strategy in ("restart", "replace", "migrate"):
            rec = self.deployer.deploy(
                pkg, diag.dac_id, version, env=keep, memory_limit_mib=meta.get("memory_limit_mib")
            )
            details["url"] = rec.url
        elif strategy == "rollback":
            prev = previous_version(pkg)
            rec = self.deployer.deploy(prev, diag.dac_id, prev.name, env=keep)
            man = json.loads((prev / "manifest.json").read_text())
            details |= {
                "url": rec.url,
                "from_version": version,
                "to_version": prev.name,
                "image": man["deployment"]["image"],
            }
        elif strategy == "scale":
            need = max(diag.details.get("memory_limit_mib") or 0, diag.details.get("rss_mib") or 0)
            new_limit = int(math.ceil(need * SCALE_FACTOR / 16) * 16)
            rec = self.deployer.deploy(
                pkg, diag.dac_id, version, env=meta.get("env"), memory_limit_mib=new_limit
            )
            details |= {
                "url": rec.url,
                "old_limit_mib": diag.details.get("memory_limit_mib"),
                "new_limit_mib": new_limit,
            }
        else:  # evolve
            run_request = {
                "job_name": "dac_lifecycle_job",
                "partition_key": diag.dac_id,
                "tags": {"iv/trigger": "healing:score_drop", "iv/score": str(diag.details.get("score"))},
            }
        if self.registry is not None and details.get("url") and details["url"] != diag.details.get("url"):
            self.registry.register_service(diag.dac_id, "edge", "capsule", [], [details["url"]])
            if diag.details.get("url"):
                self.registry.record_probe(diag.details["url"], False, unhealthy_after=1)
        after = diagnose(self.deployer, diag.dac_id) if strategy != "evolve" else diag
        ok = strategy == "evolve" or after.issue is None
        details["after"] = after.details
        action = HealingAction(
            diag.dac_id,
            diag.issue,
            strategy,
            ok,
            details,
            k8s_patch(strategy, diag.dac_id, details),
            run_request,
            int(time.time() * 1000),
        )
        if self.atlas_open is not None:
            with self.atlas_open() as atlas:
                atlas.log_healing(action)
        return action
