"""What happened to the evidence, provably: the signed, hash-chained custody ledger.

Usable on its own: verifying a ledger needs this package, ``cryptography`` and
``rfc8785``, and nothing else of exhibit (``python -m chain_of_custody.verify FILE``).

* :mod:`.canonical` — RFC 8785 bytes and SHA-256, the only form anything is hashed in
* :mod:`.entry` — the entry fields, hash and time format shared by writer and verifier
* :mod:`.keys` — examiner Ed25519 keys: fingerprints, signatures, the private key store
* :mod:`.ledger` — :class:`CustodyLedger`, the locked, fsynced, signing append-only writer
* :mod:`.verify` — :func:`verify_ledger`, which names the first entry that fails
* :mod:`.merkle` — RFC 6962 trees so one entry covers a whole batch of results

Names are imported lazily, so ``python -m chain_of_custody.verify`` runs the module
once, as a script, without a second copy imported by the package.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "GENESIS_HASH": "entry",
    "entry_hash": "entry",
    "canonical_bytes": "canonical",
    "sha256_hex": "canonical",
    "CanonicalizationError": "errors",
    "LedgerError": "errors",
    "TornLedgerError": "errors",
    "ExaminerKeyError": "keys",
    "KeyStore": "keys",
    "Signer": "keys",
    "CustodyLedger": "ledger",
    "read_entries": "ledger",
    "inclusion_proof": "merkle",
    "leaf_hash": "merkle",
    "merkle_root": "merkle",
    "verify_inclusion": "merkle",
    "VerificationReport": "verify",
    "verify_export": "verify",
    "verify_ledger": "verify",
}

__all__ = sorted(_EXPORTS)  # resolved on first use by __getattr__


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'chain_of_custody' has no attribute {name!r}")
    return getattr(import_module(f"chain_of_custody.{module}"), name)
