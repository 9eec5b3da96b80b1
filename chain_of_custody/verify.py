"""Re-derive everything a ledger claims and name the first entry where it stops holding.

Verification trusts nothing in the file: each line must be valid UTF-8 JSON in RFC 8785
canonical form, its hash must recompute, it must be signed by a key the case knows (and
the one its actor names), its ``prev_hash`` must be the previous entry's hash, ``seq``
must run 1, 2, 3 … and time must never go backwards. The chain alone cannot show entries
cut from the end, so a head recorded elsewhere (the case database, the export) can be
passed as ``expected_head``. It stops at the first failure: after a break, every later
entry is unproven anyway.

Runnable on its own, with nothing else of exhibit installed::

    python -m chain_of_custody.verify EXPORT.json            # a `ledger export --format json`
    python -m chain_of_custody.verify CASE/ledger.jsonl      # keys from CASE/keys/
    python -m chain_of_custody.verify EXPORT.json --proof PROOF.json   # one finding covered?

Exit status: 0 verified, 1 verification failed (the entry is named), 2 usage or I/O error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chain_of_custody.canonical import canonical_bytes, sha256_hex
from chain_of_custody.entry import (
    ENTRY_FIELDS,
    ENTRY_VERSION,
    GENESIS_HASH,
    HASH_RE,
    is_valid_action,
    parse_time,
    signed_bytes,
)
from chain_of_custody.errors import LedgerError
from chain_of_custody.keys import load_key_records, read_key_dir, verify_signature
from chain_of_custody.merkle import leaf_hash, verify_inclusion

EXPORT_FORMAT = "exhibit-custody-ledger"
PROOF_FORMAT = "exhibit-inclusion-proof"

CHECKS: tuple[str, ...] = (
    "every line ends with a newline (no torn final line)",
    "every line is valid UTF-8 JSON object",
    "every entry is in RFC 8785 canonical form",
    f"every entry has exactly the version-{ENTRY_VERSION} fields",
    "every entry's hash recomputes from its content",
    "every entry is signed (Ed25519) by a key known to the case, the one its actor names",
    "seq runs 1, 2, 3 … without gaps, repeats or reordering",
    "every prev_hash equals the previous entry's hash (genesis: 64 zeros)",
    "time is UTC ISO 8601 and never goes backwards",
)
_EXPORT_CHECKS: tuple[str, ...] = (
    "every public key record's fingerprint and self-signature hold",
    "the export ends at the head the case recorded",
    "the export seal is a known key's signature over the whole export",
)

Keys = Mapping[str, Ed25519PublicKey]


@dataclass
class VerificationReport:
    """The verdict, with enough detail to explain it to someone who was not there."""

    ok: bool
    entries: int  # entries that passed every check (all of them when ok)
    first_bad_seq: int | None = None  # seq the failing entry should have had
    reason: str | None = None
    checks: list[str] = field(default_factory=list)
    head: tuple[int, str] | None = None  # (seq, hash) of the last verified entry
    signers: dict[str, int] = field(default_factory=dict)  # fingerprint → entries signed
    first_time: str | None = None
    last_time: str | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-ready form (what an export embeds)."""
        return {
            "ok": self.ok, "entries": self.entries, "first_bad_seq": self.first_bad_seq,
            "reason": self.reason, "checks": list(self.checks),
            "head": None if self.head is None else {"seq": self.head[0], "hash": self.head[1]},
            "signers": dict(sorted(self.signers.items())),
            "first_time": self.first_time, "last_time": self.last_time,
        }


class _Failure(Exception):
    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


# Items fed to the checker: (line number, raw line bytes or None, parsed entry or error, last).
_Item = tuple[int, bytes | None, Any, bool]


def _lines(path: Path) -> Iterator[_Item]:
    with path.open("rb") as handle:
        number = 0
        current = handle.readline()
        while current:
            nxt = handle.readline()
            number += 1
            yield number, current, None, not nxt
            current = nxt


