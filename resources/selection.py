"""Per-environment resource selection: the only place that maps `local`/`prod` to backends."""

from __future__ import annotations

from typing import Any

import dagster as dg

from iv_pipelines.env import Environment, deployment_env
from iv_pipelines.paths import default_storage_root
from resources.storage import FactoryStorage


def resources_for(env: Environment | None = None) -> dict[str, Any]:
    """Resources for `env` (default: from IV_ENV). Secrets come only from dg.EnvVar."""
    env = env or deployment_env()
    if env == "prod":
        return {"storage": FactoryStorage(root_dir=dg.EnvVar("IV_STORAGE_ROOT"))}
    return {"storage": FactoryStorage(root_dir=str(default_storage_root()))}
