"""DSSE envelopes (https://github.com/secure-systems-lab/dsse) signed with Ed25519.

The signature covers PAE(payloadType, payload) =
  "DSSEv1" SP len(type) SP type SP len(payload) SP payload
(lengths as ASCII decimals), never the raw JSON, so a payload cannot be re-typed.
`keyid` is the SHA-256 of the raw 32-byte public key (hex).

Signing key, first match wins:
1. `IV_SIGNING_KEY` — a PEM (PKCS#8) Ed25519 private key in the variable itself;
2. `IV_SIGNING_KEY_FILE` — the path of such a PEM file;
3. embedded default: `<keys_dir>/lineage-ed25519.pem`, generated on first use (mode 0600,
   created with O_EXCL so two run processes starting at once end up with the same key).
Keys never belong in the repository; `.gitignore` lists `*.pem`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
DEFAULT_KEY_NAME = "lineage-ed25519.pem"


class SignatureError(ValueError):
    """An envelope does not verify: what is wrong is in the message."""


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def keyid(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_key_bytes(key)).hexdigest()


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_pem(text: str | bytes) -> Ed25519PublicKey:
    raw = text.encode() if isinstance(text, str) else text
    try:
        key = serialization.load_pem_public_key(raw)
    except ValueError as e:
        raise SignatureError(f"public key is not a PEM public key: {e}") from e
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"public key must be Ed25519, got {type(key).__name__}")
    return key


def _load_private_pem(raw: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError) as e:
        raise SignatureError(f"{where}: not an unencrypted PEM private key ({e})") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{where}: signing key must be Ed25519, got {type(key).__name__}")
    return key


@dataclass(frozen=True)
class SigningKey:
    key: Ed25519PrivateKey
    source: str  # where it came from (never the key itself)

    @property
    def public(self) -> Ed25519PublicKey:
        return self.key.public_key()


def existing_public_key(keys_dir: Path) -> tuple[Ed25519PublicKey, str] | None:
    """The public half of the signing key that is already configured (IV_SIGNING_KEY,
    IV_SIGNING_KEY_FILE, or a key under `keys_dir`) with where it came from; None when there
    is none. Verification uses this: it never creates a key (a new key trusts nothing)."""
    if os.environ.get("IV_SIGNING_KEY") or os.environ.get("IV_SIGNING_KEY_FILE"):
        k = load_or_create_signing_key(keys_dir)
        return k.public, k.source
    path = Path(keys_dir) / DEFAULT_KEY_NAME
    if path.is_file():
        return _load_private_pem(path.read_bytes(), str(path)).public_key(), f"file:{path}"
    return None


def load_or_create_signing_key(keys_dir: Path) -> SigningKey:
    if os.environ.get("IV_SIGNING_KEY"):
        return SigningKey(
            _load_private_pem(os.environ["IV_SIGNING_KEY"].encode(), "IV_SIGNING_KEY"), "env:IV_SIGNING_KEY"
        )
    if os.environ.get("IV_SIGNING_KEY_FILE"):
        path = Path(os.environ["IV_SIGNING_KEY_FILE"])
        if not path.is_file():
            raise SignatureError(f"IV_SIGNING_KEY_FILE={path}: no such file")
        return SigningKey(_load_private_pem(path.read_bytes(), str(path)), f"file:{path}")
    path = Path(keys_dir) / DEFAULT_KEY_NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
    raw = path.read_bytes()
    if not raw.strip():  # the creator is between open and write: wait for it
        import time

        for _ in range(50):
            time.sleep(0.02)
            raw = path.read_bytes()
            if raw.strip():
                break
    return SigningKey(_load_private_pem(raw, str(path)), f"file:{path}")


def sign_envelope(payload: bytes, key: SigningKey, payload_type: str = INTOTO_PAYLOAD_TYPE) -> dict:
    sig = key.key.sign(pae(payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": keyid(key.public), "sig": base64.b64encode(sig).decode()}],
    }


def verify_envelope(envelope: dict, trusted: Ed25519PublicKey) -> bytes:
    """The payload bytes if a signature by `trusted` verifies; SignatureError saying why otherwise."""
    try:
        payload_type = envelope["payloadType"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        sigs = envelope["signatures"]
    except (KeyError, TypeError, ValueError) as e:
        raise SignatureError(f"malformed DSSE envelope: {e!r}") from e
    want = keyid(trusted)
    mine = [s for s in sigs if isinstance(s, dict) and s.get("keyid") == want]
    if not mine:
        raise SignatureError(f"no signature by the trusted key {want[:16]}... in the envelope")
    for s in mine:
        try:
            trusted.verify(base64.b64decode(s["sig"], validate=True), pae(payload_type, payload))
            return payload
        except (InvalidSignature, ValueError, KeyError, TypeError):
            continue
    raise SignatureError(f"signature by key {want[:16]}... does not verify (payload or signature altered)")


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
