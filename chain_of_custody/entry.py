"""What one ledger entry is: its fields, its hash, its time format.

Shared by the writer (:mod:`chain_of_custody.ledger`) and the verifier
(:mod:`chain_of_custody.verify`) so the two can never disagree about what is hashed.

An entry (format version 2) is a JSON object with exactly these fields:

``v``                2, the entry format version
``seq``              1, 2, 3 … consecutive from the start of the ledger
``time``             UTC, ISO 8601 with microseconds and ``Z`` (``2026-11-28T12:00:00.000000Z``)
``actor``            who acted: ``examiner``, ``examiner_id``, ``key_fingerprint`` (+ ``user``)
``action``           dotted lower-case verb, e.g. ``evidence.registered``, ``batch.analysed``
``subject``          the evidence location acted on, or ``null``
``details``          parameters and results of the step (counts, hashes, Merkle roots …)
``tool``             tool name, version and library versions in force
``host``             ``socket.gethostname()`` of the writing machine
``prev_hash``        ``hash`` of the previous entry; :data:`GENESIS_HASH` for the first
``hash``             SHA-256 hex of the RFC 8785 bytes of the entry without its seal fields
``key_fingerprint``  SHA-256 hex of the signer's raw Ed25519 public key
``signature``        Ed25519 signature (hex) over the same RFC 8785 bytes ``hash`` covers

Seal fields (:data:`SEAL_FIELDS`: ``hash``, ``signature``, ``key_fingerprint``) are left
out of the hashed body, so hash and signature cover exactly the same bytes. The signer's
identity is bound by the hash through ``actor.key_fingerprint``; a verifier checks that it
equals the entry's ``key_fingerprint``. docs/LEDGER_FORMAT.md is the full specification.

Time: the writer records the real clock, even when it reads earlier than the previous
entry's time. Writing a corrected time would be a false statement in a court record;
instead the verifier reports a backwards step as a failure, so the clock problem is
seen and explained rather than hidden.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from chain_of_custody.canonical import canonical_bytes, sha256_hex

ENTRY_VERSION = 2

#: ``prev_hash`` of entry 1: there is no previous entry, and 64 zeros cannot be a
#: SHA-256 anyone can produce a preimage for.
GENESIS_HASH = "0" * 64

#: Fields of a version-1 entry, in the order a reader meets them in the docs.
ENTRY_FIELDS: tuple[str, ...] = (
    "v",
    "seq",
    "time",
    "actor",
    "action",
    "subject",
    "details",
    "tool",
    "host",
    "prev_hash",
    "hash",
    "key_fingerprint",
    "signature",
)

#: Fields that seal an entry rather than describe it; never part of the hashed body.
SEAL_FIELDS: frozenset[str] = frozenset({"hash", "signature", "key_fingerprint"})

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_ACTION_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
HASH_RE = re.compile(r"[0-9a-f]{64}")


def hashed_body(entry: dict[str, Any]) -> dict[str, Any]:
    """The part of an entry its hash and its signature cover."""
    return {key: value for key, value in entry.items() if key not in SEAL_FIELDS}


def signed_bytes(entry: dict[str, Any]) -> bytes:
    """The RFC 8785 bytes of the hashed body: what ``hash`` digests and the key signs."""
    return canonical_bytes(hashed_body(entry))


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 hex over the canonical bytes of the entry's hashed body."""
    return sha256_hex(signed_bytes(entry))


def format_time(moment: datetime) -> str:
    """Fixed-width UTC text, so entries sort and compare as plain strings too."""
    if moment.tzinfo is None:
        raise ValueError("ledger times must be timezone-aware")
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time`; ValueError for any other spelling."""
    if not isinstance(text, str) or not _TIME_RE.fullmatch(text):
        raise ValueError(f"time {text!r} is not UTC ISO 8601 with microseconds and Z")
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


def is_valid_action(action: object) -> bool:
    """Dotted lower-case names only, so reports can group and filter actions reliably."""
    return isinstance(action, str) and _ACTION_RE.fullmatch(action) is not None
