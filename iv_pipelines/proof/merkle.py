"""Merkle tree over lineage leaves, RFC 9162 (Certificate Transparency v2) construction.

Encoding (domain-separated so a leaf can never be confused with an inner node):
- leaf hash  = SHA-256(0x00 || leaf_data)
- node hash  = SHA-256(0x01 || left || right)
- the tree over n leaves splits at k, the largest power of two below n (RFC 9162 §2.1.1),
  so unbalanced trees need no padding and every inclusion proof is well defined;
- the empty tree's root is SHA-256 of the empty string.
`leaf_data` for a lineage artifact is `lineage_leaf(name, sha256)`:
  b"iv-lineage-leaf-v1" || 0x00 || uint32_be(len(name)) || name (UTF-8) || sha256 (32 bytes),
binding the artifact's name to its content digest.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
LEAF_TAG = b"iv-lineage-leaf-v1\x00"


def lineage_leaf(name: str, sha256_hex: str) -> bytes:
    raw = name.encode("utf-8")
    digest = bytes.fromhex(sha256_hex)
    if len(digest) != 32:
        raise ValueError(f"leaf {name!r}: sha256 must be 32 bytes, got {len(digest)}")
    return LEAF_TAG + struct.pack(">I", len(raw)) + raw + digest


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _root(hashes: list[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return node_hash(_root(hashes[:k]), _root(hashes[k:]))


def merkle_root(leaves: list[bytes]) -> bytes:
    """Root over leaf *data* (not yet hashed)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    return _root([leaf_hash(x) for x in leaves])


@dataclass(frozen=True)
class InclusionProof:
    index: int
    size: int
    path: tuple[bytes, ...]  # sibling hashes, leaf level first

    def to_json(self) -> dict:
        return {"index": self.index, "size": self.size, "path": [p.hex() for p in self.path]}

    @classmethod
    def from_json(cls, d: dict) -> InclusionProof:
        return cls(int(d["index"]), int(d["size"]), tuple(bytes.fromhex(p) for p in d["path"]))


def _path(index: int, hashes: list[bytes]) -> list[bytes]:
    if len(hashes) == 1:
        return []
    k = _split(len(hashes))
    if index < k:
        return _path(index, hashes[:k]) + [_root(hashes[k:])]
    return _path(index - k, hashes[k:]) + [_root(hashes[:k])]


def inclusion_proof(leaves: list[bytes], index: int) -> InclusionProof:
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} outside a tree of {len(leaves)} leaves")
    return InclusionProof(index, len(leaves), tuple(_path(index, [leaf_hash(x) for x in leaves])))


def verify_inclusion(leaf: bytes, proof: InclusionProof, root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: recompute the root from the leaf and its audit path."""
    if not 0 <= proof.index < proof.size:
        return False
    fn, sn = proof.index, proof.size - 1
    r = leaf_hash(leaf)
    for p in proof.path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root
