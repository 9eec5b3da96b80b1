"""The append-only custody ledger: one hash-chained JSON line per step of the work.

File format: UTF-8 JSON Lines; each line is the RFC 8785 canonical JSON of one entry
(see :mod:`chain_of_custody.entry` for the fields) followed by ``\\n``. Every entry is
signed by the examiner's Ed25519 key (:class:`chain_of_custody.keys.Signer`).

Durability and ordering, because a lost or forked record is worse than a slow one:

* every append holds an exclusive ``fcntl.flock`` on the sidecar ``<ledger>.lock``
  (a separate file, so readers and the ledger's own descriptors never carry the lock);
* under the lock it re-reads the tail — another process may have appended since this
  object last looked — so the chain never forks;
* the whole line goes out in one ``os.write`` on an ``O_APPEND`` descriptor, then
  ``os.fsync`` (a group commit, :meth:`CustodyLedger.append_many`, writes its consecutive
  lines in one ``os.write`` and one ``os.fsync``); when the append created the file,
  the directory is fsynced too so the file's name survives a crash (later appends
  change only the file, whose size and data the file's own fsync makes durable);
* reading the head (``refresh``) holds the same lock shared, so a reader never takes
  an append in progress for a torn line;
* a torn final line (crash mid-write) is reported with :class:`TornLedgerError`, never
  truncated or completed: the damaged file is itself evidence.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chain_of_custody.canonical import canonical_bytes, sha256_hex
from chain_of_custody.entry import (
    ENTRY_VERSION,
    GENESIS_HASH,
    HASH_RE,
    entry_hash,
    format_time,
    is_valid_action,
    signed_bytes,
)
from chain_of_custody.errors import LedgerError, TornLedgerError
from chain_of_custody.keys import Signer

_TAIL_CHUNK = 64 * 1024


def lock_path(path: Path) -> Path:
    """The sidecar lock file every writer of ``path`` must hold."""
    return path.with_name(path.name + ".lock")


def _read_last_line(fd: int, path: Path) -> tuple[int, bytes] | None:
    """(offset, bytes without newline) of the final line; None for an empty file."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    if os.pread(fd, 1, size - 1) != b"\n":
        start = _line_start(fd, size)
        raise TornLedgerError(str(path), start, "no newline at end of file")
    start = _line_start(fd, size - 1)
    return start, os.pread(fd, size - 1 - start, start)


def _line_start(fd: int, end: int) -> int:
    """Offset just after the last newline before ``end`` (0 when there is none)."""
    pos = end
    while pos > 0:
        begin = max(0, pos - _TAIL_CHUNK)
        chunk = os.pread(fd, pos - begin, begin)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            return begin + cut + 1
        pos = begin
    return 0


