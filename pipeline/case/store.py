"""A case directory: its database, its custody ledger, and who is acting on it.

Layout::

    CASE/
      case.sqlite        evidence, volumes, files, results, errors, hash sets, matches,
                         evidence items and their custody state, examiner keys
      ledger.jsonl       the custody ledger (append-only, hash-chained, signed)
      ledger.jsonl.lock  lock file serialising appends
      keys/              public key records of everyone who signed in this case
      run.lock           held by a running ``triage`` (a second one is refused)
      exports/           exports written when no -o is given

Whoever acts on a case acts as an examiner with an Ed25519 key (``exhibit examiner
init``): the key signs every entry, and its public record is copied into ``keys/`` (and
the ledger) the first time it signs here. The database keeps the ledger's last known
head (sequence number and hash) so that ``exhibit ledger verify`` also catches entries
cut off the end of the ledger.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import shlex
import socket
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chain_of_custody.errors import LedgerError
from chain_of_custody.keys import ExaminerKeyError, KeyStore, Signer, config_dir
from chain_of_custody.ledger import CustodyLedger
from pipeline.case.database import CaseDatabase, utc_now
from pipeline.versions import tool_record

DB_NAME = "case.sqlite"
LEDGER_NAME = "ledger.jsonl"
KEYS_DIR = "keys"
RUN_LOCK = "run.lock"
THUMBNAIL_DIR = "thumbnails"  # <sha256>.jpg, written by the driver only
SCRATCH_DIR = "scratch"  # workers' spool files for large archive members; emptied each run

#: Custody tables (created on open; ``CREATE … IF NOT EXISTS`` so older cases gain them).
CUSTODY_SCHEMA = """
CREATE TABLE IF NOT EXISTS examiner_keys (
    fingerprint TEXT PRIMARY KEY,        -- SHA-256 hex of the raw Ed25519 public key
    examiner_id TEXT NOT NULL,
    name TEXT NOT NULL,
    record TEXT NOT NULL,                -- the self-signed public key record (JSON)
    first_seq INTEGER,                   -- the ledger entry that introduced the key
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence_items (
    item_id TEXT PRIMARY KEY,            -- UUID given at registration
    exhibit_number TEXT NOT NULL UNIQUE, -- the label on the bag, as the examiner wrote it
    evidence_id TEXT,                    -- SHA-256 of the media (evidence.id)
    description TEXT NOT NULL,
    seal TEXT, authority TEXT, seized_from TEXT, seized_at TEXT,
    collected_by TEXT NOT NULL,          -- examiner id of the registering examiner
    registered_seq INTEGER NOT NULL,
    holder TEXT NOT NULL,                -- examiner id or name currently responsible
    status TEXT NOT NULL,                -- in-store | checked-out | transfer-pending
    location TEXT,                       -- where it is, as last stated
    pending_to TEXT,                     -- recipient of a transfer not yet acknowledged
    pending_seq INTEGER,                 -- the transfer entry awaiting acknowledgement
    last_verified_at TEXT,
    last_verification TEXT               -- same | different | unavailable
);
"""


class CaseError(Exception):
    """A case directory that cannot be used as asked."""


class NoExaminerKeyError(CaseError):
    """Nobody to sign as: the run must not start (every entry is signed)."""


class CaseBusyError(CaseError):
    """Another ``triage`` holds the case."""


def default_examiner() -> str | None:
    """The examiner named by ``$EXHIBIT_EXAMINER`` (id, name or fingerprint), if any."""
    return os.environ.get("EXHIBIT_EXAMINER") or None


def _passphrase(examiner_id: str) -> bytes | None:
    secret = os.environ.get("EXHIBIT_KEY_PASSPHRASE")
    if secret:
        return secret.encode("utf-8")
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(f"Passphrase for examiner key {examiner_id!r}: ").encode("utf-8")
    return None


_SIGNERS: dict[tuple[str, str | None], Signer] = {}


def load_signer(examiner: str | None = None, create: bool = False,
                passphrase: Callable[[str], bytes | None] = _passphrase) -> Signer:
    """The key to sign with: ``examiner`` (or ``$EXHIBIT_EXAMINER``) in the key store.

    With ``create``, a missing key is made (named ``examiner``, or the login name),
    unencrypted unless ``$EXHIBIT_KEY_PASSPHRASE`` is set. Without it, a missing key is
    :class:`NoExaminerKeyError` with a message saying how to make one.
    """
    selector = examiner or default_examiner()
    store = KeyStore()
    cache_key = (str(store.directory), selector)
    if cache_key in _SIGNERS:
        return _SIGNERS[cache_key]
    try:
        identity = store.find(selector)
        if identity is None:
            if not create:
                who = f" for {selector!r}" if selector else ""
                raise NoExaminerKeyError(
                    f"no examiner key{who} in {store.directory}: every ledger entry is signed."
                    " Create one with `exhibit examiner init --name \"Your Name\"` (add"
                    " --agency/--badge-id), or pass --create-key to triage"
                )
            name = selector or getpass.getuser()
            secret = os.environ.get("EXHIBIT_KEY_PASSPHRASE")
            signer = store.create(name, passphrase=secret.encode("utf-8") if secret else None)
        else:
            signer = store.load(identity, passphrase)
    except ExaminerKeyError as exc:
        raise NoExaminerKeyError(str(exc)) from exc
    _SIGNERS[cache_key] = signer
    return signer


class Case:
    """Open (or create) a case; every custody step goes through :meth:`record`.

    ``running`` names a long job (``"triage"``) that must hold the case alone: a second
    one on the same case is refused with :class:`CaseBusyError` while the first runs.
    """

    def __init__(self, directory: Path, examiner: str | None = None, create: bool = True,
                 running: str | None = None, signer: Signer | None = None) -> None:
        self.directory = directory
        db_path = directory / DB_NAME
        if not db_path.exists() and not create:
            raise CaseError(f"{directory} is not an exhibit case (no {DB_NAME})")
        self.signer = signer or load_signer(examiner)
        new = not db_path.exists()
        directory.mkdir(parents=True, exist_ok=True)
        self._run_lock: int | None = None
        if running is not None:
            self._run_lock = _take_run_lock(directory, running)
        self.examiner = self.signer.name
        self.db = CaseDatabase(db_path, extra_schema=CUSTODY_SCHEMA)
        try:
            self.ledger = CustodyLedger(
                directory / LEDGER_NAME, self.signer, tool_record(),
                actor={"user": getpass.getuser()},
            )
            self._check_head()
        except (LedgerError, CaseError):
            self.close()
            raise
        if new:
            case_id = str(uuid.uuid4())
            with self.db.atomic():  # one sync, not one per row
                self.db.set_info("case_id", case_id)
                self.db.set_info("created_by", self.signer.examiner_id)
            self.record("case.created", None, {"case_id": case_id, "directory": str(directory)})
        self._introduce_key()

    def _check_head(self) -> None:
        """Refuse to append to a ledger that lost entries the database knows of.

        The database head is read first and the ledger's tail after it: heads are stored
        only after their entry is written, so another process appending meanwhile can
        make the ledger longer than the head, never shorter.
        """
        recorded = self.ledger_head()
        if recorded is None:
            return
        seq, digest = self.ledger.refresh()
        if seq < recorded[0]:
            raise CaseError(
                f"{self.ledger_path} ends at entry {seq} but the case database records"
                f" {recorded[0]} entries: entries were removed; run `exhibit ledger verify`"
            )
        if seq == recorded[0] and digest != recorded[1]:
            raise CaseError(
                f"{self.ledger_path}: entry {seq} differs from the one the case database"
                " records; run `exhibit ledger verify`"
            )

    def _introduce_key(self) -> None:
        """First signature in this case: keep the public key here and say so in the ledger."""
        fp = self.signer.fingerprint
        path = self.keys_dir / f"{fp}.json"
        known = self.db.conn.execute("SELECT 1 FROM examiner_keys WHERE fingerprint = ?",
                                     (fp,)).fetchone()
        if known is not None and path.exists():
            return
        record = self.signer.public_record()
        if path.exists():  # written by a run that stopped before the database noted it
            record = json.loads(path.read_text(encoding="utf-8"))
        else:
            self.keys_dir.mkdir(exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n",
                           encoding="utf-8")
            with tmp.open("rb") as handle:
                os.fsync(handle.fileno())
            tmp.replace(path)
        entry = self.record("examiner.key_added", None, {"public_key": record})
        self.db.conn.execute(
            "INSERT OR IGNORE INTO examiner_keys (fingerprint, examiner_id, name, record,"
            " first_seq, added_at) VALUES (?,?,?,?,?,?)",
            (fp, self.signer.examiner_id, self.signer.name, json.dumps(record, sort_keys=True),
             entry["seq"], utc_now()),
        )

    @property
    def case_id(self) -> str:
        return self.db.info("case_id") or "unknown"

    @property
    def ledger_path(self) -> Path:
        return self.directory / LEDGER_NAME

    @property
    def keys_dir(self) -> Path:
        return self.directory / KEYS_DIR

    def record(self, action: str, subject: dict[str, Any] | None = None,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
        """Append a signed ledger entry and remember the new head in the database."""
        return self.record_many([(action, subject, details or {})])[0]

    def record_many(self, steps: list[tuple[str, dict[str, Any] | None, dict[str, Any]]]
                    ) -> list[dict[str, Any]]:
        """Steps taken together (a walk's volumes) as consecutive entries: one write and
        one sync of the ledger, one of the database, whatever their number."""
        entries = self.ledger.append_many(steps)
        if entries:
            self.note_head(entries[-1]["seq"], entries[-1]["hash"])
        return entries

    def note_head(self, seq: int, digest: str) -> None:
        """Store the head unless another process already stored a later one."""
        self.db.conn.execute(
            "INSERT INTO case_info(key, value) VALUES ('ledger_head', ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value"
            " WHERE CAST(substr(case_info.value, 1, instr(case_info.value, ':') - 1)"
            " AS INTEGER) < ?",
            (f"{seq}:{digest}", seq),
        )

    def ledger_head(self) -> tuple[int, str] | None:
        return read_head(self.db)

    def close(self) -> None:
        self.db.close()
        if self._run_lock is not None:
            os.close(self._run_lock)  # releases the flock
            self._run_lock = None


def read_head(db: CaseDatabase) -> tuple[int, str] | None:
    value = db.info("ledger_head")
    if value is None:
        return None
    seq, digest = value.split(":", 1)
    return int(seq), digest


def _take_run_lock(directory: Path, job: str) -> int:
    """Hold ``CASE/run.lock`` for the life of the job; say who holds it when taken."""
    path = directory / RUN_LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown"
        os.close(fd)
        raise CaseBusyError(
            f"another exhibit run is processing this case ({holder}); wait for it to finish"
            " (or stop it), then run the command again to resume"
        ) from None
    text = f"{job} pid {os.getpid()} on {socket.gethostname()} since {utc_now()}"
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8"), 0)
    return fd


SECRET_OPTIONS = ("--volume-password", "--recovery-key")  # their values are never recorded


def command_line() -> str:
    """The command as typed, with the values of secret options replaced by ``***``."""
    args: list[str] = []
    hide = False
    for arg in sys.argv:
        if hide:
            args.append("***")
            hide = False
        elif arg in SECRET_OPTIONS:
            args.append(arg)
            hide = True
        elif arg.startswith(tuple(f"{o}=" for o in SECRET_OPTIONS)):
            args.append(arg.split("=", 1)[0] + "=***")
        else:
            args.append(arg)
    return " ".join(shlex.quote(a) for a in args)


def host() -> str:
    return socket.gethostname()


__all__ = [
    "DB_NAME",
    "KEYS_DIR",
    "LEDGER_NAME",
    "Case",
    "CaseBusyError",
    "CaseError",
    "NoExaminerKeyError",
    "command_line",
    "config_dir",
    "load_signer",
    "read_head",
]
