"""Per-client API keys and short-lived stream tokens.

A key is `ivk_<key id>_<secret>` (32 random bytes of secret); only SHA-256(secret) is stored
(`<storage>/gateway/keys.json`, written atomically), so a leaked file gives nobody a key. A
browser cannot set headers on a WebSocket, so streams take a *token* instead: an HMAC-signed
`<client>.<expiry>` obtained over REST with the key, valid for `TOKEN_TTL_S` seconds, signed
with a server secret kept beside the keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

from iv_pipelines.paths import atomic_write_text

TOKEN_TTL_S = 60
_PREFIX = "ivk_"
SCOPES = {"deploy"}


class ApiKeys:
    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.path = self.dir / "keys.json"
        self._keys: dict[str, dict] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def _save(self) -> None:
        atomic_write_text(self.path, json.dumps(self._keys, indent=2, sort_keys=True) + "\n")
        self.path.chmod(0o600)

    def create(self, client_id: str, scopes: tuple[str, ...] = ()) -> tuple[str, str]:
        """(key id, the key). The key is shown once; only its hash is stored. `scopes`: what
        the key may do beyond reading (`deploy`: launch its DACs' lifecycle runs)."""
        if not client_id or len(client_id) > 64 or not client_id.isprintable():
            raise ValueError(f"client id {client_id!r}: 1..64 printable characters")
        unknown = set(scopes) - SCOPES
        if unknown:
            raise ValueError(f"unknown scope(s) {sorted(unknown)}; known: {sorted(SCOPES)}")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        self._keys[key_id] = {
            "client_id": client_id,
            "sha256": hashlib.sha256(secret.encode()).hexdigest(),
            "created": int(time.time()),
            "revoked": None,
            "scopes": sorted(set(scopes)),
        }
        self._save()
        return key_id, f"{_PREFIX}{key_id}_{secret}"

    def revoke(self, key_id: str) -> None:
        if key_id not in self._keys:
            raise KeyError(f"no key {key_id!r}")
        self._keys[key_id]["revoked"] = int(time.time())
        self._save()

    def list(self) -> list[dict]:
        return [
            {"key_id": k}
            | {x: v[x] for x in ("client_id", "created", "revoked")}
            | {"scopes": v.get("scopes", [])}
            for k, v in sorted(self._keys.items())
        ]

    def client_for(self, key: str | None) -> str | None:
        """The client a key belongs to, or None (unknown, malformed or revoked)."""
        rec = self._record(key)
        return rec["client_id"] if rec else None

    def scopes_for(self, key: str | None) -> frozenset[str]:
        rec = self._record(key)
        return frozenset(rec.get("scopes", [])) if rec else frozenset()

    def _record(self, key: str | None) -> dict | None:
        if not key or not key.startswith(_PREFIX) or len(key) > 128:
            return None
        key_id, _, secret = key[len(_PREFIX) :].partition("_")
        rec = self._keys.get(key_id)
        digest = hashlib.sha256(secret.encode()).hexdigest()
        if rec is None or rec["revoked"] is not None or not hmac.compare_digest(digest, rec["sha256"]):
            return None
        return rec

    # --- stream tokens ------------------------------------------------------------------
    def _server_secret(self) -> bytes:
        """The token-signing secret: created once (O_EXCL, so concurrent first uses agree on
        one), then read and cached."""
        if getattr(self, "_secret", None) is None:
            p = self.dir / "token-secret"
            p.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                for _ in range(100):  # another process is writing it
                    text = p.read_text().strip()
                    if len(text) == 64:
                        break
                    time.sleep(0.01)
                self._secret = bytes.fromhex(p.read_text().strip())
            else:
                secret = secrets.token_bytes(32)
                with os.fdopen(fd, "w") as fh:
                    fh.write(secret.hex())
                self._secret = secret
        return self._secret

    def stream_token(self, client_id: str, now: float | None = None) -> str:
        body = f"{client_id}.{int((now or time.time()) + TOKEN_TTL_S)}".encode()
        mac = hmac.digest(self._server_secret(), body, "sha256")
        return (
            base64.urlsafe_b64encode(body).decode().rstrip("=")
            + "."
            + base64.urlsafe_b64encode(mac).decode().rstrip("=")
        )

    def client_for_token(self, token: str | None, now: float | None = None) -> str | None:
        if not token or len(token) > 512 or token.count(".") != 1:
            return None
        try:
            b, m = (base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)) for x in token.split("."))
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(hmac.digest(self._server_secret(), b, "sha256"), m):
            return None
        client, _, exp = b.decode(errors="replace").rpartition(".")
        if not exp.isdigit() or int(exp) < (now or time.time()):
            return None
        return client
