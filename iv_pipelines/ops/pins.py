"""Capsule Pin records: what a client-facing pin shows about a deployed DAC.

The record is the data contract the Capsule Pin web components will render (DESIGN §5; the
components, theme tokens and gateway come later): identity (DAC id, UTID, version), where it
answers (endpoint, target), its state (status, last health score), and its measured energy
signature. Built only from stored outputs; invalid records fail with the field named.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from iv_pipelines.storage import StorageLayout

PIN_SCHEMA_VERSION = "1.0.0"


class PinEnergy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    E_state: float = Field(ge=0, description="J")
    dE_dt: float = Field(description="W")
    S_state: float = Field(ge=0, le=1)


class CapsulePin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: str = PIN_SCHEMA_VERSION
    dac_id: str
    client_id: str
    utid: str | None
    version: str
    target: Literal["local", "docker", "kubernetes"]
    endpoint: str | None
    status: Literal["serving", "stopped", "degraded", "unknown"]
    health_score: float | None = Field(default=None, ge=0, le=1)
    capabilities: list[str] = Field(default_factory=list)
    energy: PinEnergy
    updated_at: AwareDatetime


def build_pin(storage_root: Path, dac_id: str, deployer) -> CapsulePin:
    layout = StorageLayout(storage_root)
    dep, man, req = layout.deployment(dac_id), layout.current_manifest(dac_id), layout.dac_request(dac_id)
    for what, found in (("deployment record", dep), ("current package", man), ("saved request", req)):
        if found is None:
            raise KeyError(f"{dac_id} has no {what}")
    health = {r["dac_id"]: r for r in layout.health_rows()}
    st = deployer.status(dac_id) if dep["target"] == "local" else {}
    h = health.get(dac_id, {})
    if dep["target"] != "local":
        status = "unknown"
    elif not st.get("running"):
        status = "stopped"
    else:
        status = "degraded" if h.get("degraded") else "serving"
    e = man["energy_signature"]
    return CapsulePin(
        dac_id=dac_id,
        client_id=req["client_id"],
        utid=man.get("utid"),
        version=dep["version"],
        target=dep["target"],
        endpoint=dep.get("url"),
        status=status,
        health_score=h.get("score"),
        capabilities=dep.get("capabilities", []),
        energy=PinEnergy(E_state=e["E_state"], dE_dt=e["dE_dt"], S_state=e["S_state"]),
        updated_at=dt.datetime.now(dt.UTC),
    )
