"""Known-hash matching and near-duplicate grouping inside the case database.

- **Exact**: MD5/SHA-1/SHA-256 of every file against every loaded set. Digests and known
  hashes are both indexed columns, so this is a join that SQLite answers in time
  proportional to the case, not to the size of the sets.
- **Near**: pHash and dHash (64-bit) and PDQ (256-bit) by Hamming distance within a
  per-algorithm threshold (:class:`Thresholds`), through :class:`~pipeline.matching.index.
  HammingIndex` (multi-index hashing: the same answers as brute force, fast at millions
  of known hashes). PDQ is matched only for images whose PDQ quality is at least
  ``pdq_quality``, with all 8 rotations/mirrors of the image, so a mirrored copy is
  found; the match records which variant hit. A known hash's own quality is not known.
- **Series**: images of one evidence item within the same thresholds of each other are
  grouped (:mod:`pipeline.matching.series`), so an examiner reviews a group once.

Every match row carries the set, algorithm, distance, the category as the set states it,
the label from the set's category profile, and the known entry's id. Matching is
idempotent (unique rows), so a resumed or repeated triage never duplicates a match.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from pipeline.case.database import EVIDENCE_MATCHES_SQL, CaseDatabase
from pipeline.case.schema import PICTURES_CONDITION
from pipeline.matching.index import HammingIndex, hex_to_words
from pipeline.matching.known import BITS, DEFAULT_THRESHOLDS, EXACT_ALGORITHMS, Thresholds
from pipeline.matching.series import EarlyPairs, group_series
from pipeline.matching.video import frame_queries, match_videos


def match_evidence(db: CaseDatabase, evidence_id: str,
                   thresholds: Thresholds = DEFAULT_THRESHOLDS,
                   early: EarlyPairs | None = None) -> dict[str, Any]:
    """Every kind of match for one evidence item, and its near-duplicate groups (with
    the pairs ``early`` found while the last batches ran, if any)."""
    result = match_exact(db, evidence_id)
    result["near"] = match_near(db, evidence_id, thresholds)
    videos = match_videos(db, evidence_id)
    if videos:
        result["near"]["vpdq"] = videos
    label_matches(db)
    result.update(_summary(db, evidence_id))
    result["series"] = group_series(db, evidence_id, thresholds, early)
    result["thresholds"] = asdict(thresholds)
    return result


def match_exact(db: CaseDatabase, evidence_id: str) -> dict[str, Any]:
    """Record exact MD5/SHA-1/SHA-256 matches for one evidence item; return the counts."""
    marks = ",".join("?" for _ in EXACT_ALGORITHMS)
    if db.conn.execute(f"SELECT 1 FROM known_hashes WHERE algorithm IN ({marks}) LIMIT 1",
                       tuple(EXACT_ALGORITHMS)).fetchone() is None:
        return {}  # no set to match: no pass over every result (issue 18: fixed cost)
    db.begin()
    try:
        for algo in EXACT_ALGORITHMS:
            db.conn.execute(
                f"INSERT OR IGNORE INTO matches (file_id, hashset_id, algorithm, distance,"
                f" category, known_value, known_id)"
                f" SELECT r.file_id, k.hashset_id, '{algo}', 0, k.category, k.value, k.entry_id"
                f" FROM results r JOIN files f ON f.id = r.file_id"
                f" JOIN known_hashes k ON k.algorithm = '{algo}' AND k.value = r.{algo}"
                f" WHERE f.evidence_id = ?",
                (evidence_id,),
            )
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return {}


def match_near(db: CaseDatabase, evidence_id: str, thresholds: Thresholds) -> dict[str, Any]:
    """Record pHash/dHash/PDQ matches within the thresholds; return what was searched."""
    searched: dict[str, Any] = {}
    for algo in ("phash", "dhash", "pdq"):
        known = db.conn.execute(
            "SELECT hashset_id, value, category, entry_id FROM known_hashes"
            " WHERE algorithm = ? ORDER BY rowid", (algo,)).fetchall()
        if not known:
            continue
        queries = _queries(db, evidence_id, algo, thresholds)
        radius = getattr(thresholds, algo)
        values = [r["value"] for r in known]
        index = HammingIndex(hex_to_words(values, BITS[algo]), radius)
        rows: dict[tuple[int, int], tuple[int, str | None]] = {}
        if queries:
            q, k, d = index.search(hex_to_words([v for _, v, _ in queries], BITS[algo]))
            for qi, ki, dist in zip(q.tolist(), k.tolist(), d.tolist(), strict=True):
                file_id, _, variant = queries[qi]
                best = rows.get((file_id, ki))
                if best is None or dist < best[0]:
                    rows[file_id, ki] = (dist, variant)
        db.begin()
        try:
            db.conn.executemany(
                "INSERT OR IGNORE INTO matches (file_id, hashset_id, algorithm, distance,"
                " category, known_value, known_id, variant) VALUES (?,?,?,?,?,?,?,?)",
                [(file_id, known[ki]["hashset_id"], algo, dist, known[ki]["category"],
                  known[ki]["value"], known[ki]["entry_id"], variant)
                 for (file_id, ki), (dist, variant) in sorted(rows.items())])
            db.commit()
        except BaseException:
            db.rollback()
            raise
        searched[algo] = {"known": len(known), "queries": len(queries), "radius": radius,
                          "pairs": len(rows), "index": index.describe()}
    return searched


def _queries(db: CaseDatabase, evidence_id: str, algo: str, thresholds: Thresholds
             ) -> list[tuple[int, str, str | None]]:
    """(file id, hash, variant) for every hashed image of the evidence.

    pHash and PDQ rows are found through the pictures' partial index (the condition it
    names is implied by theirs, so repeating it changes no answer); dHash is not in it."""
    if algo != "pdq":
        join, pictures = "JOIN", ""
        if algo == "phash":  # results first, through the pictures' index
            join, pictures = "CROSS JOIN", f"({PICTURES_CONDITION}) AND "
        return [(r["file_id"], r["value"], None) for r in db.conn.execute(
            f"SELECT r.file_id, r.{algo} AS value FROM results r {join} files f"
            f" ON f.id = r.file_id WHERE {pictures}r.{algo} IS NOT NULL"
            f" AND f.evidence_id = ? ORDER BY r.file_id", (evidence_id,))]
    from analyzers.perceptual import DIHEDRAL

    out: list[tuple[int, str, str | None]] = []
    for r in db.conn.execute(
            "SELECT r.file_id, r.pdq, r.pdq_dihedral FROM results r CROSS JOIN files f"
            f" ON f.id = r.file_id WHERE ({PICTURES_CONDITION}) AND r.pdq IS NOT NULL"
            " AND r.pdq_quality >= ? AND f.evidence_id = ? ORDER BY r.file_id",
            (thresholds.pdq_quality, evidence_id)):
        variants = json.loads(r["pdq_dihedral"]) if r["pdq_dihedral"] else [r["pdq"]]
        out.extend((r["file_id"], v, name) for name, v in zip(DIHEDRAL, variants, strict=False))
    # A known picture that is a frame of a video: the video's sampled frames are queries too.
    out.extend(frame_queries(db, evidence_id, thresholds.pdq_quality))
    return out


def label_matches(db: CaseDatabase) -> None:
    """Give each match the label its set's category profile has for its category."""
    sets = db.conn.execute("SELECT id, category_profile FROM hashsets").fetchall()
    db.begin()
    try:
        for row in sets:
            labels = (json.loads(row["category_profile"] or "null") or {}).get("labels", {})
            for category, label in labels.items():
                db.conn.execute("UPDATE matches SET category_label = ? WHERE hashset_id = ?"
                                " AND category = ? AND category_label IS NULL",
                                (label, row["id"], category))
        db.commit()
    except BaseException:
        db.rollback()
        raise


def _summary(db: CaseDatabase, evidence_id: str) -> dict[str, Any]:
    by_set: dict[str, Any] = {}
    rows = db.conn.execute(
        "SELECT h.name, h.sha256, h.kind, m.algorithm, m.category, m.category_label,"
        " COUNT(DISTINCT m.file_id) AS n, MAX(m.distance) AS worst"
        f" {EVIDENCE_MATCHES_SQL} JOIN hashsets h ON h.id = m.hashset_id"
        " WHERE f.evidence_id = ? GROUP BY h.id, m.algorithm, m.category"
        " ORDER BY h.name, m.algorithm, m.category",
        (evidence_id,),
    )
    for row in rows:
        entry = by_set.setdefault(row["name"], {"hashset_sha256": row["sha256"],
                                                "kind": row["kind"], "matches": []})
        entry["matches"].append(
            {"algorithm": row["algorithm"], "category": row["category"],
             "category_label": row["category_label"], "files": row["n"],
             "max_distance": row["worst"]}
        )
    total = db.count(
        f"SELECT COUNT(DISTINCT m.file_id) {EVIDENCE_MATCHES_SQL} WHERE f.evidence_id = ?",
        (evidence_id,),
    )
    return {"files_matched": total, "by_hashset": by_set}
