"""NIST NSRL RDSv3 SQLite: a known-good set (``FILE`` table, ``DISTINCT_HASH`` view)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from pipeline.matching.known import HashSetError, KnownEntry, ParsedSet, normalise

SQLITE_MAGIC = b"SQLite format 3\x00"


def read(path: Path, info: ParsedSet) -> Iterator[KnownEntry]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        tables = {r[0].upper() for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    except sqlite3.DatabaseError as exc:
        raise HashSetError(f"{path}: not a readable SQLite database ({exc})") from exc
    try:
        if "FILE" not in tables:
            raise HashSetError(f"{path}: SQLite file without an NSRL RDSv3 FILE table")
        columns = {r[1].lower() for r in conn.execute("PRAGMA table_info(FILE)")}
        missing = {"sha256", "sha1", "md5"} - columns
        if missing:
            raise HashSetError(f"{path}: FILE table lacks {', '.join(sorted(missing))}:"
                               " not the RDSv3 schema")
        if "VERSION" in tables:
            row = conn.execute("SELECT version FROM VERSION ORDER BY rowid DESC").fetchone()
            info.version = None if row is None else str(row[0])
        source = "DISTINCT_HASH" if "DISTINCT_HASH" in tables else \
            "(SELECT DISTINCT sha256, sha1, md5 FROM FILE)"
        rows = conn.execute(f"SELECT sha256, sha1, md5 FROM {source}")
        for number, (sha256, sha1, md5) in enumerate(rows, start=1):
            where = f"{path}: {source.split()[0].strip('(')} row {number}"
            hashes = [(algo, normalise(algo, value, where))
                      for algo, value in (("md5", md5), ("sha1", sha1), ("sha256", sha256))
                      if value not in (None, "")]
            if not hashes:
                raise HashSetError(f"{where}: no hash value")
            yield KnownEntry(ref=f"row {number}", hashes=hashes)
    except sqlite3.DatabaseError as exc:
        raise HashSetError(f"{path}: cannot read the NSRL database ({exc})") from exc
    finally:
        conn.close()