def _tail(path: Path) -> tuple[int, str, str | None]:
    """(seq, hash, time) of the last entry, or (0, GENESIS_HASH, None) for no entries."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0, GENESIS_HASH, None
    try:
        last = _read_last_line(fd, path)
    finally:
        os.close(fd)
    if last is None:
        return 0, GENESIS_HASH, None
    offset, raw = last
    try:
        entry = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise TornLedgerError(str(path), offset, f"final line is not valid JSON: {exc}") from exc
    if not isinstance(entry, dict):
        raise TornLedgerError(str(path), offset, "final line is not a JSON object")
    seq, stored, when = entry.get("seq"), entry.get("hash"), entry.get("time")
    if (
        isinstance(seq, bool)
        or not isinstance(seq, int)
        or seq < 1
        or not isinstance(stored, str)
        or not HASH_RE.fullmatch(stored)
        or not isinstance(when, str)
    ):
        raise LedgerError(f"{path}: final entry lacks a valid seq, hash or time")
    try:
        recomputed = entry_hash(entry)
    except LedgerError as exc:
        raise LedgerError(f"{path}: final entry (seq {seq}) cannot be hashed: {exc}") from exc
    if recomputed != stored:
        raise LedgerError(
            f"{path}: final entry (seq {seq}) does not match its hash; refusing to extend "
            "a damaged chain (run python -m chain_of_custody verify)"
        )
    return seq, stored, when


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_str_dict(name: str, value: object) -> None:
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{name} must be a non-empty dict")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise ValueError(f"{name} must map str to str; got {key!r}: {item!r}")


class CustodyLedger:
    """Appends hash-chained entries to one ledger file, safely across processes.

    ``head`` is what this object last wrote or read; another process appending to the
    same file is picked up at the next :meth:`append`, which always re-reads the tail
    under the lock.
    """

    def __init__(self, path: Path, signer: Signer, tool: dict[str, Any],
                 actor: dict[str, str] | None = None) -> None:
        """``actor`` adds to what the signer's identity says (e.g. the login name)."""
        if not isinstance(signer, Signer):
            raise ValueError("every entry is signed: pass the examiner's Signer")
        if actor is not None:
            _check_str_dict("actor", actor)
        if not isinstance(tool, dict) or not {"name", "version"} <= tool.keys():
            raise ValueError("tool must be a dict with at least 'name' and 'version'")
        canonical_bytes(tool)  # refuse a tool record the ledger could never hash
        self.path = Path(path)
        self.signer = signer
        self.actor = {**(actor or {}), **signer.actor()}
        self.tool = dict(tool)
        self.host = socket.gethostname()
        self.refresh()

    @property
    def head(self) -> tuple[int, str]:
        """(last seq, last entry hash); (0, GENESIS_HASH) for an empty ledger.

        Store it somewhere else (the case database): verifying against it is what
        reveals entries cut from the end, which the chain alone cannot show.
        """
        return self._head

    def refresh(self) -> tuple[int, str]:
        """Re-read the file's last entry (others may have appended) and return the head.

        Holds the lock shared while reading: an append in progress in another process can
        otherwise show a half-written final line, which would read as a torn ledger.
        """
        with _no_append_in_progress(self.path):
            seq, digest, _ = _tail(self.path)
        self._head = (seq, digest)
        return self._head

    def append(
        self,
        action: str,
        subject: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record one step durably and return the entry as written (with its hash)."""
        return self.append_many([(action, subject, details)])[0]

    def append_many(
        self, steps: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]
    ) -> list[dict[str, Any]]:
        """Record several steps as consecutive entries with one write and one fsync.

        Group commit (issue 17): a driver taking in many finished batches at once pays
        one fsync for all of them. The entries are durable together when this returns;
        a crash during the write leaves whole earlier lines and at most one torn final
        line, exactly as for a single append.
        """
        if not steps:
            return []
        for action, subject, details in steps:
            if not is_valid_action(action):
                raise ValueError(
                    f"action {action!r} must be dotted lower-case, e.g. 'batch.analysed'")
            if subject is not None and not isinstance(subject, dict):
                raise ValueError("subject must be an evidence location dict or None")
            if details is not None and not isinstance(details, dict):
                raise ValueError("details must be a dict or None")
            # Fail on unhashable input before taking the lock or touching the file.
            canonical_bytes({"subject": subject, "details": details})

        lock_fd = os.open(lock_path(self.path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            return self._append_locked(steps)
        finally:
            os.close(lock_fd)  # closing releases the flock

    def _append_locked(
        self, steps: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]
    ) -> list[dict[str, Any]]:
        seq, prev_hash, _ = _tail(self.path)
        lines = []
        for action, subject, details in steps:
            seq += 1
            line, prev_hash = self._entry_line(seq, prev_hash, action, subject, details)
            lines.append(line)
        data = b"".join(lines)

        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise LedgerError(
                    f"{self.path}: short write ({written} of {len(data)} bytes) for entries "
                    f"{seq - len(lines) + 1}-{seq}; the ledger now ends in a torn line"
                )
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)
        self._head = (seq, prev_hash)
        # Hand back independent copies: the caller must not be able to alter our actor.
        return [json.loads(line) for line in lines]

    def _entry_line(self, seq: int, prev_hash: str, action: str,
                    subject: dict[str, Any] | None, details: dict[str, Any] | None
                    ) -> tuple[bytes, str]:
        """One signed entry as its canonical JSON line, and its hash."""
        entry: dict[str, Any] = {
            "v": ENTRY_VERSION,
            "seq": seq,
            "time": format_time(datetime.now(UTC)),
            "actor": self.actor,
            "action": action,
            "subject": subject,
            "details": details if details is not None else {},
            "tool": self.tool,
            "host": self.host,
            "prev_hash": prev_hash,
        }
        body = signed_bytes(entry)
        entry["hash"] = sha256_hex(body)
        entry["key_fingerprint"] = self.signer.fingerprint
        entry["signature"] = self.signer.sign(body)
        return canonical_bytes(entry) + b"\n", entry["hash"]


@contextmanager
def _no_append_in_progress(path: Path) -> Iterator[None]:
    """Hold the writers' lock shared: no line of ``path`` is half-written meanwhile.

    The lock file is opened read-only and never created, so a reader leaves no trace;
    without one, nobody has appended through this module.
    """
    try:
        lock_fd = os.open(lock_path(path), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        yield
        return
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(lock_fd)


def read_entries(path: Path | str) -> Iterator[dict[str, Any]]:
    """Yield the entries in file order, without checking hashes (use verify_ledger).

    Raises :class:`TornLedgerError` at a torn final line and :class:`LedgerError` at
    any other line that is not a JSON object.
    """
    path = Path(path)
    with _no_append_in_progress(path):  # read up to a size no writer is extending
        end = path.stat().st_size
    offset = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if offset >= end:  # appended after we looked: not part of this reading
                return
            raw = raw[: end - offset]
            if not raw.endswith(b"\n"):
                raise TornLedgerError(str(path), offset, "no newline at end of file")
            try:
                entry = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                if offset + len(raw) >= end:
                    raise TornLedgerError(
                        str(path), offset, f"final line is not valid JSON: {exc}"
                    ) from exc
                raise LedgerError(f"{path}: line {number} is not valid JSON: {exc}") from exc
            if not isinstance(entry, dict):
                raise LedgerError(f"{path}: line {number} is not a JSON object")
            offset += len(raw)
            yield entry
