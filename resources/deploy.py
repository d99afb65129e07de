"""Packaging, deployment and Energy Atlas resources."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from iv_pipelines.storage import StorageLayout


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
            Path(self.state_dir) if self.state_dir else StorageLayout(storage_root).deployments_dir(),
            self.ready_timeout_s,
        )

    def docker(self):
        from iv_pipelines.deploy.targets import DockerDeployer

        return DockerDeployer(self.docker_base_url)

    def kubernetes(self):
        from iv_pipelines.deploy.targets import KubernetesDeployer

        return KubernetesDeployer(self.kubeconfig, self.kube_context)


class EnergyAtlasResource(dg.ConfigurableResource):
    """The Energy Atlas. `ladybug` (embedded default): an in-process graph database under
    `root_dir` (default <storage>/atlas/graph); `neo4j`: the server at `neo4j_url` (auth from
    env vars in prod); `file`: JSON lines, for tests and tiny setups.

    ladybug allows one writer process per database: `open()` holds it only for the block and
    waits up to `lock_wait_s` for another process to let go, then says which PID holds it."""

    engine: Literal["ladybug", "neo4j", "file"] = "ladybug"
    root_dir: str | None = None
    neo4j_url: str | None = None
    neo4j_user: str | None = None
    neo4j_password: str | None = None
    lock_wait_s: float = Field(default=60.0, ge=0)

    @contextmanager
    def open(self, storage_root: Path):
        import time

        root = Path(self.root_dir) if self.root_dir else StorageLayout(storage_root).atlas_dir()
        if self.engine == "file":
            from iv_pipelines.energy.atlas import FileAtlas

            yield FileAtlas(root)
            return
        if self.engine == "neo4j":
            from iv_pipelines.atlas.engine import Neo4jAtlas

            if not (self.neo4j_url and self.neo4j_user and self.neo4j_password):
                raise dg.Failure(
                    description="EnergyAtlasResource(engine='neo4j') needs neo4j_url, neo4j_user, neo4j_password"
                )
            atlas = Neo4jAtlas(self.neo4j_url, self.neo4j_user, self.neo4j_password)
            try:
                yield atlas
            finally:
                atlas.driver.close()
            return
        from iv_pipelines.atlas.engine import LadybugAtlas

        deadline = time.monotonic() + self.lock_wait_s
        while True:
            try:
                atlas = LadybugAtlas(root / "graph")
                break
            except RuntimeError as e:
                if "lock" not in str(e).lower() or time.monotonic() > deadline:
                    raise dg.Failure(
                        description=f"Energy Atlas at {root / 'graph'} unavailable: {e}"
                    ) from None
                time.sleep(0.2)
        try:
            yield atlas
        finally:
            atlas.close()
