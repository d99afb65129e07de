"""Canary releases of a DAC: a new version beside the deployed one, a share of the traffic,
then promoted or rolled back on what people said about the windows each version decided.

- **History and aliases**: every deployment event of a DAC is a line of
  `<storage>/deployments/<dac>.history.jsonl` (deployed, canary_started, promoted,
  rolled_back, with the version, the reason and the evidence); the aliases `production`,
  `candidate` and `previous` are derived from it (`iv dac history DAC` prints both).
- **Traffic split** (`CanaryRouter`): the TTF balancer (`mesh/ttf.pick_instance`) picks, for
  each window, the instance with the lowest load score over the energy each has served divided
  by its share of the traffic, so in the long run each version serves its share exactly, and a
  version that costs more energy per window gets fewer of them.
- **Decision** (`canary_decision`): the candidate and the production version decided different
  windows, so the comparison is unpaired: accuracy on labelled windows of each, and Newcombe's
  hybrid score interval of the difference (from the two Wilson intervals). Promote when the
  interval's lower bound is above -margin (non-inferior at the stated margin, with at least
  `min_labels` labels on each side); roll back when its upper bound is below 0 (significantly
  worse); otherwise wait for more labels — and roll back when the canary has run `max_age_s`
  without a decision (a candidate must earn its place).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

from iv_pipelines.storage import StorageLayout

MARGIN = 0.05  # accuracy points a candidate may lose and still be promoted
MIN_LABELS = 20
MAX_AGE_S = 7 * 86400
CANARY_SHARE = 0.1
EVENTS = ("deployed", "canary_started", "promoted", "rolled_back")


class DeploymentHistory:
    def __init__(self, layout: StorageLayout, dac_id: str):
        self.path = layout.deployment_history_file(dac_id)
        self.dac_id = dac_id

    def record(
        self, event: str, version: str, reason: str = "", now: float | None = None, **evidence
    ) -> dict:
        if event not in EVENTS:
            raise ValueError(f"event {event!r}: one of {', '.join(EVENTS)}")
        rec = {
            "at": round(now if now is not None else time.time(), 3),
            "dac_id": self.dac_id,
            "event": event,
            "version": version,
            "reason": reason,
        } | ({"evidence": evidence} if evidence else {})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(rec, default=str) + "\n")
        return rec

    def events(self) -> list[dict]:
        if not self.path.is_file():
            return []
        out = []
        for ln in self.path.read_text().splitlines():
            try:
                out.append(json.loads(ln))
            except ValueError:
                continue
        return out

    def production_since(self) -> float:
        """When the version in production now went live (its deployed or promoted event), 0 if
        the history is empty."""
        times = [e["at"] for e in self.events() if e["event"] in ("deployed", "promoted")]
        return max(times) if times else 0.0

    def aliases(self) -> dict[str, str | None]:
        a: dict[str, str | None] = {"production": None, "candidate": None, "previous": None}
        for e in self.events():
            if e["event"] == "deployed":
                if a["production"] != e["version"]:
                    a["previous"] = a["production"]
                a["production"] = e["version"]
            elif e["event"] == "canary_started":
                a["candidate"] = e["version"]
            elif e["event"] == "promoted":
                a["previous"], a["production"], a["candidate"] = a["production"], e["version"], None
            elif e["event"] == "rolled_back":
                a["candidate"] = None
        return a


class CanaryRouter:
    """Which instance (0 production, 1 candidate) gets the next window: TTF `pick_instance`
    over the energy each has served divided by its share."""

    def __init__(self, share: float = CANARY_SHARE):
        if not 0.0 < share < 1.0:
            raise ValueError(f"canary share {share}: strictly between 0 and 1")
        self.weights = (1.0 - share, share)
        self.energy = [0.0, 0.0]
        self.served = [0, 0]

    def pick(self, joules_per_window: tuple[float, float] = (1.0, 1.0)) -> int:
        from iv_pipelines.mesh.ttf import pick_instance

        load = [e / w for e, w in zip(self.energy, self.weights, strict=True)]
        i = pick_instance(load, [0.0, 0.0], [0.0, 0.0])
        self.energy[i] += joules_per_window[i]
        self.served[i] += 1
        return i


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    from iv_pipelines.sensing.gate import wilson

    return wilson(k, n, z)


def newcombe_difference(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float, float]:
    """(p1 - p2, lower, upper): Newcombe's hybrid score 95 % interval (method 10)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = _wilson(k1, n1)
    l2, u2 = _wilson(k2, n2)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, lo, hi


@dataclass(frozen=True)
class CanaryDecision:
    decision: str  # promote | rollback | wait
    reason: str
    evidence: dict


