"""The case database: one SQLite file per case, written only by the driver.

Dask workers return results; the driver alone writes here (and to the ledger), so a
crashed worker can never leave a half-written row. Every multi-row step (a walk, a
batch of results) is one transaction: after a kill the database holds whole steps only,
which is what makes ``triage`` resumable.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ingest.layers.snapshots import UNCHANGED_NOTE
from ingest.location import EvidenceLocation, FileEntry, Snapshot
from pipeline.case.migrate import atomic, prepare
from pipeline.case.schema import SCHEMA_VERSION

T = TypeVar("T")

# A file row's media SHA-256 (evidence is named before its hash: ``evidence_id_for``).
EVIDENCE_SHA256_SQL = "(SELECT sha256 FROM evidence WHERE id = f.evidence_id) AS evidence_sha256"

# An evidence's matches (add "WHERE f.evidence_id = ?"): read from the matches, usually few,
# into their files. Left to choose, SQLite (no statistics) read every file of the evidence
# into the matches instead: 13 ms per count at 100,000 files with no match (issue 18).
EVIDENCE_MATCHES_SQL = "FROM matches m CROSS JOIN files f ON f.id = m.file_id"

# Page cache of the case's connection (negative: KiB, as SQLite's PRAGMA takes it); the
# hash indexes' build uses a smaller one (pipeline/case/indexes.py).
CACHE_KIB = -65536

__all__ = ["EVIDENCE_MATCHES_SQL", "EVIDENCE_SHA256_SQL", "SCHEMA_VERSION", "CaseDatabase",
           "derived_path", "entry_key", "utc_now"]


def utc_now() -> str:
    """Timestamps in the database: UTC, ISO 8601, microseconds, 'Z'."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def entry_key(location: EvidenceLocation, allocated: bool, duplicate: int = 0) -> str:
    """A stable identity for one walked name (also the resume key).

    Inode alone is not unique (hard links, a deleted name whose inode was reused), so the
    key joins location (with the filesystem type: a volume can hold two filesystems),
    allocation state and, for the rare exact repeat, its ordinal.
    """
    stream = location.stream or ""
    key = (
        f"{location.evidence_id}:{location.volume_offset}:{location.fs_type}:{location.inode}:"
        f"{int(allocated)}:{location.path}:{stream}"
    )
    if location.snapshot is not None:  # shadow copy entries: the live keys stay as they were
        key += f"~vss{location.snapshot.index}:{location.snapshot.id}"
    return key if duplicate == 0 else f"{key}#{duplicate}"


# The order of entries in every export: walked entries in walk order, then derived ones
# by batch and Merkle leaf (ids of derived entries follow the order batches finished in,
# which varies; batch ids and leaf positions do not). Needs ``files f`` and ``results r``.
ENTRY_ORDER = ("f.parent_id IS NOT NULL, CASE WHEN f.parent_id IS NULL THEN f.id END,"
               " r.batch_id, r.leaf_index, f.id")


def derived_path(parent_path: str, entry: FileEntry) -> str:
    """How a derived entry's path reads: the container's path, ``//``, the member's path.

    ``//`` never occurs in a walked path (names are never empty, a ``/`` inside a name is
    escaped), so the container boundaries stay visible and unambiguous at any depth.
    """
    step = entry.location.derivation[-1]
    inner = step.inner.strip("/") if step.inner else ""
    return f"{parent_path}//{inner or entry.name}"


# A walked file's columns, in the order ``_entry_dict`` reads them (``batch_items``).
_ITEM_COLUMNS = ("id, entry_key, evidence_id, volume_index, volume_offset, fs_type, inode, path,"
                 " stream, snapshot, name, size, kind, allocated, mtime, atime, ctime, crtime,"
                 " mode, uid, gid, meta_allocated, notes")


