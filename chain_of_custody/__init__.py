"""What happened to the evidence, provably: the hash-chained custody ledger.

Usable on its own: verifying a ledger needs this package and nothing else of exhibit
(``python -m chain_of_custody verify LEDGER.jsonl``).

* :mod:`.canonical` — RFC 8785 bytes and SHA-256, the only form anything is hashed in
* :mod:`.entry` — the entry fields, hash and time format shared by writer and verifier
* :mod:`.ledger` — :class:`CustodyLedger`, the locked, fsynced append-only writer
* :mod:`.verify` — :func:`verify_ledger`, which names the first entry that fails
* :mod:`.merkle` — RFC 6962 trees so one entry covers a whole batch of results
"""

from __future__ import annotations

from chain_of_custody.canonical import canonical_bytes, sha256_hex
from chain_of_custody.entry import GENESIS_HASH, entry_hash
from chain_of_custody.errors import CanonicalizationError, LedgerError, TornLedgerError
from chain_of_custody.ledger import CustodyLedger, read_entries
from chain_of_custody.merkle import inclusion_proof, leaf_hash, merkle_root, verify_inclusion
from chain_of_custody.verify import VerificationReport, verify_ledger

__all__ = [
    "GENESIS_HASH",
    "CanonicalizationError",
    "CustodyLedger",
    "LedgerError",
    "TornLedgerError",
    "VerificationReport",
    "canonical_bytes",
    "entry_hash",
    "inclusion_proof",
    "leaf_hash",
    "merkle_root",
    "read_entries",
    "sha256_hex",
    "verify_inclusion",
    "verify_ledger",
]
