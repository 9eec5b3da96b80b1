"""The walk's run-level machinery: the child process that contains it, and the volumes
table that holds two filesystems for one volume (and still reads an older case).

The stall itself, the two-filesystem volume and the deleted folders are tested end to end
in ``test_fuzz.py`` and ``test_ingest_images.py``, against ``fls``/``icat``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest
from test_ingest import EVIDENCE_ID, fls

from ingest.image import open_image
from ingest.volumes import find_volumes
from pipeline.case.database import SCHEMA_VERSION, CaseDatabase
from pipeline.case.indexes import hash_indexes_deferred
from pipeline.run.contained_walk import WalkContained, WalkProcess

_SCHEMA2_VOLUMES = """
CREATE TABLE volumes (
    evidence_id TEXT NOT NULL REFERENCES evidence(id),
    idx INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,
    description TEXT NOT NULL, allocated INTEGER NOT NULL, fs_type TEXT,
    status TEXT NOT NULL, detail TEXT NOT NULL,
    PRIMARY KEY (evidence_id, idx)
);
"""


def test_walk_process_survives_a_crashed_child(sample_raw: Path) -> None:
    """A child killed mid-request is reported as a crash; the next request gets a new
    child, whose walk equals fls."""
    with open_image([sample_raw]) as image:
        volume = find_volumes(image).candidates[0]
        spec = image.spec
    with WalkProcess(spec, EVIDENCE_ID, timeout=60) as child:
        assert child.detect(volume) == ["fat32"]
        first_pid = child.pid
        os.kill(first_pid, signal.SIGKILL)
        with pytest.raises(WalkContained) as info:
            list(child.walk(volume, "fat32"))
        assert info.value.code == "WalkCrashed"
        assert "exit code -9" in str(info.value)  # SIGKILL
        entries = list(child.walk(volume, "fat32"))
        assert child.pid != first_pid
        assert {(e.location.path, e.location.inode, e.allocated) for e in entries} == fls(
            sample_raw, volume.sector_offset)
        assert child.stats.entries == len(entries)
    assert child.pid is None  # closed: no process left behind


def test_walk_timeout_must_be_positive(sample_raw: Path) -> None:
    with open_image([sample_raw]) as image, pytest.raises(ValueError, match="positive"):
        WalkProcess(image.spec, EVIDENCE_ID, timeout=0)


def _as_older_case(path: Path, version: int, script: str) -> None:
    """Turn a case back into one an older exhibit made: ``script``, then its version."""
    conn = sqlite3.connect(path)
    conn.executescript(script + f"; UPDATE case_info SET value = '{version}'"
                       " WHERE key = 'schema_version';")
    conn.close()


def test_schema2_case_is_rekeyed_and_reads_as_before(tmp_path: Path) -> None:
    path = tmp_path / "case.sqlite"
    db = CaseDatabase(path)  # then turned back into a schema-2 case with one volume
    db.add_evidence({"id": EVIDENCE_ID, "format": "raw", "paths": "[]", "size": 1, "md5": "",
                     "sha1": "", "sha256": "", "stored_hashes": "{}", "expected_hashes": "{}",
                     "verification": "[]", "verified": 1, "container_stat": "{}",
                     "registered_at": "2024-01-01T00:00:00Z"})
    db.close()
    _as_older_case(path, 2, "DROP TABLE volumes;" + _SCHEMA2_VOLUMES +
                   "INSERT INTO volumes VALUES ('" + EVIDENCE_ID + "', 2, 1048576, 4096,"
                   " 'FAT32', 1, 'fat32', 'walked', '{\"entries\": 3}')")

    db = CaseDatabase(path)
    try:
        assert db.info("schema_version") == str(SCHEMA_VERSION) == "6"
        rows = [dict(r) for r in db.volumes(EVIDENCE_ID)]
        assert rows == [{"evidence_id": EVIDENCE_ID, "idx": 2, "offset": 1048576,
                         "length": 4096, "description": "FAT32", "allocated": 1,
                         "fs_type": "fat32", "status": "walked", "detail": '{"entries": 3}',
                         "fs_slot": 0}]
        db.add_volume(dict(rows[0], fs_type="ext2", fs_slot=1))  # a second filesystem
        assert [(r["fs_slot"], r["fs_type"]) for r in db.volumes(EVIDENCE_ID)] == [
            (0, "fat32"), (1, "ext2")]
    finally:
        db.close()
    CaseDatabase(path).close()  # opening a migrated case again changes nothing


def test_schema4_evidence_takes_a_hash_not_yet_known(tmp_path: Path) -> None:
    """Schema 4 -> 5: the evidence table's hash columns accept NULL (the hash runs beside
    the analysis); the rows and the volumes referring to them are unchanged."""
    path = tmp_path / "case.sqlite"
    db = CaseDatabase(path)
    row = {"id": EVIDENCE_ID, "format": "raw", "paths": "[]", "size": 1, "md5": "m",
           "sha1": "s", "sha256": "x", "stored_hashes": "{}", "expected_hashes": "{}",
           "verification": "[]", "verified": 1, "container_stat": "{}",
           "registered_at": "2024-01-01T00:00:00Z"}
    db.add_evidence(row)
    db.add_volume({"evidence_id": EVIDENCE_ID, "idx": 0, "offset": 0, "length": 1,
                   "description": "d", "allocated": 1, "fs_type": None, "status": "walked",
                   "detail": "{}", "fs_slot": 0})
    db.close()
    _as_older_case(  # the schema-4 table: every hash column NOT NULL
        path, 4,
        "PRAGMA foreign_keys=OFF;"
        " CREATE TABLE e4 (id TEXT PRIMARY KEY, format TEXT NOT NULL, paths TEXT NOT NULL,"
        " size INTEGER NOT NULL, md5 TEXT NOT NULL, sha1 TEXT NOT NULL, sha256 TEXT NOT NULL,"
        " stored_hashes TEXT NOT NULL, expected_hashes TEXT NOT NULL,"
        " verification TEXT NOT NULL, verified INTEGER NOT NULL, container_stat TEXT NOT NULL,"
        " registered_at TEXT NOT NULL, walk_complete INTEGER NOT NULL DEFAULT 0,"
        " partition_table TEXT);"
        " INSERT INTO e4 SELECT * FROM evidence; DROP TABLE evidence;"
        " ALTER TABLE e4 RENAME TO evidence")
    db = CaseDatabase(path)
    try:
        assert db.info("schema_version") == "6"
        assert {k: db.evidence(EVIDENCE_ID)[k] for k in row} == row
        db.add_evidence(dict(row, id="ev-new", md5=None, sha1=None, sha256=None, verified=None))
        assert db.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert [r["evidence_id"] for r in db.volumes(EVIDENCE_ID)] == [EVIDENCE_ID]
    finally:
        db.close()


def test_result_hash_indexes_are_deferred_and_always_rebuilt(tmp_path: Path) -> None:
    db = CaseDatabase(tmp_path / "case.sqlite")

    def indexes() -> set[str]:
        return {r[1] for r in db.conn.execute("PRAGMA index_list(results)")}

    hashed = {"results_md5", "results_sha1", "results_sha256"}
    try:
        assert hashed <= indexes()
        with hash_indexes_deferred(db):
            assert not hashed & indexes()
        assert hashed <= indexes()
        with pytest.raises(KeyError), hash_indexes_deferred(db):
            raise KeyError("the analysis failed")
        assert hashed <= indexes()
        # The summary's counts read beside the build on a second connection: they see the
        # committed rows, and the indexes are there when the block has ended.
        db.conn.execute("PRAGMA foreign_keys=OFF")
        db.conn.executemany("INSERT INTO results (file_id, batch_id, leaf_index, record, md5)"
                            " VALUES (?, 'b', ?, '{}', ?)",
                            [(i, i, f"{i:032x}") for i in range(20_000)])
        for holding in (False, True):  # a transaction open: the build waits for nothing
            with hash_indexes_deferred(db) as build:
                if holding:
                    db.begin()
                build.beside = lambda: db.count("SELECT COUNT(*) FROM results")
            assert build.result == 20_000 and hashed <= indexes()
        # Begun early (every batch sent): built on the rows in, then the last batches'
        # rows go in with them, and the end finds them built.
        with hash_indexes_deferred(db) as build:
            assert not hashed & indexes()
            build.begin()
            build.settle()
            assert hashed <= indexes()
            db.conn.execute("INSERT INTO results (file_id, batch_id, leaf_index, record, md5)"
                            " VALUES (20000, 'b', 0, '{}', 'ab')")
            build.beside = lambda: db.count("SELECT COUNT(*) FROM results")
        assert build.result == 20_001
        plan = db.conn.execute("EXPLAIN QUERY PLAN SELECT file_id FROM results"
                               " WHERE md5 = 'ab'").fetchall()
        assert "results_md5" in str([tuple(r) for r in plan])
        assert [tuple(r) for r in db.conn.execute("SELECT file_id FROM results WHERE md5 = 'ab'")] \
            == [(20000,)]
        assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    db = CaseDatabase(tmp_path / "case.sqlite")  # a run killed inside: rebuilt on open
    try:
        db.conn.execute("DROP INDEX results_md5")
    finally:
        db.close()
    db = CaseDatabase(tmp_path / "case.sqlite")
    try:
        assert hashed <= indexes()
    finally:
        db.close()


MEDIA_COLUMNS = {"pdq": "$.findings.perceptual.pdq",
                 "pdq_quality": "$.findings.perceptual.pdq_quality",
                 "pdq_dihedral": "$.findings.perceptual.pdq_dihedral",
                 "vpdq": "$.findings.video.vpdq",
                 "vpdq_step": "$.findings.video.seconds_per_hash"}


def _media_columns(db: CaseDatabase) -> list[tuple[tuple[object, object], ...]]:
    """Per result: (column, the same value read from the record's JSON) for each."""
    select = ", ".join(f"{c}, json_extract(record, '{p}')" for c, p in MEDIA_COLUMNS.items())
    rows = db.conn.execute(f"SELECT {select} FROM results ORDER BY file_id").fetchall()
    return [tuple((r[2 * i], r[2 * i + 1]) for i in range(len(MEDIA_COLUMNS))) for r in rows]


def test_media_columns_are_stored_with_the_result_and_filled_in_an_older_case(
        tmp_path: Path) -> None:
    """Matching reads PDQ and vPDQ from columns (issue 18: no pass over every record at the
    end of a run): stored with each result, equal to what the record says; a schema-5 case
    gets them from its records once, on open."""
    from test_analyzers import encode, entry, procedural
    from video_clips import ffmpeg

    from analyzers import registry
    from analyzers.run import analyze_bytes

    clip = tmp_path / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=160x120:r=10", "-t", "3", "-pix_fmt", "yuv420p", clip)
    samples = [(encode(procedural(7), "JPEG"), "a.jpg", ["filetype", "perceptual"]),
               (clip.read_bytes(), "clip.mp4", ["filetype", "video"]),
               (b"plain text\n", "a.txt", ["filetype", "perceptual", "video"])]
    path = tmp_path / "case.sqlite"
    db = CaseDatabase(path)
    db.conn.execute("PRAGMA foreign_keys=OFF")  # results alone: no files or batches needed
    records = []
    for file_id, (data, name, names) in enumerate(samples, 1):
        found = analyze_bytes(data, entry(name, len(data)), registry.create(names))
        record = {"findings": found.findings}
        records.append((file_id, 0, record, json.dumps(record, sort_keys=True)))
    db.store_results("b1", records)
    stored = _media_columns(db)
    db.close()
    assert all(column == from_json for row in stored for column, from_json in row)
    image, video, text = stored
    assert image[0][0] and len(json.loads(image[2][0])) == 8 and image[3][0] is None
    assert len(json.loads(video[3][0])) == 3 and video[4][0] == 1 and video[0][0] is None
    assert all(column is None for column, _ in text)

    _as_older_case(  # schema 5: no vPDQ columns nor media indexes, PDQ not yet copied
        path, 5, "UPDATE results SET pdq = NULL, pdq_quality = NULL, pdq_dihedral = NULL;"
        " DROP INDEX results_pictures; DROP INDEX results_videos;"
        " ALTER TABLE results DROP COLUMN vpdq; ALTER TABLE results DROP COLUMN vpdq_step")
    db = CaseDatabase(path)
    try:
        assert db.info("schema_version") == "6"
        assert _media_columns(db) == stored
    finally:
        db.close()


def test_entry_counts_taken_on_two_connections_equal_one_pass_each(tmp_path: Path) -> None:
    """The summary's files pass runs on a second, read-only connection beside the results
    pass; it must count exactly what the case's own connection counts (committed rows),
    and an open transaction keeps both on the case's connection."""
    from pipeline.case.summary import entry_counts

    db = CaseDatabase(tmp_path / "case.sqlite")
    try:
        db.conn.execute("PRAGMA foreign_keys=OFF")
        rows = [(i, f"k{i}", "ev-a" if i % 3 else "ev-b", i, f"/f{i}", f"f{i}", i,
                 "dir" if i % 7 == 0 else "file", 0 if i % 11 == 0 else 1,
                 i - 1 if i % 13 == 0 else None) for i in range(1, 3_001)]
        db.conn.executemany(
            "INSERT INTO files (id, entry_key, evidence_id, volume_index, volume_offset,"
            " fs_type, inode, path, name, size, kind, allocated, notes, parent_id)"
            " VALUES (?, ?, ?, 0, 0, 'ext4', ?, ?, ?, ?, ?, ?, '[]', ?)", rows)
        db.conn.executemany(
            "INSERT INTO results (file_id, batch_id, leaf_index, record, mime,"
            " extension_mismatch) VALUES (?, 'b', 0, '{}', ?, ?)",
            [(i, "image/png" if i % 5 == 0 else "text/plain", int(i % 17 == 0))
             for i in range(1, 3_001, 2)])
        mine = [r for r in rows if r[2] == "ev-a"]
        expected = {
            "entries": len(mine), "snapshot_entries": 0,
            "files": sum(r[7] == "file" for r in mine),
            "derived": sum(r[9] is not None for r in mine), "carved": 0,
            "deleted": sum(r[8] == 0 for r in mine),
            "bytes": sum(r[6] for r in mine if r[7] == "file"),
            "analysed": sum(r[0] % 2 == 1 for r in mine),
            "images": sum(r[0] % 2 == 1 and r[0] % 5 == 0 for r in mine),
            "type_mismatches": sum(r[0] % 2 == 1 and r[0] % 17 == 0 for r in mine)}
        assert entry_counts(db, "ev-a") == expected
        db.begin()
        db.conn.execute("UPDATE files SET size = size + 1")  # seen by this connection only
        held = entry_counts(db, "ev-a")
        db.rollback()
        assert held == dict(expected, bytes=expected["bytes"] + expected["files"])
    finally:
        db.close()