def _entry_dict(values: tuple[Any, ...]) -> dict[str, Any]:
    """A walked file's row (``_ITEM_COLUMNS``) as ``FileEntry.to_dict`` gives the entry
    ``add_files`` stored: a location without derivation, with its snapshot if any."""
    (_id, _key, evidence_id, volume_index, volume_offset, fs_type, inode, path, stream,
     snapshot, name, size, kind, allocated, mtime, atime, ctime, crtime, mode, uid, gid,
     meta_allocated, notes) = values
    location = {"evidence_id": evidence_id, "volume_index": volume_index,
                "volume_offset": volume_offset, "fs_type": fs_type, "inode": inode,
                "path": path, "stream": stream}
    if snapshot is not None:
        location["snapshot"] = Snapshot(**json.loads(snapshot)).to_dict()
    return {"location": location, "name": name, "size": size, "kind": kind,
            "allocated": bool(allocated), "mtime": mtime, "atime": atime, "ctime": ctime,
            "crtime": crtime, "mode": mode, "uid": uid, "gid": gid,
            "meta_allocated": None if meta_allocated is None else bool(meta_allocated),
            "notes": [] if notes == "[]" else json.loads(notes)}


def _result_row(batch_id: str, file_id: int, leaf_index: int, record: dict[str, Any],
                canonical: str) -> tuple[Any, ...]:
    findings = record["findings"]
    hashes = findings.get("hashes", {})
    ftype = findings.get("filetype", {})
    exif = findings.get("exif")
    perceptual = findings.get("perceptual", {})
    video = findings.get("video") or {}
    vpdq = video.get("vpdq")
    return (file_id, batch_id, leaf_index, canonical, hashes.get("md5"),
            hashes.get("sha1"), hashes.get("sha256"), ftype.get("mime"), ftype.get("magic"),
            None if "extension_mismatch" not in ftype
            else int(bool(ftype["extension_mismatch"])),
            None if exif is None else json.dumps(exif, sort_keys=True),
            perceptual.get("phash"), perceptual.get("dhash"),
            perceptual.get("pdq"), perceptual.get("pdq_quality"),
            _json_column(perceptual.get("pdq_dihedral")),
            _json_column(vpdq), None if vpdq is None else video.get("seconds_per_hash"))


def _json_column(value: Any) -> str | None:
    """A list as SQLite's json_extract gives it (compact), so either source reads alike."""
    return None if value is None else json.dumps(value, separators=(",", ":"))


