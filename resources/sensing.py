"""Sensing resource: Shadow Twin and T2L (LoRA) training settings, real-capture location."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from iv_pipelines.sensing.client import REAL_WEIGHT
from iv_pipelines.sensing.intensity import DEFAULT_RECALL_COST

_DEFAULT_REAL = (
    Path(__file__).resolve().parent.parent.parent
    / "shared"
    / "data"
    / "csi"
    / "francescopace__espectre"
    / "micro-espectre"
    / "data"
)


class SensingResource(dg.ConfigurableResource):
    """Pretraining and adaptation budgets (2-core defaults) and where real ESP32 captures live.

    The espectre captures of `real_data_dir` are used for evaluation only (the base model's
    real-capture tables); a request's own calibration captures train its adapter."""

    # recipe-3: 480 homes (each with its own device and calibration context) x 10 episodes x
    # 4 activities, 8 epochs: ~3.5 min of simulation and ~3 min of training on 2 cores
    pretrain_rooms: int = Field(default=480, ge=4)
    pretrain_episodes_per_activity: int = Field(default=10, ge=1)
    pretrain_epochs: int = Field(default=8, ge=1)
    sim_workers: int = Field(default=2, ge=1, description="processes simulating pretraining rooms")
    eval_rooms: int = Field(default=32, ge=2)
    lora_rank: int = Field(default=4, ge=1)
    lora_episodes_per_activity: int = Field(default=120, ge=2)
    lora_eval_episodes_per_activity: int = Field(default=150, ge=2)
    lora_epochs: int = Field(default=10, ge=1)
    lora_lr: float = Field(default=1e-3, gt=0)
    default_false_alarm_rate: float = Field(
        default=0.02, gt=0, lt=0.5, description="fall false-alarm target when the request sets none"
    )
    fall_intensity_recall_cost: float | None = Field(
        default=DEFAULT_RECALL_COST,
        ge=0,
        lt=0.5,
        description="the fall-intensity check (iv_pipelines/sensing/intensity.py): the share of the "
        "twin's falls it may give up (expected); null turns it off. Needs a walking calibration capture.",
    )
    lora_calibration_weight: float = Field(
        default=REAL_WEIGHT,
        gt=0,
        le=10,
        description="how much the request's calibration windows of an activity weigh in the "
        "adapter's training against the twin's windows of that class (1: as much; 0.25 before "
        "2026-12-06, see docs/sensing.md, 'Real walking, development')",
    )
    seed: int = 0
    real_data_dir: str | None = Field(
        default=None, description="espectre captures (default: ../shared/data/csi/... beside the repo)"
    )

    def real_dir(self) -> Path | None:
        path = Path(self.real_data_dir) if self.real_data_dir else _DEFAULT_REAL
        return path if path.exists() else None

    def pretrain(self, seed: int | None = None, eval_seed: int | None = None, log=lambda _m: None):
        """`pretrain_base` with this resource's budgets: the base model asset and the weekly
        candidate of `base_model_update` (another seed, the same held-out homes)."""
        from iv_pipelines.sensing.pipeline import pretrain_base

        return pretrain_base(
            n_rooms=self.pretrain_rooms,
            per_activity=self.pretrain_episodes_per_activity,
            epochs=self.pretrain_epochs,
            workers=self.sim_workers,
            seed=self.seed if seed is None else seed,
            n_eval_rooms=self.eval_rooms,
            eval_seed=eval_seed,
            log=log,
        )
