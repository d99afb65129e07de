"""Where the factory keeps its files on the embedded default.

Everything lives under one storage root: `IV_STORAGE_ROOT` if set, else
`$DAGSTER_HOME/iv`, else `.iv_data/` in the current directory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def default_storage_root() -> Path:
    if os.environ.get("IV_STORAGE_ROOT"):
        return Path(os.environ["IV_STORAGE_ROOT"]).resolve()
    if os.environ.get("DAGSTER_HOME"):
        return (Path(os.environ["DAGSTER_HOME"]) / "iv").resolve()
    return Path(".iv_data").resolve()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see either the old file or the whole new one.

    The bytes go to a temporary file in the same directory, are fsynced, then renamed over
    the target (rename is atomic on POSIX within one filesystem).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