class CaseDatabase:
    """Thin, explicit access to the case's SQLite file."""

    def __init__(self, path: Path, extra_schema: str = "") -> None:
        """Open (or create) the case database; ``extra_schema``: tables another layer keeps
        here (the custody store's), created with the case's own."""
        self.path = path
        new = not path.exists() or path.stat().st_size == 0
        self.conn = sqlite3.connect(path, isolation_level=None)  # explicit transactions
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        # Issue 18: the result hash indexes take random inserts; a 64 MiB page cache (a
        # bound, not an allocation) keeps them off the OS for cases of ~10**5-10**6 files.
        self.conn.execute(f"PRAGMA cache_size={CACHE_KIB}")
        prepare(self.conn, new, extra_schema, path)

    @classmethod
    def archived(cls, path: Path) -> CaseDatabase:
        """A cleanly closed case's database on a medium nothing may write (an archive, a
        write-blocked disk), for reading only: SQLite's write-ahead log would need a
        shared-memory file beside it, so the file is opened as immutable. A case with a
        log (``-wal``) left by a stopped run must be copied to writable storage first: an
        immutable open would not see the rows committed to that log."""
        db = cls.__new__(cls)
        db.path = path
        db.conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True,
                                  isolation_level=None)
        db.conn.row_factory = sqlite3.Row
        return db

    def close(self) -> None:
        self.conn.close()

    def apart(self, work: Callable[[sqlite3.Connection], T], read_only: bool = False
               ) -> Future[T]:
        """``work`` on another connection to the case's file, in a thread of its own,
        beside whatever this connection does next (SQLite releases the GIL; a WAL reader
        waits for no writer); its value or error comes from the returned future.
        ``read_only`` sees committed rows only; a writer waits up to 10 minutes for the
        write lock."""
        def run() -> T:
            if read_only:
                uri = f"{Path(self.path).resolve().as_uri()}?mode=ro"
                conn = sqlite3.connect(uri, uri=True)
            else:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=600)
            try:
                return work(conn)
            finally:
                conn.close()

        pool = ThreadPoolExecutor(1, thread_name_prefix="case-apart")
        try:
            return pool.submit(run)
        finally:
            pool.shutdown(wait=False)  # the work runs on; the thread ends with it

    def transaction(self) -> sqlite3.Connection:
        """``with db.transaction():`` — one atomic step."""
        return self.conn

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """``with db.atomic():`` — one step, committed whole or not at all."""
        with atomic(self.conn):
            yield

    # -- case info -------------------------------------------------------------------

    def set_info(self, key: str, value: str, overwrite: bool = True) -> None:
        verb = "INSERT OR REPLACE" if overwrite else "INSERT OR IGNORE"
        self.conn.execute(f"{verb} INTO case_info(key, value) VALUES (?, ?)", (key, value))

    def forget_info(self, key: str) -> None:
        self.conn.execute("DELETE FROM case_info WHERE key = ?", (key,))

    def info(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM case_info WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    # -- evidence and volumes --------------------------------------------------------

    def evidence(self, evidence_id: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM evidence WHERE id = ?", (evidence_id,)).fetchone()

    def evidence_by_paths(self, paths: list[str]) -> sqlite3.Row | None:
        return self.conn.execute(
            "SELECT * FROM evidence WHERE paths = ?", (json.dumps(paths),)
        ).fetchone()

    def all_evidence(self) -> list[sqlite3.Row]:
        return list(self.conn.execute("SELECT * FROM evidence ORDER BY registered_at, id"))

    def add_evidence(self, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.conn.execute(f"INSERT INTO evidence ({cols}) VALUES ({marks})", tuple(row.values()))

    def volumes(self, evidence_id: str) -> list[sqlite3.Row]:
        return list(
            self.conn.execute(
                "SELECT * FROM volumes WHERE evidence_id = ? ORDER BY idx, fs_slot",
                (evidence_id,)
            )
        )

    def add_volume(self, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.conn.execute(
            f"INSERT OR REPLACE INTO volumes ({cols}) VALUES ({marks})", tuple(row.values())
        )

    def set_partition_table(self, evidence_id: str, table: str | None) -> None:
        self.conn.execute("UPDATE evidence SET partition_table = ? WHERE id = ?",
                          (table, evidence_id))

    def mark_walk_complete(self, evidence_id: str) -> None:
        self.conn.execute("UPDATE evidence SET walk_complete = 1 WHERE id = ?", (evidence_id,))

    def forget_walk(self, evidence_id: str, keep_entries: bool = False) -> None:
        """Drop a walk that did not complete; with ``keep_entries``, only what the walk
        adds again (volumes, walk errors), not the entries results refer to already."""
        self.conn.execute("DELETE FROM volumes WHERE evidence_id = ?", (evidence_id,))
        self.conn.execute(
            "DELETE FROM errors WHERE evidence_id = ? AND stage IN ('volumes', 'walk')",
            (evidence_id,),
        )
        if not keep_entries:
            self.conn.execute("DELETE FROM files WHERE evidence_id = ?", (evidence_id,))

    def walked_keys(self, evidence_id: str) -> list[str]:
        """The entry keys of the evidence's walked entries (not derived ones, nor the
        unallocated ranges planned for carving), in walk order."""
        return [r[0] for r in self.conn.execute(
            "SELECT entry_key FROM files WHERE evidence_id = ? AND parent_id IS NULL"
            " AND id NOT IN (SELECT file_id FROM carve_ranges) ORDER BY id", (evidence_id,))]

    # -- files -----------------------------------------------------------------------

    def add_files(self, entries: Iterable[FileEntry],
                  on_file: Callable[[int, int, int], None] | None = None) -> int:
        """Insert walked entries; returns how many were written. ``on_file(id, volume
        offset, size)`` is told of each one the plan will take (``plannable_files``)."""
        count = 0
        for entry in entries:
            loc = entry.location
            row = (
                loc.evidence_id, loc.volume_index,
                loc.volume_offset, loc.fs_type, loc.inode, loc.path, loc.stream, entry.name,
                entry.size, entry.kind, int(entry.allocated), entry.mtime, entry.atime,
                entry.ctime, entry.crtime, entry.mode, entry.uid, entry.gid,
                None if entry.meta_allocated is None else int(entry.meta_allocated),
                json.dumps(list(entry.notes)),
                None if loc.snapshot is None else json.dumps(loc.snapshot.to_dict()),
                self._live_twin(entry),
            )
            # The UNIQUE key, not a dict of every key seen, finds the rare exact repeat:
            # the driver's memory must not grow with the number of files.
            dup = 0
            while True:
                try:
                    cursor = self.conn.execute(
                        "INSERT INTO files (entry_key, evidence_id, volume_index, volume_offset,"
                        " fs_type, inode, path, stream, name, size, kind, allocated, mtime, atime,"
                        " ctime, crtime, mode, uid, gid, meta_allocated, notes, snapshot,"
                        " same_as) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (entry_key(loc, entry.allocated, dup), *row),
                    )
                    break
                except sqlite3.IntegrityError as exc:
                    if "entry_key" not in str(exc):
                        raise
                    dup += 1
            count += 1
            if on_file is not None and entry.kind == "file" and row[-1] is None:
                on_file(cursor.lastrowid, loc.volume_offset, entry.size)  # type: ignore[arg-type]
        return count

    def _live_twin(self, entry: FileEntry) -> int | None:
        """The live entry a snapshot entry proved unchanged shares its bytes with."""
        loc = entry.location
        if loc.snapshot is None or UNCHANGED_NOTE not in entry.notes:
            return None
        row = self.conn.execute(
            "SELECT id FROM files WHERE evidence_id = ? AND volume_offset = ? AND inode = ?"
            " AND fs_type = ? AND coalesce(stream, '') = ? AND snapshot IS NULL"
            " AND parent_id IS NULL AND kind = 'file' ORDER BY id LIMIT 1",
            (loc.evidence_id, loc.volume_offset, loc.inode, loc.fs_type,
             loc.stream or "")).fetchone()
        return None if row is None else int(row[0])

    def add_derived(self, parent_id: int, key: str, entry: FileEntry, path: str) -> int:
        """Insert one entry derived from ``parent_id``'s content; returns its id.

        ``path`` is the display path (the parent's, ``//``, the member's inner path); the
        location chain, with every derivation step, is in ``derivation``.
        """
        loc = entry.location
        derivation = json.dumps([step.to_dict() for step in loc.derivation])
        dup = 0
        while True:
            try:
                cur = self.conn.execute(
                    "INSERT INTO files (entry_key, evidence_id, volume_index, volume_offset,"
                    " fs_type, inode, path, stream, name, size, kind, allocated, mtime, atime,"
                    " ctime, crtime, mode, uid, gid, meta_allocated, notes, parent_id,"
                    " derivation) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (key if dup == 0 else f"{key}#{dup}", loc.evidence_id, loc.volume_index,
                     loc.volume_offset, loc.fs_type, loc.inode, path, loc.stream, entry.name,
                     entry.size, entry.kind, int(entry.allocated), entry.mtime, entry.atime,
                     entry.ctime, entry.crtime, entry.mode, entry.uid, entry.gid, None,
                     json.dumps(list(entry.notes)), parent_id, derivation))
                return int(cur.lastrowid or 0)
            except sqlite3.IntegrityError as exc:
                if "entry_key" not in str(exc):
                    raise
                dup += 1

    def file_path(self, file_id: int) -> str:
        return str(self.conn.execute("SELECT path FROM files WHERE id = ?",
                                     (file_id,)).fetchone()[0])

    def derived_bytes(self, evidence_id: str) -> int:
        """Bytes copied out of containers so far (the case's derivation budget spent).

        Read through the derived entries' own index: asked once per batch task, and by
        ``evidence_id`` it read every walked row (issue 18: ~40 ms per batch at 100,000
        files)."""
        return self.count("SELECT SUM(size) FROM files INDEXED BY files_parent"
                          " WHERE parent_id IS NOT NULL AND evidence_id = ? AND kind = 'file'",
                          (evidence_id,))

    def batch_items(self, ids: list[int]) -> tuple[tuple[int, str, dict[str, Any]], ...]:
        """The walked files as a batch task carries them, in the order of ``ids``: (id,
        entry key, the entry as ``FileEntry.to_dict`` gives it).

        Built from the row's columns directly: going through ``FileEntry`` took ~20 µs per
        file of the driver's time (issue 18: 100,000 files). ``FileEntry.from_dict`` of an
        item is the entry the walk stored (tests/test_speed_mechanisms.py)."""
        found: dict[int, tuple[Any, ...]] = {}
        cursor = self.conn.cursor()
        cursor.row_factory = None  # plain tuples, read by position
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" for _ in part)
            for values in cursor.execute(
                    f"SELECT {_ITEM_COLUMNS} FROM files WHERE id IN ({marks})", part):
                found[values[0]] = values
        return tuple((i, found[i][1], _entry_dict(found[i])) for i in ids)

    def files(self, evidence_id: str | None = None) -> Iterator[sqlite3.Row]:
        if evidence_id is None:
            yield from self.conn.execute("SELECT * FROM files ORDER BY id")
        else:
            yield from self.conn.execute(
                "SELECT * FROM files WHERE evidence_id = ? ORDER BY id", (evidence_id,)
            )

    # -- batches and results ---------------------------------------------------------

    def batches(self, evidence_id: str) -> list[sqlite3.Row]:
        return list(
            self.conn.execute(
                "SELECT * FROM batches WHERE evidence_id = ? ORDER BY rowid", (evidence_id,)
            )
        )

    def add_batch(self, batch_id: str, evidence_id: str, volume_offset: int,
                  file_ids: list[int], size: int) -> None:
        self.conn.execute(
            "INSERT INTO batches (id, evidence_id, volume_offset, file_ids, bytes, status)"
            " VALUES (?, ?, ?, ?, ?, 'planned')",
            (batch_id, evidence_id, volume_offset, json.dumps(file_ids), size),
        )

    def batch(self, batch_id: str) -> sqlite3.Row:
        return self.conn.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()

    def set_batch_ledger_seq(self, batch_id: str, seq: int) -> None:
        self.conn.execute("UPDATE batches SET ledger_seq = ? WHERE id = ?", (seq, batch_id))

    def plannable_files(self, evidence_id: str
                        ) -> tuple[int, int, Iterator[tuple[int, int, int]]]:
        """(count, bytes, (id, volume_offset, size) of each) of the regular files, in walk
        order; a shadow copy's entry sharing a live entry's bytes (``same_as``) is not
        planned. Plain tuples: the plan reads 10**5 of them (issue 18)."""
        count, total = self.conn.execute(
            "SELECT count(*), coalesce(sum(max(size, 0)), 0) FROM files"
            " WHERE evidence_id = ? AND kind = 'file' AND parent_id IS NULL"
            " AND same_as IS NULL", (evidence_id,)).fetchone()
        cursor = self.conn.cursor()
        cursor.row_factory = None
        rows = cursor.execute(
            "SELECT id, volume_offset, size FROM files WHERE evidence_id = ? AND kind = 'file'"
            " AND parent_id IS NULL AND same_as IS NULL ORDER BY volume_offset, id",
            (evidence_id,))
        return int(count), int(total), rows

    def store_results(self, batch_id: str,
                      rows: list[tuple[int, int, dict[str, Any], str]]) -> None:
        """A batch's closed result records, ``(file_id, leaf_index, record, canonical)``
        each (the canonical JSON is the Merkle leaf), with the columns reports filter on;
        replaces the files' earlier read/analysis errors. One statement per table for
        the whole batch (issue 18: the driver's cost per file)."""
        self.conn.executemany("DELETE FROM errors WHERE file_id = ? AND stage IN"
                              " ('read', 'analyze', 'worker')", [(r[0],) for r in rows])
        self.conn.executemany(
            "INSERT OR REPLACE INTO results (file_id, batch_id, leaf_index, record, md5,"
            " sha1, sha256, mime, magic, extension_mismatch, exif, phash, dhash, pdq,"
            " pdq_quality, pdq_dihedral, vpdq, vpdq_step)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [_result_row(batch_id, *row) for row in rows])

    def finish_batch(self, batch_id: str, merkle_root: str, worker: dict[str, Any]) -> None:
        self.conn.execute(
            "UPDATE batches SET status = 'done', merkle_root = ?, worker = ? WHERE id = ?",
            (merkle_root, json.dumps(worker, sort_keys=True), batch_id),
        )

    def batch_errors(self, batch_id: str) -> list[sqlite3.Row]:
        return list(self.conn.execute("SELECT * FROM errors WHERE batch_id = ? ORDER BY id",
                                      (batch_id,)))

    def batch_thumbnails(self, batch_id: str) -> list[str]:
        """Digests of the thumbnails a batch's result records name, sorted."""
        return sorted({r[0] for r in self.conn.execute(
            "SELECT json_extract(record, '$.findings.thumbnail.sha256') FROM results"
            " WHERE batch_id = ? AND json_extract(record, '$.findings.thumbnail.sha256')"
            " IS NOT NULL UNION SELECT json_extract(record,"
            " '$.findings.video.contact_sheet.sha256') FROM results WHERE batch_id = ?"
            " AND json_extract(record, '$.findings.video.contact_sheet.sha256') IS NOT NULL",
            (batch_id, batch_id))})

    def batch_derived(self, batch_id: str) -> dict[str, Any]:
        """What a batch derived from content: entries, containers, entries by method."""
        rows = self.conn.execute(
            "SELECT f.parent_id, json_extract(f.derivation, '$[#-1].method') AS method,"
            " json_extract(f.derivation, '$[#-1].version') AS version FROM results r"
            " JOIN files f ON f.id = r.file_id WHERE r.batch_id = ? AND f.parent_id IS NOT NULL",
            (batch_id,)).fetchall()
        methods: dict[str, int] = {}
        for row in rows:
            name = f"{row['method']} {row['version']}"
            methods[name] = methods.get(name, 0) + 1
        return {"entries": len(rows), "containers": len({r["parent_id"] for r in rows}),
                "methods": dict(sorted(methods.items()))}

    def errors_for(self, file_id: int) -> list[sqlite3.Row]:
        return list(
            self.conn.execute("SELECT * FROM errors WHERE file_id = ? ORDER BY id", (file_id,))
        )

    def add_error(self, *, stage: str, error: str, message: str, evidence_id: str | None = None,
                  file_id: int | None = None, batch_id: str | None = None,
                  analyzer: str | None = None, analyzer_version: str | None = None,
                  traceback: str | None = None, location: dict[str, Any] | None = None) -> None:
        self.conn.execute(
            "INSERT INTO errors (evidence_id, file_id, batch_id, stage, analyzer,"
            " analyzer_version, error, message, traceback, location)"
            " VALUES (?,?,?,?,?,?,?,?,?,?)",
            (evidence_id, file_id, batch_id, stage, analyzer, analyzer_version, error, message,
             traceback, None if location is None else json.dumps(location, sort_keys=True)),
        )

    # -- carving (issue 14) ----------------------------------------------------------

    def add_carve_range(self, file_id: int, runs: list[tuple[int, int]], stop: int,
                        mode: str) -> None:
        self.conn.execute("INSERT INTO carve_ranges (file_id, runs, stop, mode) VALUES"
                          " (?, ?, ?, ?)", (file_id, json.dumps(runs), stop, mode))

    def carve_range(self, file_id: int) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM carve_ranges WHERE file_id = ?",
                                 (file_id,)).fetchone()

    def file_id_by_key(self, key: str) -> int:
        return int(self.conn.execute("SELECT id FROM files WHERE entry_key = ?",
                                     (key,)).fetchone()[0])

    def deleted_inodes(self, evidence_id: str, volume_offset: int, fs_type: str) -> list[int]:
        """Inodes of the walk's deleted files on one filesystem (their runs are known)."""
        return [int(r[0]) for r in self.conn.execute(
            "SELECT DISTINCT inode FROM files WHERE evidence_id = ? AND volume_offset = ?"
            " AND fs_type = ? AND allocated = 0 AND kind = 'file' AND parent_id IS NULL"
            " AND size > 0", (evidence_id, volume_offset, fs_type))]

    def count(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        row = self.conn.execute(sql, params).fetchone()
        return int(row[0] or 0)
