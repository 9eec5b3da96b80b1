"""Exact known-hash matching inside the case database.

Digests and known hashes are both indexed columns, so matching is a join that SQLite
answers in time proportional to the case, not to the size of the sets. Matching is
idempotent (unique rows), so a resumed or repeated triage never duplicates a match.
"""

from __future__ import annotations

from typing import Any

from pipeline.casedb import CaseDatabase
from pipeline.hashsets import EXACT_ALGORITHMS


def match_evidence(db: CaseDatabase, evidence_id: str) -> dict[str, Any]:
    """Every kind of match for one evidence item (exact digests today)."""
    return match_exact(db, evidence_id)


def match_exact(db: CaseDatabase, evidence_id: str) -> dict[str, Any]:
    """Record exact MD5/SHA-1/SHA-256 matches for one evidence item; return the counts."""
    db.begin()
    try:
        for algo in EXACT_ALGORITHMS:
            db.conn.execute(
                f"INSERT OR IGNORE INTO matches (file_id, hashset_id, algorithm, distance,"
                f" category, known_value)"
                f" SELECT r.file_id, k.hashset_id, '{algo}', 0, k.category, k.value"
                f" FROM results r JOIN files f ON f.id = r.file_id"
                f" JOIN known_hashes k ON k.algorithm = '{algo}' AND k.value = r.{algo}"
                f" WHERE f.evidence_id = ?",
                (evidence_id,),
            )
        db.commit()
    except BaseException:
        db.rollback()
        raise
    by_set: dict[str, Any] = {}
    rows = db.conn.execute(
        "SELECT h.name, h.sha256, m.algorithm, m.category, COUNT(DISTINCT m.file_id) AS n"
        " FROM matches m JOIN hashsets h ON h.id = m.hashset_id JOIN files f ON f.id = m.file_id"
        " WHERE f.evidence_id = ? GROUP BY h.id, m.algorithm, m.category"
        " ORDER BY h.name, m.algorithm, m.category",
        (evidence_id,),
    )
    for row in rows:
        entry = by_set.setdefault(row["name"], {"hashset_sha256": row["sha256"], "matches": []})
        entry["matches"].append(
            {"algorithm": row["algorithm"], "category": row["category"], "files": row["n"]}
        )
    total = db.count(
        "SELECT COUNT(DISTINCT m.file_id) FROM matches m JOIN files f ON f.id = m.file_id"
        " WHERE f.evidence_id = ?",
        (evidence_id,),
    )
    return {"files_matched": total, "by_hashset": by_set}
