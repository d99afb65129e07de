"""Packaging, deployment and Energy Atlas resources."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field


class PackagingResource(dg.ConfigurableResource):
    """How packages are rendered: image registry, CPU limit, replicas, optional KServe."""

    image_registry: str = Field(
        default="localhost:5000/iv", description="image = <registry>/<dac_id>:<version>"
    )
    cpu_limit: str = Field(
        default="1", description="Kubernetes CPU limit of the capsule (it runs 1 torch thread)"
    )
    replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(default=3, ge=1)
    kserve: bool = Field(default=False, description="also render a KServe InferenceService")

    def options(self):
        from iv_pipelines.packaging.dac import PackageOptions

        return PackageOptions(
            image_registry=self.image_registry,
            cpu_limit=self.cpu_limit,
            replicas=self.replicas,
            max_replicas=self.max_replicas,
            kserve=self.kserve,
        )


class DeployerResource(dg.ConfigurableResource):
    """Where capsules run. `target` overrides the request's target; `local` (default) runs a
    supervised process on 127.0.0.1, `docker` needs a reachable daemon, `kubernetes` the
    cluster of `kubeconfig`."""

    target: Literal["request", "local", "docker", "kubernetes"] = "request"
    state_dir: str | None = Field(default=None, description="local: default <storage>/deployments")
    ready_timeout_s: float = Field(default=90.0, gt=0)
    docker_base_url: str | None = None
    kubeconfig: str | None = None
    kube_context: str | None = None
    smoke_episodes_per_activity: int = Field(default=10, ge=1)

    def resolve_target(self, requested: str) -> str:
        return requested if self.target == "request" else self.target

    def local(self, storage_root: Path):
        from iv_pipelines.deploy.targets import LocalDeployer

        return LocalDeployer(
            Path(self.state_dir) if self.state_dir else storage_root / "deployments", self.ready_timeout_s
        )

    def docker(self):
        from iv_pipelines.deploy.targets import DockerDeployer

        return DockerDeployer(self.docker_base_url)

    def kubernetes(self):
        from iv_pipelines.deploy.targets import KubernetesDeployer

        return KubernetesDeployer(self.kubeconfig, self.kube_context)


class EnergyAtlasResource(dg.ConfigurableResource):
    """The Energy Atlas. `file` (this issue): JSON lines under `root_dir` (default
    <storage>/atlas); the graph engines (ladybug, Neo4j) come with the mesh issue."""

    engine: Literal["file"] = "file"
    root_dir: str | None = None

    def get(self, storage_root: Path):
        from iv_pipelines.energy.atlas import FileAtlas

        return FileAtlas(Path(self.root_dir) if self.root_dir else storage_root / "atlas")
