"""Mesh resources: the ASI registry and the TTF router."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from iv_pipelines.storage import StorageLayout


class AsiRegistryResource(dg.ConfigurableResource):
    """SQLAlchemy URL of the ASI registry (default: SQLite under the storage root); with
    `seed_mesh`, an empty registry is bootstrapped with the generated cloud mesh (the seed's
    provider split), so routing has a mesh to run on before real services register."""

    url: str | None = None
    seed_mesh: bool = True
    mesh_seed: int = 0
    unhealthy_after: int = Field(default=3, ge=1)

    def get(self, storage_root: Path):
        from iv_pipelines.mesh.registry import AsiRegistry

        reg = AsiRegistry(self.url or StorageLayout(storage_root).asi_registry_url())
        if self.seed_mesh and reg.count_services() == 0:
            from iv_pipelines.mesh.generator import generate_mesh

            reg.bulk_load(generate_mesh(seed=self.mesh_seed))
        return reg


class TtfRouterResource(dg.ConfigurableResource):
    """TTF routing settings: the node-cost floor and the re-routing hysteresis."""

    cost_floor: float = Field(default=1e-3, gt=0)
    hysteresis: float = Field(default=0.10, ge=0, lt=1)
