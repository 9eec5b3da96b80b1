"""A case directory: its database, its custody ledger, and who is acting on it.

Layout::

    CASE/
      case.sqlite        evidence, volumes, files, results, errors, hash sets, matches
      ledger.jsonl       the custody ledger (append-only, hash-chained)
      ledger.jsonl.lock  lock file serialising appends
      exports/           exports written with ``exhibit export`` when no -o is given

The database keeps the ledger's last known head (sequence number and hash) so that
``exhibit ledger verify`` also catches entries cut off the end of the ledger.
"""

from __future__ import annotations

import getpass
import os
import shlex
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

from chain_of_custody.ledger import CustodyLedger
from pipeline.casedb import CaseDatabase
from pipeline.versions import tool_record

DB_NAME = "case.sqlite"
LEDGER_NAME = "ledger.jsonl"


class CaseError(Exception):
    """A case directory that cannot be used as asked."""


def default_examiner() -> str:
    return os.environ.get("EXHIBIT_EXAMINER") or getpass.getuser()


class Case:
    """Open (or create) a case; every custody step goes through :meth:`record`."""

    def __init__(self, directory: Path, examiner: str | None = None, create: bool = True) -> None:
        self.directory = directory
        db_path = directory / DB_NAME
        if not db_path.exists() and not create:
            raise CaseError(f"{directory} is not an exhibit case (no {DB_NAME})")
        new = not db_path.exists()
        directory.mkdir(parents=True, exist_ok=True)
        self.examiner = examiner or default_examiner()
        self.db = CaseDatabase(db_path)
        self.ledger = CustodyLedger(
            directory / LEDGER_NAME,
            actor={"examiner": self.examiner, "user": getpass.getuser()},
            tool=tool_record(),
        )
        self._check_head()
        if new:
            case_id = str(uuid.uuid4())
            self.db.set_info("case_id", case_id)
            self.db.set_info("created_by", self.examiner)
            self.record("case.created", None, {"case_id": case_id, "directory": str(directory)})

    def _check_head(self) -> None:
        """Refuse to append to a ledger that lost entries the database knows of."""
        recorded = self.ledger_head()
        if recorded is None:
            return
        seq, digest = self.ledger.head
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

    @property
    def case_id(self) -> str:
        return self.db.info("case_id") or "unknown"

    @property
    def ledger_path(self) -> Path:
        return self.directory / LEDGER_NAME

    def record(self, action: str, subject: dict[str, Any] | None = None,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
        """Append a ledger entry and remember the new head in the database."""
        entry = self.ledger.append(action, subject, details or {})
        self.db.set_info("ledger_head", f"{entry['seq']}:{entry['hash']}")
        return entry

    def ledger_head(self) -> tuple[int, str] | None:
        value = self.db.info("ledger_head")
        if value is None:
            return None
        seq, digest = value.split(":", 1)
        return int(seq), digest

    def close(self) -> None:
        self.db.close()


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in sys.argv)


def host() -> str:
    return socket.gethostname()
