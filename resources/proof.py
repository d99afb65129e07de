"""ProofResource: the lineage signing key (Ed25519) and the key verification trusts."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from iv_pipelines.proof.dsse import SigningKey, load_or_create_signing_key, load_public_pem
from iv_pipelines.storage import default_storage_root


def default_keys_dir() -> Path:
    """`$DAGSTER_HOME/keys` on the embedded default, else `keys/` beside the storage root."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"]) / "keys"
    return default_storage_root().parent / "keys"


class ProofResource(dg.ConfigurableResource):
    """Signs lineage bundles. The private key comes from IV_SIGNING_KEY / IV_SIGNING_KEY_FILE
    or is generated on first use under `keys_dir`; `trusted_public_key_file` pins the key
    verification accepts (default: the signing key's own public key)."""

    keys_dir: str | None = Field(default=None, description="default: $DAGSTER_HOME/keys")
    zk: bool = Field(
        default=True, description="also prove (Groth16) that the validation score clears its threshold"
    )
    trusted_public_key_file: str | None = Field(
        default=None, description="PEM public key that verification trusts (default: the signer's)"
    )

    def signing_key(self) -> SigningKey:
        return load_or_create_signing_key(Path(self.keys_dir) if self.keys_dir else default_keys_dir())

    def trusted_key(self):
        if self.trusted_public_key_file:
            return load_public_pem(Path(self.trusted_public_key_file).read_bytes())
        return self.signing_key().public
