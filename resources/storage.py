"""FactoryStorage: where DAC requests and per-DAC outputs live.

Embedded default: a directory under DAGSTER_HOME. Production: a path on a shared volume
(`IV_STORAGE_ROOT`), e.g. a PVC mounted into every run pod.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from iv_pipelines.intake import RequestStore


class FactoryStorage(dg.ConfigurableResource):
    """Root directory of the factory's files: requests, drop folder, per-DAC outputs."""

    root_dir: str

    @property
    def root(self) -> Path:
        return Path(self.root_dir).resolve()

    def requests(self) -> RequestStore:
        return RequestStore(self.root)

    def drop_dir(self) -> Path:
        return self.root / "drop"

    def dac_dir(self, dac_id: str) -> Path:
        path = self.requests().path_for(dac_id).parent.parent / "dacs" / dac_id
        path.mkdir(parents=True, exist_ok=True)
        return path
