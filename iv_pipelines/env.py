"""The one place that decides which environment the code location runs in.

`IV_ENV=local` (default) selects the embedded backends (SQLite, files under DAGSTER_HOME, no
servers); `IV_ENV=prod` selects the production backends configured through environment
variables (see `resources/selection.py`). Nothing else in the code base branches on the
environment.
"""

from __future__ import annotations

import os
from typing import Literal

Environment = Literal["local", "prod"]
ENV_VAR = "IV_ENV"
_ALLOWED: tuple[Environment, ...] = ("local", "prod")


class UnknownEnvironmentError(ValueError):
    """Raised when IV_ENV holds a value that names no environment."""


def deployment_env(environ: dict[str, str] | None = None) -> Environment:
    """Return "local" or "prod" from `IV_ENV` (default "local"); reject anything else."""
    environ = os.environ if environ is None else environ
    raw = environ.get(ENV_VAR, "local").strip().lower()
    if raw in ("", "local", "dev", "embedded"):
        return "local"
    if raw in ("prod", "production"):
        return "prod"
    raise UnknownEnvironmentError(
        f"{ENV_VAR}={environ.get(ENV_VAR)!r} is not an environment; use one of {', '.join(_ALLOWED)}"
    )
