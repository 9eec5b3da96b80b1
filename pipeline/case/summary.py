"""The counts an examiner reads first: the triage summary (also ``triage.completed``)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from pipeline.case.database import EVIDENCE_MATCHES_SQL, CaseDatabase


def summarize(db: CaseDatabase, evidence_id: str,
              counts: dict[str, int] | None = None) -> dict[str, Any]:
    """The counts an examiner reads first (also the ``triage.completed`` details).

    ``counts``: the entries' and results' counts (``entry_counts``) taken already, e.g.
    while the case's hash indexes were built (they do not change after the analysis)."""
    q = (evidence_id,)
    volumes = db.volumes(evidence_id)
    evidence = db.evidence(evidence_id)
    return {
        "evidence_id": evidence_id,
        "evidence_sha256": evidence["sha256"] if evidence is not None else None,
        "volumes": len({v["idx"] for v in volumes}),
        "filesystems": sorted({v["fs_type"] for v in volumes if v["fs_type"]}),
        "filesystems_walked": sum(1 for v in volumes if v["status"] == "walked"),
        # A volume holding two filesystems (one hidden behind the other): index -> types.
        "volumes_with_several_filesystems": {
            str(v["idx"]): json.loads(v["detail"])["volume_filesystems"] for v in volumes
            if v["fs_slot"] == 0 and "volume_filesystems" in json.loads(v["detail"])},
        "walks_stalled": sum(1 for v in volumes if v["status"] == "stalled"),
        # APFS volumes by filesystem type, with their names (issue 16), and the entries
        # walked in volume shadow copies.
        "apfs_volumes": {v["fs_type"]: json.loads(v["detail"])["apfs_volume"] for v in volumes
                         if "apfs_volume" in json.loads(v["detail"])},
        **(counts if counts is not None else entry_counts(db, evidence_id)),
        "known_hash_matches": db.count(
            f"SELECT COUNT(DISTINCT m.file_id) {EVIDENCE_MATCHES_SQL}"
            " JOIN hashsets h ON h.id = m.hashset_id"
            " WHERE f.evidence_id = ? AND h.kind != 'known-good'", q),
        "known_hash_matches_by_category": {
            row[0]: row[1] for row in db.conn.execute(
                "SELECT COALESCE(m.category_label, m.category, '(none)'), COUNT(DISTINCT"
                f" m.file_id) {EVIDENCE_MATCHES_SQL} JOIN hashsets h"
                " ON h.id = m.hashset_id WHERE f.evidence_id = ? AND h.kind != 'known-good'"
                " GROUP BY 1 ORDER BY 1", q)},
        "near_matches": db.count(  # altered copies: found only by a perceptual hash
            f"SELECT COUNT(DISTINCT m.file_id) {EVIDENCE_MATCHES_SQL}"
            " JOIN hashsets h ON h.id = m.hashset_id WHERE f.evidence_id = ?"
            " AND h.kind != 'known-good' AND m.algorithm IN ('phash', 'dhash', 'pdq')"
            " AND m.file_id NOT IN (SELECT file_id FROM matches"
            " WHERE algorithm IN ('md5', 'sha1', 'sha256'))", q),
        "known_good_files": db.count(
            f"SELECT COUNT(DISTINCT m.file_id) {EVIDENCE_MATCHES_SQL}"
            " JOIN hashsets h ON h.id = m.hashset_id"
            " WHERE f.evidence_id = ? AND h.kind = 'known-good'", q),
        "near_duplicate_groups": db.count(
            "SELECT COUNT(DISTINCT group_id) FROM media_groups WHERE evidence_id = ?", q),
        "errors": db.count("SELECT COUNT(*) FROM errors WHERE evidence_id = ?"
                           " AND error != 'Skipped'", q),
        "skipped": db.count("SELECT COUNT(*) FROM errors WHERE evidence_id = ?"
                            " AND error = 'Skipped'", q),
    }


def entry_counts(db: CaseDatabase, evidence_id: str) -> dict[str, int]:
    """The summary's two passes: over the evidence's files, and over its results.

    With nothing uncommitted on the case's connection the files' pass runs beside the
    other, on a second connection (SQLite releases the GIL; issue 18: 0.19 -> 0.11 s at
    the end of a run of 100,000 files)."""
    if db.conn.in_transaction:  # a second connection would not see what it holds
        return {**_file_counts(db.conn, evidence_id), **_result_counts(db, evidence_id)}
    files = db.apart(lambda conn: _file_counts(conn, evidence_id), read_only=True)
    results = _result_counts(db, evidence_id)
    return {**files.result(), **results}


def _file_counts(conn: sqlite3.Connection, evidence_id: str) -> dict[str, int]:
    """The entries' counts, in one pass over the evidence's files (issue 18: a case of
    100,000 files paid one pass per count at the end of every run)."""
    row = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(snapshot IS NOT NULL), 0),"
        " COALESCE(SUM(kind = 'file'), 0), COALESCE(SUM(parent_id IS NOT NULL), 0),"
        " COALESCE(SUM(parent_id IS NOT NULL"
        " AND json_extract(derivation, '$[0].method') = 'carved'), 0),"
        " COALESCE(SUM(allocated = 0), 0),"
        " COALESCE(SUM(CASE WHEN kind = 'file' THEN size END), 0)"
        " FROM files WHERE evidence_id = ?", (evidence_id,)).fetchone()
    entries, snapshot, files, derived, carved, deleted, size = (int(v) for v in row)
    return {"snapshot_entries": snapshot, "entries": entries, "files": files,
            "derived": derived, "carved": carved, "deleted": deleted, "bytes": size}


def _result_counts(db: CaseDatabase, evidence_id: str) -> dict[str, int]:
    """The analysed files' counts, in one pass over the evidence's results."""
    row = db.conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(r.mime LIKE 'image/%'), 0),"
        " COALESCE(SUM(r.extension_mismatch = 1), 0)"
        " FROM results r JOIN files f ON f.id = r.file_id WHERE f.evidence_id = ?",
        (evidence_id,)).fetchone()
    analysed, images, mismatches = (int(v) for v in row)
    return {"analysed": analysed, "images": images, "type_mismatches": mismatches}
