"""The factory's storage layout, in one place: every path under the storage root and the
fleet queries over them. Nothing else builds a storage path (issue #15: the grep of its
acceptance finds the file names below nowhere else outside this module and the tests).

    <root>/
      requests/<dac>.json            validated requests (`intake.RequestStore`)
      calibration/<sha256>.<ext>     calibration captures, content-addressed
      drop/ drop/accepted/ drop/rejected/
                                     the request drop folder (`dac_request_drop_sensor`)
      dacs/<dac>/                    per-DAC lifecycle outputs:
        request.json                   the request as the lifecycle saw it
        validated_hypothesis.json      the scored hypothesis
        adapter/                       LoRA adapter, evaluation.json, plots
        lineage/                       the signed lineage bundle, registration.json
      packages/<dac>/<version>/      sealed packages; <dac>-<version>.tar.gz / .intoto.jsonl beside
      packages/<dac>/current.json    the package a DAC serves now (`dac_package` writes it)
      deployments/<dac>/             deployer state; deployment.json (`dac_deployment`)
      energy/<dac>/signature.json    the measured energy signature
      energy/history/                the daily energy_history partitions
      models/wifi-sensing-base/      the shared base model; models/history/ the ones it replaced
      telemetry/capsules.jsonl       capsule health samples (`dac_health`)
      operations/                    health.json, security_audit.json, cost_recommendations.json
      rdr/                           queue.jsonl, trends.md (`rdr_findings`)
      cas/                           content-addressed copies of shared lineage inputs
      mesh/routes.json pins/<dac>.json reports/<YYYY-MM>/
                                     TTF routes, Capsule Pins, monthly client reports
      atlas/ asi.sqlite ace.sqlite   embedded Energy Atlas, ASI registry, ACE memory
      edge/devices.json              registered devices: HMAC key, the DAC each feeds (`iv ingest`)
      edge/captures/<device>/        rolling per-device capture files (esp-csi lines, hourly)
      edge/detections.jsonl          detections the ingest service received from capsules
      feedback/<dac>.jsonl <dac>/    caregivers' answers to alerts, with the CSI window each refers to
      pipes/<dac>/                   what a GPU step hands its Pipes pod (k8s_pipes): twin_context.pkl

`StorageLayout(root).ensure()` creates the folders a user is told to use (the drop folder
and its outcome folders), so `cp my-request.yaml <root>/drop/` works on a fresh home.
Plain Python; it imports nothing of the domain, so every domain part may use it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

BASE_MODEL = "wifi-sensing-base"
CURRENT_POINTER = "current.json"
TELEMETRY_FILE = "capsules.jsonl"
REQUEST_FILE = "request.json"
DEPLOYMENT_FILE = "deployment.json"
ADAPTER_DIR = "adapter"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
LINEAGE_DIR = "lineage"
PACKAGES_DIR = "packages"


def default_storage_root() -> Path:
    """`IV_STORAGE_ROOT` if set, else `$DAGSTER_HOME/iv`, else `.iv_data/` here."""
    if os.environ.get("IV_STORAGE_ROOT"):
        return Path(os.environ["IV_STORAGE_ROOT"]).resolve()
    if os.environ.get("DAGSTER_HOME"):
        return (Path(os.environ["DAGSTER_HOME"]) / "iv").resolve()
    return Path(".iv_data").resolve()


def _read_json(path: Path) -> dict | list | None:
    return json.loads(path.read_text()) if path.is_file() else None


class StorageLayout:
    """Paths and fleet queries under one storage root."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"StorageLayout({str(self.root)!r})"

    def ensure(self) -> StorageLayout:
        """Create the folders a user writes into (the drop folder and its outcome folders)."""
        for d in (self.drop_dir(), self.drop_dir() / "accepted", self.drop_dir() / "rejected"):
            d.mkdir(parents=True, exist_ok=True)
        return self

    # --- intake ---------------------------------------------------------------------------
    def requests_dir(self) -> Path:
        return self.root / "requests"

    def calibration_dir(self) -> Path:
        return self.root / "calibration"

    def drop_dir(self) -> Path:
        return self.root / "drop"

    # --- per DAC --------------------------------------------------------------------------
    def dac_dir(self, dac_id: str, create: bool = True) -> Path:
        path = self.root / "dacs" / dac_id
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def dac_request_file(self, dac_id: str) -> Path:
        return self.dac_dir(dac_id, create=False) / REQUEST_FILE

    def dac_request(self, dac_id: str) -> dict | None:
        """The request the lifecycle saved for `dac_id` (raw JSON), or None."""
        return _read_json(self.dac_request_file(dac_id))

    def adapter_dir(self, dac_id: str) -> Path:
        return self.dac_dir(dac_id, create=False) / ADAPTER_DIR

    def lineage_dir(self, dac_id: str) -> Path:
        return self.dac_dir(dac_id, create=False) / LINEAGE_DIR

    def energy_signature_file(self, dac_id: str) -> Path:
        return self.root / "energy" / dac_id / "signature.json"

    # --- packages -------------------------------------------------------------------------
    def package_root(self, dac_id: str) -> Path:
        return self.root / PACKAGES_DIR / dac_id

    def current_pointer(self, dac_id: str) -> Path:
        return self.package_root(dac_id) / CURRENT_POINTER

    def current_package(self, dac_id: str) -> dict | None:
        """The pointer `dac_package` wrote for `dac_id` (version, digest, directory,
        tarball, attestation), or None when the DAC has no package."""
        return _read_json(self.current_pointer(dac_id))

    def write_current_package(self, dac_id: str, pointer: dict) -> Path:
        """Point `dac_id` at a sealed package (atomically: readers see the old or the new)."""
        from iv_pipelines.paths import atomic_write_text

        path = self.current_pointer(dac_id)
        atomic_write_text(path, json.dumps(pointer, indent=2) + "\n")
        return path

    def current_manifest(self, dac_id: str) -> dict | None:
        """The manifest.json of the package `dac_id` serves now, or None."""
        cur = self.current_package(dac_id)
        return _read_json(Path(cur["directory"]) / "manifest.json") if cur else None

    # --- deployments ----------------------------------------------------------------------
    def drift_reference_file(self, dac_id: str) -> Path:
        """The windows the DAC's decisions were calibrated on, summarised (lora_adapter)."""
        return self.dac_dir(dac_id, create=False) / "drift_reference.npz"

    def canary_file(self, dac_id: str) -> Path:
        """The running canary of a DAC (deploy/canary.py), while there is one."""
        return self.deployments_dir() / f"{dac_id}.canary.json"

    def deployment_history_file(self, dac_id: str) -> Path:
        """Every deployment event of a DAC (deployed, canary_started, promoted, rolled_back)."""
        return self.deployments_dir() / f"{dac_id}.history.jsonl"

    def monitoring_dir(self, dac_id: str) -> Path:
        """The deployment's Prometheus scrape config and Grafana dashboard."""
        return self.root / "monitoring" / dac_id

    def pipes_input_file(self, dac_id: str, name: str) -> Path:
        """An input a GPU step hands its Pipes pod (outside dacs/<dac>/: not a lineage input)."""
        return self.root / "pipes" / dac_id / name

    def inference_log_dir(self, dac_id: str) -> Path:
        """The DAC's inference log and feedback labels (written by its capsule)."""
        return self.root / "inference" / dac_id

    def deployments_dir(self) -> Path:
        return self.root / "deployments"

    def deployment_file(self, dac_id: str) -> Path:
        return self.deployments_dir() / dac_id / DEPLOYMENT_FILE

    def deployment(self, dac_id: str) -> dict | None:
        """The record `dac_deployment` wrote for `dac_id` (target, url, smoke...), or None."""
        return _read_json(self.deployment_file(dac_id))

    # --- the fleet ------------------------------------------------------------------------
    def packaged_dacs(self) -> list[str]:
        """Every DAC with a current package, sorted."""
        return sorted(p.parent.name for p in (self.root / PACKAGES_DIR).glob(f"*/{CURRENT_POINTER}"))

    def deployed_dacs(self) -> list[str]:
        """Every DAC with a deployment record, sorted."""
        return sorted(p.parent.name for p in self.deployments_dir().glob(f"*/{DEPLOYMENT_FILE}"))

    def requested_dacs(self) -> list[str]:
        """Every DAC whose lifecycle saved its request, sorted."""
        return sorted(p.parent.name for p in (self.root / "dacs").glob(f"*/{REQUEST_FILE}"))

    def dac_files(self, rel: str) -> list[Path]:
        """`dacs/*/<rel>` that exist, sorted (e.g. every lineage registration)."""
        return sorted((self.root / "dacs").glob(f"*/{rel}"))

    def adapted_dacs(self) -> list[str]:
        """Every DAC with trained adapter weights, sorted (what a new base model invalidates)."""
        pattern = f"*/{ADAPTER_DIR}/{ADAPTER_WEIGHTS}"
        return sorted(p.parent.parent.name for p in (self.root / "dacs").glob(pattern))

    # --- shared models --------------------------------------------------------------------
    def base_model_dir(self) -> Path:
        return self.root / "models" / BASE_MODEL

    def base_model_candidate_dir(self) -> Path:
        return self.root / "models" / f"{BASE_MODEL}.candidate"

    def base_model_history(self, stamp: int) -> Path:
        return self.root / "models" / "history" / f"{BASE_MODEL}-{stamp}"

    def t2l_dir(self) -> Path:
        """The Text-to-LoRA hypernetwork (issue #20); `lora_adapter` starts from its adapter when it exists."""
        return self.root / "models" / "t2l"

    def fleet_dir(self) -> Path:
        """Reports and plots of the weekly fleet merge (M2N2)."""
        return self.root / "models" / "fleet"

    def shared_lineage_inputs(self) -> list[Path]:
        """The shared files every DAC's lineage commits to (calibration captures, base model)."""
        return [self.calibration_dir(), self.base_model_dir()]

    def cas_file(self, sha256: str) -> Path:
        """`cas/sha256/<2>/<digest>`: a content-addressed copy of a shared lineage input."""
        return self.root / "cas" / "sha256" / sha256[:2] / sha256

    # --- operations -----------------------------------------------------------------------
    def telemetry_dir(self) -> Path:
        return self.root / "telemetry"

    def telemetry_file(self) -> Path:
        return self.telemetry_dir() / TELEMETRY_FILE

    def energy_history_dir(self) -> Path:
        return self.root / "energy" / "history"

    def operations_file(self, name: str) -> Path:
        """`operations/<name>`: health.json, security_audit.json, cost_recommendations.json."""
        return self.root / "operations" / name

    def health_rows(self) -> list[dict]:
        """The last `dac_health` table (one row per deployed DAC), [] before the first run."""
        return _read_json(self.operations_file("health.json")) or []

    def mesh_routes_file(self) -> Path:
        return self.root / "mesh" / "routes.json"

    def pins_dir(self) -> Path:
        return self.root / "pins"

    def pin_file(self, dac_id: str) -> Path:
        return self.pins_dir() / f"{dac_id}.json"

    def reports_dir(self, period: str) -> Path:
        """`reports/<YYYY-MM>/`: the monthly client reports."""
        return self.root / "reports" / period

    def score_calibration_file(self) -> Path:
        return self.calibration_dir() / "score_calibration.npz"

    # --- embedded databases (production points the resources at servers instead) ---------
    def atlas_dir(self) -> Path:
        return self.root / "atlas"

    def asi_registry_url(self) -> str:
        return f"sqlite:///{self.root / 'asi.sqlite'}"

    def ace_memory_url(self) -> str:
        return f"sqlite:///{self.root / 'ace.sqlite'}"

    # --- the edge ----------------------------------------------------------------------
    def edge_devices_file(self) -> Path:
        return self.root / "edge" / "devices.json"

    def edge_captures_dir(self) -> Path:
        return self.root / "edge" / "captures"

    def edge_detections_file(self) -> Path:
        return self.root / "edge" / "detections.jsonl"

    def feedback_file(self, dac_id: str) -> Path:
        """`feedback/<dac>.jsonl`: caregivers' answers to alerts ("was this a fall?")."""
        return self.root / "feedback" / f"{dac_id}.jsonl"

    def feedback_windows_dir(self, dac_id: str) -> Path:
        """`feedback/<dac>/`: the CSI window each answer refers to (esp-csi files)."""
        return self.root / "feedback" / dac_id

    def rdr_file(self, name: str) -> Path:
        """`rdr/<name>`: queue.jsonl, trends.md."""
        return self.root / "rdr" / name
