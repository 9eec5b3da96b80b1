"""Re-derive everything a ledger claims and name the first entry where it stops holding.

Verification trusts nothing in the file: each line must be valid UTF-8 JSON in RFC 8785
canonical form, its hash must recompute, its ``prev_hash`` must be the previous entry's
hash, ``seq`` must run 1, 2, 3 … and time must never go backwards. The chain alone
cannot show entries cut from the end, so a head recorded elsewhere (the case database)
can be passed as ``expected_head``. It stops at the first failure: after a break, every
later entry is unproven anyway.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain_of_custody.canonical import canonical_bytes
from chain_of_custody.entry import (
    ENTRY_FIELDS,
    ENTRY_VERSION,
    GENESIS_HASH,
    HASH_RE,
    entry_hash,
    is_valid_action,
    parse_time,
)
from chain_of_custody.errors import LedgerError

CHECKS: tuple[str, ...] = (
    "every line ends with a newline (no torn final line)",
    "every line is valid UTF-8 JSON object",
    "every entry is in RFC 8785 canonical form",
    f"every entry has exactly the version-{ENTRY_VERSION} fields",
    "every entry's hash recomputes from its content",
    "seq runs 1, 2, 3 … without gaps, repeats or reordering",
    "every prev_hash equals the previous entry's hash (genesis: 64 zeros)",
    "time is UTC ISO 8601 and never goes backwards",
)


@dataclass
class VerificationReport:
    """The verdict, with enough detail to explain it to someone who was not there."""

    ok: bool
    entries: int  # entries that passed every check (all of them when ok)
    first_bad_seq: int | None = None  # seq the failing entry should have had
    reason: str | None = None
    checks: list[str] = field(default_factory=list)
    head: tuple[int, str] | None = None  # (seq, hash) of the last verified entry


class _Failure(Exception):
    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line bytes with newline, is last line) for each line."""
    with path.open("rb") as handle:
        number = 0
        current = handle.readline()
        while current:
            nxt = handle.readline()
            number += 1
            yield number, current, not nxt
            current = nxt


def _parse(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8"))


def _seq_later(rest: Iterator[tuple[int, bytes, bool]], wanted: int) -> bool:
    """Whether an entry with seq ``wanted`` turns up further down the file."""
    for _, raw, _ in rest:
        try:
            entry = _parse(raw)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("seq") == wanted:
            return True
    return False


def _check_entry(
    entry: Any,
    raw: bytes,
    number: int,
    expected: int,
    prev_hash: str,
    prev_time: str | None,
    seen: set[int],
    rest: Iterator[tuple[int, bytes, bool]],
) -> None:
    where = f"entry {expected}"
    if not isinstance(entry, dict):
        raise _Failure(expected, f"line {number}: not a JSON object")
    if entry.get("v") != ENTRY_VERSION:
        raise _Failure(expected, f"{where}: unsupported entry version {entry.get('v')!r}")
    if set(entry) != set(ENTRY_FIELDS):
        missing = sorted(set(ENTRY_FIELDS) - set(entry))
        extra = sorted(set(entry) - set(ENTRY_FIELDS))
        raise _Failure(expected, f"{where}: wrong fields (missing {missing}, unexpected {extra})")
    try:
        canonical = canonical_bytes(entry)
    except LedgerError as exc:
        raise _Failure(expected, f"{where}: not representable as canonical JSON: {exc}") from exc
    if canonical != raw.rstrip(b"\n"):
        raise _Failure(
            expected, f"{where}: not in RFC 8785 canonical form (line rewritten or edited)"
        )
    stored = entry["hash"]
    if not isinstance(stored, str) or entry_hash(entry) != stored:
        raise _Failure(expected, f"{where}: hash mismatch (entry was edited)")

    seq = entry["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise _Failure(expected, f"{where}: seq {seq!r} is not an integer")
    if seq != expected:
        if seq in seen:
            raise _Failure(
                expected,
                f"{where}: duplicate sequence number {seq} (an entry was inserted or replayed)",
            )
        if seq > expected and not _seq_later(rest, expected):
            raise _Failure(
                expected, f"{where}: sequence gap: expected {expected}, found {seq} (entry removed)"
            )
        raise _Failure(
            expected, f"{where}: out of order: expected {expected}, found {seq} (entries reordered)"
        )
    if entry["prev_hash"] != prev_hash:
        raise _Failure(
            expected,
            f"{where}: prev_hash does not match the hash of "
            + ("the genesis value" if expected == 1 else f"entry {expected - 1}")
            + " (chain broken: entry inserted or replaced)",
        )
    if not isinstance(stored, str) or not HASH_RE.fullmatch(stored):
        raise _Failure(expected, f"{where}: hash is not 64 lower-case hex digits")
    if not is_valid_action(entry["action"]):
        raise _Failure(expected, f"{where}: action {entry['action']!r} is not a dotted name")
    try:
        parse_time(entry["time"])
    except ValueError as exc:
        raise _Failure(expected, f"{where}: {exc}") from exc
    if prev_time is not None and entry["time"] < prev_time:
        raise _Failure(
            expected,
            f"{where}: time goes backwards ({entry['time']} is before entry {expected - 1}'s "
            f"{prev_time}; clock stepped back or entries reordered)",
        )


def verify_ledger(
    path: Path | str, expected_head: tuple[int, str] | None = None
) -> VerificationReport:
    """Check the whole ledger; OSError if it cannot be read at all.

    ``expected_head`` is (seq, hash) as recorded outside the ledger. The ledger may have
    grown since (later entries are fine), but the entry at that seq must exist and
    carry that hash.
    """
    path = Path(path)
    checks = list(CHECKS)
    if expected_head is not None:
        checks.append(f"entry {expected_head[0]} exists and has the recorded hash")
    expected, prev_hash, prev_time = 1, GENESIS_HASH, None
    seen: set[int] = set()
    lines = _lines(path)
    try:
        for number, raw, is_last in lines:
            if not raw.endswith(b"\n"):
                raise _Failure(
                    expected,
                    f"entry {expected}: truncated/torn final line (no newline at end of file)",
                )
            try:
                entry = _parse(raw)
            except ValueError as exc:
                if is_last:
                    raise _Failure(
                        expected,
                        f"entry {expected}: truncated/torn final line (not valid JSON: {exc})",
                    ) from exc
                raise _Failure(expected, f"line {number}: not valid JSON ({exc})") from exc
            _check_entry(entry, raw, number, expected, prev_hash, prev_time, seen, lines)
            seen.add(expected)
            prev_hash, prev_time = entry["hash"], entry["time"]
            if (
                expected_head is not None
                and expected == expected_head[0]
                and prev_hash != expected_head[1]
            ):
                raise _Failure(
                    expected,
                    f"entry {expected}: hash differs from the head the case recorded "
                    "(ledger rewritten from here on)",
                )
            expected += 1
    except _Failure as failure:
        return VerificationReport(
            ok=False,
            entries=expected - 1,
            first_bad_seq=failure.seq,
            reason=failure.reason,
            checks=checks,
            head=(expected - 1, prev_hash) if expected > 1 else None,
        )
    finally:
        lines.close()
    count = expected - 1
    head = (count, prev_hash) if count else (0, GENESIS_HASH)
    if expected_head is not None and count < expected_head[0]:
        return VerificationReport(
            ok=False,
            entries=count,
            first_bad_seq=count + 1,
            reason=(
                f"ledger ends at entry {count} but the case records {expected_head[0]} "
                "entries (entries removed from the end)"
            ),
            checks=checks,
            head=head,
        )
    return VerificationReport(ok=True, entries=count, checks=checks, head=head)
