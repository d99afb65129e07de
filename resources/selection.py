"""Per-environment resource selection: the only place that maps `local`/`prod` to backends."""

from __future__ import annotations

from typing import Any

import dagster as dg

from iv_pipelines.deploy.step_sizes import load as load_step_sizes
from iv_pipelines.deploy.step_sizes import pipes_resources
from iv_pipelines.env import Environment, deployment_env
from iv_pipelines.storage import StorageLayout, default_storage_root
from resources.deploy import DeployerResource, EnergyAtlasResource, PackagingResource
from resources.discovery import (
    AceMemoryResource,
    EmbedderResource,
    HypothesisGeneratorResource,
    ScoringResource,
)
from resources.ledger import LedgerResource
from resources.mesh import AsiRegistryResource, TtfRouterResource
from resources.proof import ProofResource
from resources.sensing import SensingResource
from resources.storage import CalibrationIOManager, FactoryStorage
from resources.training import GpuStepResource


def lifecycle_executor(env: Environment | None = None) -> dg.ExecutorDefinition:
    """How a launched lifecycle run executes its steps. `local`: in the run's own process
    (the run is already a subprocess of the daemon or webserver; a process per step would
    spend about 5 s of imports on each of its 12 steps, on 2 cores); `prod`: each step in its
    own Kubernetes Job (`k8s_job_executor`), each step sized by its measured CPU and memory
    (`deploy/step_resources.json`, written by `iv k8s step-sizes --write`; steps not in it get
    the run launcher's default). Pools (`gpu`, `cpu`, `atlas`, `ledger`) apply to steps under both."""
    env = env or deployment_env()
    if env == "prod":
        from dagster_k8s import k8s_job_executor

        from iv_pipelines.deploy.step_sizes import executor_config

        sizes = load_step_sizes()
        if not sizes:
            return k8s_job_executor
        return k8s_job_executor.configured(executor_config(sizes), name=k8s_job_executor.name)
    return dg.in_process_executor


def resources_for(env: Environment | None = None) -> dict[str, Any]:
    """Resources for `env` (default: from IV_ENV). Secrets come only from dg.EnvVar."""
    env = env or deployment_env()
    common = {
        "embedder": EmbedderResource(),
        "generator": HypothesisGeneratorResource(),
        "scoring": ScoringResource(),
        "sensing": SensingResource(),
        "proof": ProofResource(),
        "packaging": PackagingResource(),
        "atlas": EnergyAtlasResource(),
        "router": TtfRouterResource(),
    }
    if env == "prod":
        storage = FactoryStorage(root_dir=dg.EnvVar("IV_STORAGE_ROOT"))
        return common | {
            "storage": storage,
            "calibration_io_manager": CalibrationIOManager(storage=storage),
            "ace": AceMemoryResource(url=dg.EnvVar("IV_ACE_DATABASE_URL")),
            "ledger": LedgerResource(
                backend="rpc",
                rpc_url=dg.EnvVar("IV_LEDGER_RPC_URL"),
                private_key=dg.EnvVar("IV_LEDGER_PRIVATE_KEY"),
            ),
            "deployer": DeployerResource(target="kubernetes"),
            # GPU training in its own pod (Pipes), the CUDA build of deploy/Dockerfile
            "gpu_steps": GpuStepResource(
                mode="k8s_pipes",
                image=dg.EnvVar("IV_GPU_STEP_IMAGE"),
                load_incluster_config=True,
                step_resources=pipes_resources(load_step_sizes()),
            ),
            "registry": AsiRegistryResource(url=dg.EnvVar("IV_ASI_DATABASE_URL"), seed_mesh=False),
            "atlas": EnergyAtlasResource(
                engine="neo4j",
                neo4j_url=dg.EnvVar("IV_NEO4J_URL"),
                neo4j_user=dg.EnvVar("IV_NEO4J_USER"),
                neo4j_password=dg.EnvVar("IV_NEO4J_PASSWORD"),
            ),
        }
    root = default_storage_root()
    StorageLayout(root).ensure()  # `cp request.yaml <root>/drop/` works before the first sensor tick
    storage = FactoryStorage(root_dir=str(root))
    return common | {
        "storage": storage,
        "calibration_io_manager": CalibrationIOManager(storage=storage),
        "ace": AceMemoryResource(url=StorageLayout(root).ace_memory_url()),
        "ledger": LedgerResource(),
        "deployer": DeployerResource(),
        "registry": AsiRegistryResource(),
        "gpu_steps": GpuStepResource(),  # in the step's own process
    }