def canary_decision(
    production: list[bool],
    candidate: list[bool],
    started_at: float,
    now: float | None = None,
    margin: float = MARGIN,
    min_labels: int = MIN_LABELS,
    max_age_s: float = MAX_AGE_S,
) -> CanaryDecision:
    """`production` / `candidate`: per labelled window, whether that version decided it right."""
    now = now if now is not None else time.time()
    n1, n2 = len(candidate), len(production)
    ev = {"candidate_labels": n1, "production_labels": n2, "margin": margin, "min_labels": min_labels}
    if n1 and n2:
        k1, k2 = sum(candidate), sum(production)
        d, lo, hi = newcombe_difference(k1, n1, k2, n2)
        ev |= {
            "candidate_accuracy": round(k1 / n1, 4),
            "production_accuracy": round(k2 / n2, 4),
            "difference": round(d, 4),
            "ci95": [round(lo, 4), round(hi, 4)],
        }
        said = (
            f"candidate {k1}/{n1} vs production {k2}/{n2} right on labelled windows: difference "
            f"{d:+.3f} (95% CI {lo:+.3f}..{hi:+.3f}), margin {margin}"
        )
        if hi < 0:
            return CanaryDecision("rollback", "significantly worse: " + said, ev)
        if n1 >= min_labels and n2 >= min_labels and lo > -margin:
            return CanaryDecision("promote", "non-inferior: " + said, ev)
    else:
        said = f"{n1} candidate and {n2} production labels"
    if now - started_at > max_age_s:
        return CanaryDecision("rollback", f"no decision after {max_age_s / 86400:g} days: " + said, ev)
    return CanaryDecision("wait", f"not enough evidence yet (>= {min_labels} labels each): " + said, ev)


def label_correct(f: dict) -> bool:
    """Whether the decision a feedback label refers to was right (`not_<class>`: right unless
    the decision was that class)."""
    lab, pred = f["label"], f["predicted"]
    return pred != lab[4:] if lab.startswith("not_") else pred == lab


class CanaryController:
    """Start, route, decide: the candidate runs as a second local capsule (`<dac>--candidate`)
    logging to `inference/<dac>/canary-<version>/`; the decision reads the labels of both logs
    given since the canary started."""

    def __init__(self, layout: StorageLayout, deployer):
        self.layout = layout
        self.deployer = deployer
        self._routers: dict[str, CanaryRouter] = {}

    def _log_env(self, dac_id: str, directory) -> dict[str, str]:
        from iv_pipelines.deploy.targets import inference_log_env

        return inference_log_env(self.layout.dac_request(dac_id), str(directory))

    def _state_file(self, dac_id: str):
        return self.layout.canary_file(dac_id)

    def state(self, dac_id: str) -> dict | None:
        p = self._state_file(dac_id)
        try:
            return json.loads(p.read_text()) if p.is_file() else None
        except ValueError:
            return None

    def start(
        self, dac_id: str, package_dir, version: str, share: float = CANARY_SHARE, reason: str = ""
    ) -> dict:
        from iv_pipelines.paths import atomic_write_text

        if self.state(dac_id) is not None:
            raise RuntimeError(
                f"{dac_id} already has a canary ({self.state(dac_id)['version']}): decide it first"
            )
        CanaryRouter(share)  # checks the share
        log_dir = self.layout.inference_log_dir(dac_id) / f"canary-{version}"
        rec = self.deployer.deploy(
            package_dir, f"{dac_id}--candidate", version, env=self._log_env(dac_id, log_dir)
        )
        st = {
            "dac_id": dac_id,
            "version": version,
            "package": str(package_dir),
            "url": rec.url,
            "share": share,
            "started_at": time.time(),
            "log_dir": str(log_dir),
        }
        atomic_write_text(self._state_file(dac_id), json.dumps(st, indent=2) + "\n")
        DeploymentHistory(self.layout, dac_id).record(
            "canary_started", version, reason, share=share, url=rec.url
        )
        return st

    def route(self, device_id: str, target: tuple[str, str | None]) -> tuple[str, str | None]:
        """For the edge forwarder: send this window to the candidate when the router says so."""
        url, dac_id = target
        st = self.state(dac_id) if dac_id else None
        if st is None:
            return target
        router = self._routers.get(dac_id)
        if router is None or router.weights[1] != st["share"]:
            router = self._routers[dac_id] = CanaryRouter(st["share"])
        return (st["url"], dac_id) if router.pick() == 1 else target

    def evaluate(self, dac_id: str, now: float | None = None, **kw) -> CanaryDecision:
        """Decide, and act: promote (the candidate becomes the production deployment) or roll
        back (the candidate is stopped); every decision other than `wait` is in the history."""
        from iv_pipelines.runtime.inference_log import InferenceLog
        from iv_pipelines.sensing.twin import ACTIVITIES

        st = self.state(dac_id)
        if st is None:
            raise RuntimeError(f"{dac_id} has no canary")
        since = st["started_at"]
        prod = [
            label_correct(f)
            for f in InferenceLog(self.layout.inference_log_dir(dac_id), list(ACTIVITIES)).feedback()
            if f["at"] >= since
        ]
        cand = [label_correct(f) for f in InferenceLog(st["log_dir"], list(ACTIVITIES)).feedback()]
        d = canary_decision(prod, cand, since, now, **kw)
        hist = DeploymentHistory(self.layout, dac_id)
        if d.decision == "promote":
            from pathlib import Path

            from iv_pipelines.paths import atomic_write_text

            rec = self.deployer.deploy(
                Path(st["package"]),
                dac_id,
                st["version"],
                env=self._log_env(dac_id, self.layout.inference_log_dir(dac_id)),
            )
            self.deployer.stop(f"{dac_id}--candidate")
            dep = (self.layout.deployment(dac_id) or {}) | {"version": st["version"], "url": rec.url}
            atomic_write_text(self.layout.deployment_file(dac_id), json.dumps(dep, indent=2) + "\n")
            hist.record("promoted", st["version"], d.reason, **d.evidence)
            self._state_file(dac_id).unlink()
        elif d.decision == "rollback":
            self.deployer.stop(f"{dac_id}--candidate")
            hist.record("rolled_back", st["version"], d.reason, **d.evidence)
            self._state_file(dac_id).unlink()
        return d