def _parse(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8"))


def _seq_later(rest: Iterator[_Item], wanted: int) -> bool:
    """Whether an entry with seq ``wanted`` turns up further down."""
    for _, raw, parsed, _ in rest:
        try:
            entry = _parse(raw) if raw is not None else parsed
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("seq") == wanted:
            return True
    return False


class _Checker:
    """The running state of one pass over the entries."""

    def __init__(self, keys: Keys, trusted: set[str] | None,
                 expected_head: tuple[int, str] | None) -> None:
        self.keys = keys
        self.expected_head = expected_head
        self.trusted = trusted
        self.expected = 1
        self.prev_hash = GENESIS_HASH
        self.prev_time: str | None = None
        self.first_time: str | None = None
        self.seen: set[int] = set()
        self.signers: Counter[str] = Counter()

    def check(self, entry: Any, raw: bytes | None, number: int, rest: Iterator[_Item]) -> None:
        expected = self.expected
        where = f"entry {expected}"
        if not isinstance(entry, dict):
            raise _Failure(expected, f"line {number}: not a JSON object")
        if entry.get("v") != ENTRY_VERSION:
            raise _Failure(expected, f"{where}: unsupported entry version {entry.get('v')!r}")
        if set(entry) != set(ENTRY_FIELDS):
            missing = sorted(set(ENTRY_FIELDS) - set(entry))
            extra = sorted(set(entry) - set(ENTRY_FIELDS))
            raise _Failure(expected,
                           f"{where}: wrong fields (missing {missing}, unexpected {extra})")
        try:
            canonical = canonical_bytes(entry)
        except LedgerError as exc:
            raise _Failure(expected,
                           f"{where}: not representable as canonical JSON: {exc}") from exc
        if raw is not None and canonical != raw.rstrip(b"\n"):
            raise _Failure(
                expected, f"{where}: not in RFC 8785 canonical form (line rewritten or edited)"
            )
        body = signed_bytes(entry)
        stored = entry["hash"]
        if not isinstance(stored, str) or sha256_hex(body) != stored:
            raise _Failure(expected, f"{where}: hash mismatch (entry was edited)")
        self._check_signature(entry, body, where, expected)

        seq = entry["seq"]
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise _Failure(expected, f"{where}: seq {seq!r} is not an integer")
        if seq != expected:
            if seq in self.seen:
                raise _Failure(
                    expected,
                    f"{where}: duplicate sequence number {seq} (an entry was inserted or"
                    " replayed)",
                )
            if seq > expected and not _seq_later(rest, expected):
                raise _Failure(
                    expected,
                    f"{where}: sequence gap: expected {expected}, found {seq} (entry removed)",
                )
            raise _Failure(
                expected,
                f"{where}: out of order: expected {expected}, found {seq} (entries reordered)",
            )
        if entry["prev_hash"] != self.prev_hash:
            raise _Failure(
                expected,
                f"{where}: prev_hash does not match the hash of "
                + ("the genesis value" if expected == 1 else f"entry {expected - 1}")
                + " (chain broken: entry inserted or replaced)",
            )
        if not HASH_RE.fullmatch(stored):
            raise _Failure(expected, f"{where}: hash is not 64 lower-case hex digits")
        if not is_valid_action(entry["action"]):
            raise _Failure(expected, f"{where}: action {entry['action']!r} is not a dotted name")
        try:
            parse_time(entry["time"])
        except ValueError as exc:
            raise _Failure(expected, f"{where}: {exc}") from exc
        if self.prev_time is not None and entry["time"] < self.prev_time:
            raise _Failure(
                expected,
                f"{where}: time goes backwards ({entry['time']} is before entry"
                f" {expected - 1}'s {self.prev_time}; clock stepped back or entries reordered)",
            )
        head = self.expected_head
        if head is not None and expected == head[0] and stored != head[1]:
            raise _Failure(expected, f"{where}: hash differs from the head the case recorded"
                                     " (ledger rewritten from here on)")
        self.seen.add(expected)
        self.signers[entry["key_fingerprint"]] += 1
        self.prev_hash, self.prev_time = stored, entry["time"]
        self.first_time = self.first_time or entry["time"]
        self.expected += 1

    def _check_signature(self, entry: dict[str, Any], body: bytes, where: str,
                         expected: int) -> None:
        fp = entry["key_fingerprint"]
        if not isinstance(fp, str) or not HASH_RE.fullmatch(fp):
            raise _Failure(expected, f"{where}: key_fingerprint is not 64 lower-case hex digits")
        actor = entry["actor"]
        if not isinstance(actor, dict) or actor.get("key_fingerprint") != fp:
            raise _Failure(
                expected,
                f"{where}: signed by key {fp[:16]}… but its actor names"
                f" {actor.get('key_fingerprint') if isinstance(actor, dict) else None!r}"
                " (re-signed by someone else)",
            )
        key = self.keys.get(fp)
        if key is None:
            raise _Failure(
                expected,
                f"{where}: signed by unknown key {fp} (not among the case's public keys)",
            )
        if self.trusted is not None and fp not in self.trusted:
            raise _Failure(expected, f"{where}: signed by key {fp}, which is not trusted")
        if not verify_signature(key, entry["signature"], body):
            raise _Failure(expected, f"{where}: signature does not verify (entry was edited"
                                     " or re-signed)")


def _run(items: Iterator[_Item], keys: Keys, trusted: set[str] | None,
         expected_head: tuple[int, str] | None, checks: list[str]) -> VerificationReport:
    checker = _Checker(keys, trusted, expected_head)

    def report_failure(failure: _Failure) -> VerificationReport:
        done = checker.expected - 1
        return VerificationReport(
            ok=False, entries=done, first_bad_seq=failure.seq, reason=failure.reason,
            checks=checks, head=(done, checker.prev_hash) if done else None,
            signers=dict(checker.signers), first_time=checker.first_time,
            last_time=checker.prev_time,
        )

    try:
        for number, raw, parsed, is_last in items:
            expected = checker.expected
            entry = parsed
            if raw is not None:
                if not raw.endswith(b"\n"):
                    raise _Failure(expected, f"entry {expected}: truncated/torn final line"
                                             " (no newline at end of file)")
                try:
                    entry = _parse(raw)
                except ValueError as exc:
                    if is_last:
                        raise _Failure(expected, f"entry {expected}: truncated/torn final line"
                                                 f" (not valid JSON: {exc})") from exc
                    raise _Failure(expected, f"line {number}: not valid JSON ({exc})") from exc
            checker.check(entry, raw, number, items)
    except _Failure as failure:
        return report_failure(failure)
    count = checker.expected - 1
    if expected_head is not None and count < expected_head[0]:
        return report_failure(_Failure(
            count + 1,
            f"ledger ends at entry {count} but the case records {expected_head[0]} entries"
            " (entries removed from the end)",
        ))
    return VerificationReport(
        ok=True, entries=count, checks=checks,
        head=(count, checker.prev_hash) if count else (0, GENESIS_HASH),
        signers=dict(checker.signers), first_time=checker.first_time,
        last_time=checker.prev_time,
    )


def _with_head(checks: tuple[str, ...], head: tuple[int, str] | None) -> list[str]:
    out = list(checks)
    if head is not None:
        out.append(f"entry {head[0]} exists and has the recorded hash")
    return out


def verify_ledger(path: Path | str, expected_head: tuple[int, str] | None = None,
                  keys: Keys | None = None, trusted: Iterable[str] | None = None,
                  ) -> VerificationReport:
    """Check a JSON Lines ledger; OSError if it cannot be read at all.

    ``keys`` maps fingerprints to the public keys the case knows (see
    :func:`keys_from_dir`); an entry signed by any other key fails. ``expected_head`` is
    (seq, hash) as recorded outside the ledger: the ledger may have grown since, but the
    entry at that seq must exist and carry that hash.
    """
    lines = _lines(Path(path))
    try:
        return _run(lines, keys or {}, None if trusted is None else set(trusted),
                    expected_head, _with_head(CHECKS, expected_head))
    finally:
        lines.close()


def keys_from_dir(directory: Path | str) -> tuple[dict[str, Ed25519PublicKey], list[str]]:
    """(fingerprint → key, problems) from a case's ``keys/`` directory of key records."""
    keys, _, problems = load_key_records(read_key_dir(Path(directory)))
    return keys, problems


def verify_export(document: Mapping[str, Any], expected_head: tuple[int, str] | None = None,
                  trusted: Iterable[str] | None = None) -> VerificationReport:
    """Check a ``ledger export --format json`` document: keys, entries, head and seal."""
    if document.get("format") != EXPORT_FORMAT:
        raise ValueError(f"not an exhibit ledger export (format {document.get('format')!r})")
    keys, _, problems = load_key_records(document.get("public_keys") or [])
    recorded = document.get("head")
    head = expected_head
    if head is None and isinstance(recorded, dict):
        head = (recorded.get("seq"), recorded.get("hash"))  # type: ignore[assignment]
    entries = document.get("entries")
    checks = [*_EXPORT_CHECKS[:1], *_with_head(CHECKS[3:], head), *_EXPORT_CHECKS[2:]]
    if problems:
        return VerificationReport(ok=False, entries=0, first_bad_seq=None,
                                  reason="; ".join(problems), checks=checks)
    if not isinstance(entries, list):
        return VerificationReport(ok=False, entries=0, reason="export has no entries list",
                                  checks=checks)
    items = ((i + 1, None, e, i == len(entries) - 1) for i, e in enumerate(entries))
    report = _run(iter(items), keys, None if trusted is None else set(trusted), head, checks)
    if not report.ok:
        return report
    seal = document.get("export_seal")
    body = {k: v for k, v in document.items() if k != "export_seal"}
    problem = None
    if not isinstance(seal, dict) or seal.get("key_fingerprint") not in keys:
        problem = "export seal missing or made with a key not among the export's public keys"
    else:
        try:
            data = canonical_bytes(body)
        except LedgerError as exc:
            data, problem = b"", f"export is not representable as canonical JSON: {exc}"
        if problem is None and not verify_signature(keys[seal["key_fingerprint"]],
                                                    seal.get("signature"), data):
            problem = "export seal does not verify (the export was altered after it was written)"
    if problem is not None:
        report.ok = False
        report.reason = problem
        report.first_bad_seq = None
    return report


def check_proof(proof: Mapping[str, Any], entries: Mapping[int, Mapping[str, Any]]) -> str | None:
    """None when ``proof`` shows its record is covered by a verified batch entry; else why."""
    if proof.get("format") != PROOF_FORMAT:
        return f"not an exhibit inclusion proof (format {proof.get('format')!r})"
    seq = proof.get("ledger_seq")
    entry = entries.get(seq) if isinstance(seq, int) else None
    if entry is None:
        return f"the proof names ledger entry {seq!r}, which the verified ledger does not hold"
    where = f"entry {seq}"
    if entry.get("action") != "batch.analysed":
        return f"{where} is a {entry.get('action')!r}, not a batch.analysed entry"
    root = (entry.get("details") or {}).get("merkle_root")
    if proof.get("merkle_root") != root:
        return f"{where}: the proof's Merkle root is not the one the entry signed"
    record = proof.get("record")
    if not isinstance(record, dict):
        return "the proof carries no record"
    try:
        leaf = leaf_hash(record)
    except LedgerError as exc:
        return f"the proof's record has no canonical form: {exc}"
    if not isinstance(root, str) or not verify_inclusion(leaf, proof.get("proof") or [], root):
        return (f"{where}: the record is NOT covered by this entry's Merkle root (record or"
                " proof altered)")
    return None


# -- command line ------------------------------------------------------------------------


def _head_arg(text: str) -> tuple[int, str]:
    seq, sep, digest = text.partition(":")
    if not sep or not seq.isdigit() or not HASH_RE.fullmatch(digest):
        raise argparse.ArgumentTypeError("expected SEQ:HASH (HASH = 64 lower-case hex digits)")
    return int(seq), digest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ledger", help="an export (.json) or a ledger (.jsonl)")
    parser.add_argument("--keys", metavar="DIR", help="public key records for a .jsonl ledger"
                        " (default: keys/ beside it)")
    parser.add_argument("--expect-head", type=_head_arg, metavar="SEQ:HASH", default=None,
                        help="the last entry as recorded elsewhere (reveals a cut end)")
    parser.add_argument("--trust", action="append", metavar="FINGERPRINT", default=None,
                        help="accept only signatures by these key fingerprints (repeatable)")
    parser.add_argument("--proof", action="append", metavar="PROOF.json", default=[],
                        help="also check that a finding is covered (from `exhibit ledger"
                             " prove`); repeatable")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the verdict")


def _load_document(path: Path) -> dict[str, Any] | None:
    """The export document when ``path`` is one; None for a JSON Lines ledger."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    if b'"format"' not in head and b'"entries"' not in head:
        return None
    try:
        document = json.loads(path.read_bytes().decode("utf-8"))
    except ValueError:
        return None
    if isinstance(document, dict) and document.get("format") == EXPORT_FORMAT:
        return document
    return None


def run(args: argparse.Namespace) -> int:
    path = Path(args.ledger)
    try:
        document = _load_document(path)
        entries: dict[int, Mapping[str, Any]] = {}
        described: dict[str, dict[str, Any]] = {}
        if document is not None:
            report = verify_export(document, args.expect_head, args.trust)
            _, described, _ = load_key_records(document.get("public_keys") or [])
            listed = document.get("entries") or []
            entries = {e["seq"]: e for e in listed[: report.entries] if isinstance(e, dict)}
        else:
            key_dir = Path(args.keys) if args.keys else path.parent / "keys"
            keys, described, problems = load_key_records(read_key_dir(key_dir))
            for problem in problems:
                print(f"warning: {key_dir}: {problem} (ignored)", file=sys.stderr)
            report = verify_ledger(path, args.expect_head, keys, args.trust)
            if args.proof and report.ok:
                for entry in _lines(path):
                    parsed = _parse(entry[1] or b"")
                    entries[parsed["seq"]] = parsed
        proofs = [json.loads(Path(p).read_text(encoding="utf-8")) for p in args.proof]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"error: cannot read {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        for check in report.checks:
            print(f"  checked: {check}")
        for fp, count in sorted(report.signers.items()):
            who = described.get(fp, {})
            print(f"  signer: {fp}  {who.get('name', '?')} ({who.get('examiner_id', '?')},"
                  f" {who.get('agency') or 'no agency'})  {count} entries")
    if not report.ok:
        reason = report.reason or "unknown failure"
        if report.first_bad_seq is None:
            print(f"FAILED: {reason}")
        else:
            reason = reason.removeprefix(f"entry {report.first_bad_seq}: ")
            print(f"FAILED at entry {report.first_bad_seq}: {reason}")
        return 1
    for name, proof in zip(args.proof, proofs, strict=True):
        problem = check_proof(proof, entries) if isinstance(proof, dict) else "not a proof"
        if problem is not None:
            seq = proof.get("ledger_seq") if isinstance(proof, dict) else None
            at = f" at entry {seq}" if isinstance(seq, int) else ""
            print(f"FAILED{at}: proof {name}: {problem}")
            return 1
        if not args.quiet:
            print(f"  proof {name}: record covered by entry {proof['ledger_seq']}")
    print(f"OK: {report.entries} entries")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chain_of_custody.verify",
        description="Verify an exhibit custody ledger (export .json or ledger .jsonl).",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
