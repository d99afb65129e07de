"""LedgerResource: the UTID registry on the embedded EVM (default) or a JSON-RPC chain."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from iv_pipelines.ledger.chain import EmbeddedLedger, LedgerError, RpcLedger
from iv_pipelines.storage import default_storage_root


def default_ledger_dir() -> Path:
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"]) / "ledger"
    return default_storage_root().parent / "ledger"


class LedgerResource(dg.ConfigurableResource):
    """`embedded`: in-process py-evm chain persisted under `state_dir` (default
    $DAGSTER_HOME/ledger). `rpc`: `rpc_url` + a private key (IV_LEDGER_PRIVATE_KEY), the
    registry at `contract_address` or deployed once and remembered in `state_dir`."""

    backend: Literal["embedded", "rpc"] = "embedded"
    state_dir: str | None = None
    rpc_url: str | None = None
    private_key: str | None = Field(
        default=None, description="hex key; use dg.EnvVar('IV_LEDGER_PRIVATE_KEY')"
    )
    contract_address: str | None = None
    anchor_zk_proof: bool = Field(
        default=False,
        description="register through register_with_proof: the contract checks the DAC's Groth16 "
        "proof on-chain first (~280k more gas; slower on the embedded chain's pure-Python pairings)",
    )

    def get(self) -> EmbeddedLedger | RpcLedger:
        state = Path(self.state_dir) if self.state_dir else default_ledger_dir()
        if self.backend == "embedded":
            return EmbeddedLedger(state)
        if not self.rpc_url:
            raise LedgerError("ledger backend 'rpc' needs rpc_url (e.g. http://127.0.0.1:8545)")
        key = self.private_key or os.environ.get("IV_LEDGER_PRIVATE_KEY")
        if not key:
            raise LedgerError("ledger backend 'rpc' needs a private key (IV_LEDGER_PRIVATE_KEY)")
        state.mkdir(parents=True, exist_ok=True)
        return RpcLedger(self.rpc_url, key, self.contract_address, state / "registry-address.txt")
