"""Merkle trees over result records, so one ledger entry provably covers every finding.

A batch entry in the ledger stores only the root; anyone holding one result record and
its inclusion proof can show the record was part of that batch, without the rest.

The tree is RFC 6962's (Certificate Transparency) so its security arguments carry over:

* leaf hash = SHA-256(0x00 ‖ RFC 8785 bytes of the record),
* node hash = SHA-256(0x01 ‖ left ‖ right) — the prefixes keep a leaf from posing as a
  node (second-preimage attack),
* n > 1 leaves split at k, the largest power of two smaller than n: left subtree over
  the first k leaves, right over the rest (odd leaves are not duplicated, unlike
  Bitcoin's tree, which lets two different lists share a root),
* the root of no leaves is SHA-256 of the empty string.

A proof is a list of ``{"side": "left" | "right", "hash": hex}`` from the leaf upwards;
``side`` says where the sibling sits, so it encodes the leaf's position.
"""

from __future__ import annotations

import hashlib
from typing import Any

from chain_of_custody.canonical import canonical_bytes

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_HASH_SIZE = 32


def leaf_hash(record: dict[str, Any]) -> bytes:
    """The RFC 6962 leaf hash of one result record (its canonical JSON)."""
    return canonical_leaf_hash(canonical_bytes(record))


def canonical_leaf_hash(canonical: bytes) -> bytes:
    """:func:`leaf_hash` of a record already in canonical JSON (canonicalise once)."""
    return hashlib.sha256(_LEAF_PREFIX + canonical).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_leaves(leaf_hashes: list[bytes]) -> None:
    for i, leaf in enumerate(leaf_hashes):
        if not isinstance(leaf, bytes) or len(leaf) != _HASH_SIZE:
            raise ValueError(f"leaf {i} is not a 32-byte SHA-256 digest (use leaf_hash())")


def _root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node_hash(_root(leaves[:k]), _root(leaves[k:]))


def merkle_root(leaf_hashes: list[bytes]) -> str:
    """Hex root over leaf hashes in order (order matters: it is the batch's order)."""
    _check_leaves(leaf_hashes)
    return _root(list(leaf_hashes)).hex()


def inclusion_proof(leaf_hashes: list[bytes], index: int) -> list[dict[str, str]]:
    """The sibling hashes that lead from leaf ``index`` to the root (RFC 6962 path)."""
    _check_leaves(leaf_hashes)
    if isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(f"index must be an int, not {type(index).__name__}")
    if not 0 <= index < len(leaf_hashes):
        raise ValueError(f"index {index} is outside 0..{len(leaf_hashes) - 1}")
    proof: list[dict[str, str]] = []
    leaves = list(leaf_hashes)
    # Walk down from the root, then reverse so the proof reads leaf → root.
    while len(leaves) > 1:
        k = _split(len(leaves))
        if index < k:
            proof.append({"side": "right", "hash": _root(leaves[k:]).hex()})
            leaves = leaves[:k]
        else:
            proof.append({"side": "left", "hash": _root(leaves[:k]).hex()})
            leaves = leaves[k:]
            index -= k
    proof.reverse()
    return proof


def verify_inclusion(leaf_hash: bytes, proof: list[dict[str, str]], root: str) -> bool:
    """True when ``proof`` leads from ``leaf_hash`` to ``root``; False for any mismatch.

    A malformed proof (unknown side, bad hex, wrong length) is a failed proof, not an
    exception: proofs arrive from outside, and the answer to a bad one is "not proven".
    """
    if not isinstance(leaf_hash, bytes) or len(leaf_hash) != _HASH_SIZE:
        raise ValueError("leaf_hash must be a 32-byte SHA-256 digest (use leaf_hash())")
    current = leaf_hash
    try:
        for step in proof:
            sibling = bytes.fromhex(step["hash"])
            if len(sibling) != _HASH_SIZE:
                return False
            if step["side"] == "left":
                current = _node_hash(sibling, current)
            elif step["side"] == "right":
                current = _node_hash(current, sibling)
            else:
                return False
        return current.hex() == root.lower()
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
