"""FactoryStorage: the storage root every asset reads and writes, as a resource.

Embedded default: a directory under DAGSTER_HOME. Production: a path on a shared volume
(`IV_STORAGE_ROOT`), e.g. a PVC mounted into every run pod. What lives where under the root
is `iv_pipelines.storage.StorageLayout`'s business; this resource only says where the root is.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from iv_pipelines.intake import RequestStore
from iv_pipelines.storage import StorageLayout


class FactoryStorage(dg.ConfigurableResource):
    """Root directory of the factory's files: requests, drop folder, per-DAC outputs,
    packages, deployments, telemetry, models (layout: `iv_pipelines.storage`)."""

    root_dir: str

    @property
    def root(self) -> Path:
        return Path(self.root_dir).resolve()

    @property
    def layout(self) -> StorageLayout:
        return StorageLayout(self.root)

    def requests(self) -> RequestStore:
        return RequestStore(self.root)

    def drop_dir(self) -> Path:
        """The request drop folder, created (with accepted/ and rejected/) if missing."""
        return self.layout.ensure().drop_dir()

    def dac_dir(self, dac_id: str) -> Path:
        return self.layout.dac_dir(dac_id)


class CalibrationIOManager(dg.ConfigurableIOManager):
    """The score calibration lives in one place, `<storage>/calibration/score_calibration.npz`
    (written by the asset with its report): runs load it from there, so a run launched by the
    webserver, the daemon or a Kubernetes pod reads the same file `make demo` wrote, whatever
    the instance's own IO storage holds."""

    storage: FactoryStorage

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        from iv_pipelines.scoring.calibration import Calibration

        path = self.storage.layout.score_calibration_file()
        if not path.is_file() or Calibration.load(path).digest() != obj.digest():
            obj.save(path)

    def load_input(self, context: dg.InputContext):
        from iv_pipelines.scoring.calibration import Calibration

        path = self.storage.layout.score_calibration_file()
        if not path.is_file():
            raise dg.Failure(
                description=f"no score calibration at {path}: materialize score_calibration "
                "(score_calibration_job; `make demo` does it once)"
            )
        return Calibration.load(path)
