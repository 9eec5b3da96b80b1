"""A case's tables made, or an older case's brought up to date, when it is opened.

A new case gets every table, column and index in one transaction: one sync of the log,
where statement by statement it paid one per table, column and index (~40; ~0.35 s
before the case opened on a disk whose sync takes 10 ms). An existing case is changed
only where it lacks something, so opening one needs no write lock (another run may hold
it) and writes nothing.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.case.schema import (
    ADDED_COLUMNS,
    CARVE_SCHEMA,
    EVIDENCE_TABLE,
    FILL_MEDIA_COLUMNS,
    LATE_INDEXES,
    RESULT_HASH_INDEXES,
    SCHEMA,
    SCHEMA_VERSION,
    VIDEO_SCHEMA,
    VOLUMES_TABLE,
)

log = logging.getLogger(__name__)


def prepare(conn: sqlite3.Connection, new: bool, extra_schema: str, path: Path) -> None:
    """Make a new case's schema, or upgrade an existing one's; ``extra_schema``: tables
    another layer keeps in the case (the custody store's)."""
    tables = SCHEMA + VIDEO_SCHEMA + CARVE_SCHEMA + extra_schema
    if new:
        with atomic(conn, tables + RESULT_HASH_INDEXES):
            _complete(conn)
            _set_version(conn)
        return
    conn.executescript(tables)  # creates only what is missing
    if "fs_slot" not in _columns(conn, "volumes"):
        _rekey_volumes(conn)
    if any(r[1] == "sha256" and r[3] for r in conn.execute("PRAGMA table_info(evidence)")):
        _relax_evidence(conn)
    _complete(conn)
    version = conn.execute("SELECT value FROM case_info WHERE key = 'schema_version'"
                           ).fetchone()
    if (version[0] if version else "1") != str(SCHEMA_VERSION):
        conn.executescript(FILL_MEDIA_COLUMNS)
        _set_version(conn)
    _restore_hash_indexes(conn, path)


@contextmanager
def atomic(conn: sqlite3.Connection, script: str = "") -> Iterator[None]:
    """One transaction: BEGIN IMMEDIATE, ``script`` (statements run inside it), the block,
    COMMIT; ROLLBACK on any error. ``CaseDatabase.atomic`` is this on the case's
    connection."""
    if script:  # executescript would first commit a transaction open before it: none is
        conn.executescript(f"BEGIN IMMEDIATE;{script}")
    else:
        conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def _set_version(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT OR REPLACE INTO case_info(key, value) VALUES ('schema_version', ?)",
                 (str(SCHEMA_VERSION),))


def _complete(conn: sqlite3.Connection) -> None:
    """The columns added since schema 1 and the indexes on them, where missing."""
    for table, column, decl in ADDED_COLUMNS:
        if column not in _columns(conn, table):
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
    for index in LATE_INDEXES:  # after the columns they name exist
        conn.execute(index)


def _restore_hash_indexes(conn: sqlite3.Connection, path: Path) -> None:
    """Build the hash indexes a stopped analysis left out (``pipeline.case.indexes``).
    They only speed look-ups up: a case whose disk is full (or whose database SQLite may
    only read) opens, reads and verifies without them; the next run that writes builds
    them."""
    try:
        conn.executescript(RESULT_HASH_INDEXES)
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY):
            raise
        log.warning("%s: the results' hash indexes are not rebuilt (%s); look-ups by hash"
                    " read the table instead", path, exc)


def _rekey_volumes(conn: sqlite3.Connection) -> None:
    """Schema 2 -> 3: a volume may hold two filesystems, so its key gains ``fs_slot``.

    SQLite cannot change a primary key in place: the rows move to a new table in one
    transaction, unchanged (slot 0 each), so an old case reads as it did.
    """
    with atomic(conn):
        conn.execute("ALTER TABLE volumes RENAME TO volumes_schema2")
        conn.execute(VOLUMES_TABLE)
        conn.execute(
            "INSERT INTO volumes (evidence_id, idx, offset, length, description, allocated,"
            " fs_type, status, detail, fs_slot) SELECT evidence_id, idx, offset, length,"
            " description, allocated, fs_type, status, detail, 0 FROM volumes_schema2")
        conn.execute("DROP TABLE volumes_schema2")


def _relax_evidence(conn: sqlite3.Connection) -> None:
    """Schema 4 -> 5: evidence is registered before its hash is known, so the hash
    columns take NULL. The rows move unchanged to the new table; references to
    ``evidence`` are by name, so foreign keys are off while the table is replaced."""
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        with atomic(conn):
            conn.execute(EVIDENCE_TABLE.replace("TABLE IF NOT EXISTS evidence",
                                                "TABLE evidence_schema5", 1))
            cols = ", ".join(r[1] for r in conn.execute("PRAGMA table_info(evidence)"))
            conn.execute(f"INSERT INTO evidence_schema5 ({cols}) SELECT {cols} FROM evidence")
            conn.execute("DROP TABLE evidence")
            conn.execute("ALTER TABLE evidence_schema5 RENAME TO evidence")
    finally:
        conn.execute("PRAGMA foreign_keys=ON")
