"""Where the GPU training steps run (issue #19): in the step's own process (`in_process`, the
embedded default), or in their own pod on a GPU node through Dagster Pipes
(`k8s_pipes`, prod: `PipesK8sClient`; the pod runs `python -m iv_app.pipes_steps`, which
reports the step's metadata and data version back through the pod's log).

`resources/selection.py` picks the mode per environment; nothing else branches on it."""

from __future__ import annotations

import math
from typing import Any, Literal

import dagster as dg
from pydantic import Field

# what the Pipes pod asks for: one GPU, on a node that has one (the step's own Job, which
# only waits for the pod, keeps the executor's default size)
GPU_POD_SPEC: dict[str, Any] = {
    "containers": [
        {
            "resources": {
                "requests": {"cpu": "4", "memory": "16Gi"},
                "limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"},
            },
            "volumeMounts": [{"name": "iv-storage", "mountPath": "/var/lib/iv"}],
            "envFrom": [{"secretRef": {"name": "iv-secrets"}}],
        }
    ],
    "volumes": [{"name": "iv-storage", "persistentVolumeClaim": {"claimName": "iv-storage"}}],
    "nodeSelector": {"iv.industriverse.dev/accelerator": "nvidia-gpu"},
    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001},
}


def _shown(t: str, v: Any) -> Any:
    """Floats as the UI shows them (4 decimals, as `defs.common.tidy` does)."""
    return round(v, 4) if t == "float" and math.isfinite(v) else v


def to_metadata_values(plain: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """{key: (type, value)} -> Dagster metadata values, the same types the Pipes pod reports."""
    make = {
        "path": dg.MetadataValue.path,
        "md": dg.MetadataValue.md,
        "bool": dg.MetadataValue.bool,
        "text": dg.MetadataValue.text,
        "int": dg.MetadataValue.int,
        "float": dg.MetadataValue.float,
        "json": dg.MetadataValue.json,
    }
    return {k: make[t](_shown(t, v)) for k, (t, v) in plain.items()}


def to_pipes_metadata(plain: dict[str, tuple[str, Any]]) -> dict[str, dict]:
    """{key: (type, value)} -> the Pipes protocol's metadata form."""
    return {k: {"raw_value": _shown(t, v), "type": t} for k, (t, v) in plain.items()}


class GpuStepResource(dg.ConfigurableResource):
    mode: Literal["in_process", "k8s_pipes"] = "in_process"
    image: str | None = Field(default=None, description="the CUDA build of deploy/Dockerfile (k8s_pipes)")
    namespace: str | None = None
    kubeconfig_file: str | None = None
    load_incluster_config: bool | None = None
    poll_interval_s: float = Field(default=10.0, gt=0)
    pod_spec: dict = Field(default_factory=lambda: GPU_POD_SPEC)
    step_resources: dict[str, dict] = Field(
        default_factory=dict,
        description="measured container resources per Pipes step (iv_pipelines/deploy/step_sizes.py); "
        "the pod spec's own resources where a step has none",
    )

    def pod_spec_for(self, step: str) -> dict:
        """The pod spec for `step`: its measured CPU and memory (when measured), and always one GPU."""
        import copy

        spec = copy.deepcopy(self.pod_spec)
        measured = self.step_resources.get(step)
        if measured:
            for c in spec.get("containers", []):
                res = copy.deepcopy(measured)
                gpu = c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", "1")
                res["limits"]["nvidia.com/gpu"] = gpu
                c["resources"] = res
        return spec

    def run(self, context, step: str, extras: dict) -> Any:
        """Run `step` of `iv_app.pipes_steps` in a pod; returns Pipes' completed invocation."""
        if self.mode != "k8s_pipes" or not self.image:
            raise dg.Failure(description="GpuStepResource: k8s_pipes needs an image (IV_GPU_STEP_IMAGE)")
        from dagster_k8s import PipesK8sClient

        client = PipesK8sClient(
            load_incluster_config=self.load_incluster_config,
            kubeconfig_file=self.kubeconfig_file,
            poll_interval=self.poll_interval_s,
        )
        return client.run(
            context=context,
            image=self.image,
            command=["python", "-m", "iv_app.pipes_steps"],
            namespace=self.namespace,
            extras={"step": step} | extras,
            base_pod_spec=self.pod_spec_for(step),
        )
