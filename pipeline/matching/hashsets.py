"""Known-hash sets: import one atomically into the case, list them, map their categories.

Formats (told apart by content, not by file name; readers in ``formats/``):

- **plain**: one MD5, SHA-1 or SHA-256 per line (the algorithm is told by the length),
  ``#`` starts a comment, blank lines are ignored.
- **csv**: a header row naming the columns: ``md5``, ``sha1``/``sha-1``, ``sha256``/
  ``sha-256``, ``hash`` (any digest, told by length), ``phash``, ``dhash`` (16 hex
  digits), ``pdq`` (64 hex digits), and optionally ``category``, ``category_label``,
  ``series``, ``media_id``, ``description``/``name``. One row is one known entry.
- **vics**: Project VIC VICS JSON, data model 1.x (``odata.metadata``) and 2.0
  (``@odata.context``); ``value[]`` holds Media directly (a hash set) or Cases with
  ``Media[]`` (a case export). Each Media gives ``MD5``/``SHA1``/``SHA256`` and, where
  present, ``PDQ``/``pHash``/``dHash`` — as fields or as ``AlternativeHashes[]``
  (``HashName``/``HashValue``) — plus ``MediaID``, ``Category``, ``IsPrecategorized``,
  ``Series`` and ``MediaFiles[]``. exhibit's own export of found media is VICS 2.0 and
  imports through this reader.
- **nsrl**: NIST NSRL RDSv3 SQLite (``FILE``/``VERSION`` tables, ``DISTINCT_HASH``
  view); imported as a **known-good** set (``kind = 'known-good'``): matches mark files
  as known so they can be hidden from review.

Import is atomic: the whole set is one transaction, so a malformed line or record
(:class:`HashSetError`, naming the line or the record) leaves nothing behind. Parsing
streams: one entry at a time goes to SQLite, so memory stays near the size of the file
(a JSON file is held once as text; nothing is built per entry beyond the row in flight).

Categories are kept exactly as the set states them (a VICS ``1`` stays ``"1"``); a
*category profile* maps them to labels for display — a built-in one (:data:`PROFILES`),
a ``category_label`` CSV column, or a JSON/CSV file given with ``--category-map``.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.case.database import utc_now
from pipeline.matching.formats import iter_set
from pipeline.matching.known import (
    ALGORITHMS,
    HashSetError,
    KnownHashSet,
    ParsedSet,
    file_sha256,
)

if TYPE_CHECKING:
    from pipeline.case.store import Case

_BATCH = 5_000  # rows per executemany: Python memory is one batch, whatever the size
_CACHE_KIB = 256 * 1024  # SQLite page cache while importing (restored afterwards)

# Project VIC (US) categories as Griffeye/VICS tools label them. The number stays the
# record; the label is only for display and can be replaced with --category-map.
PROFILES: dict[str, dict[str, str]] = {
    "projectvic-us": {
        "0": "Non-Pertinent",
        "1": "Child Abuse Material",
        "2": "Child Exploitive (non-CAM) / Age Difficult",
        "3": "CGI / Animation",
        "4": "Comparison Images",
    },
    "none": {},
}
DEFAULT_PROFILE = {"vics": "projectvic-us"}


def read_hashset(path: Path, name: str | None = None, *, strict: bool = True) -> KnownHashSet:
    """Parse a whole set into memory (for small sets and tests; imports stream)."""
    try:
        info, entries = iter_set(path, strict=strict)
        known = list(entries)
    except UnicodeDecodeError as exc:
        raise HashSetError(f"{path}: not UTF-8 text ({exc})") from exc
    hashset = KnownHashSet(name=name or path.name, source=str(path), sha256=file_sha256(path),
                           format=info.format, rejected=info.rejected, version=info.version,
                           kind=info.kind, known=known)
    for entry in known:
        hashset.entries.extend((algo, value, entry.category) for algo, value in entry.hashes)
    if not hashset.entries:
        raise HashSetError(f"{path}: no MD5, SHA-1, SHA-256, pHash, dHash or PDQ values found")
    return hashset


# ----------------------------------------------------------------------------- profiles


def load_profile(spec: str | Path | None, fmt: str, labels: dict[str, str]) -> dict[str, Any]:
    """The category profile: a built-in name, a JSON/CSV file, or the set's own labels."""
    if spec is None:
        if labels:
            return {"name": "from the set", "labels": dict(labels)}
        name = DEFAULT_PROFILE.get(fmt, "none")
        return {"name": name, "labels": PROFILES[name]}
    if str(spec) in PROFILES:
        return {"name": str(spec), "labels": PROFILES[str(spec)]}
    path = Path(spec)
    if not path.is_file():
        raise HashSetError(f"category map {spec}: neither a file nor one of"
                           f" {', '.join(sorted(PROFILES))}")
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("{"):
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HashSetError(f"category map {path}: line {exc.lineno}: {exc.msg}") from exc
        if not isinstance(mapping, dict):
            raise HashSetError(f"category map {path}: expected an object of number -> label")
        return {"name": str(path), "labels": {str(k): str(v) for k, v in mapping.items()}}
    mapping = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or row[0].startswith("#"):
            continue
        if len(row) != 2:
            raise HashSetError(f"category map {path}: line {number}: expected 'value,label'")
        mapping[row[0].strip()] = row[1].strip()
    return {"name": str(path), "labels": mapping}


# ----------------------------------------------------------------------------- import


def import_hashset(case: Case, path: Path, *, name: str | None = None,
                   source: str | None = None, version: str | None = None,
                   category_map: str | Path | None = None, known_good: bool | None = None,
                   strict: bool = True) -> dict[str, Any]:
    """Import ``path`` into the case in one transaction; return its summary.

    A set already in the case (same SHA-256) is not imported twice. A malformed set
    raises :class:`HashSetError`; the transaction is rolled back and the refusal is
    recorded in the ledger.
    """
    db = case.db
    digest = file_sha256(path)
    row = db.conn.execute("SELECT * FROM hashsets WHERE sha256 = ?", (digest,)).fetchone()
    if row is not None:
        return {"id": row["id"], "name": row["name"], "sha256": digest, "already_loaded": True,
                "counts": json.loads(row["counts"])}
    info = ParsedSet(format="unknown")
    counts: Counter[str] = Counter()
    # Index inserts of random digests thrash SQLite's default 2 MB page cache; the
    # connection lives on through the triage, so the cache is given back afterwards.
    previous_cache = db.conn.execute("PRAGMA cache_size").fetchone()[0]
    db.conn.execute(f"PRAGMA cache_size = {-_CACHE_KIB}")
    db.begin()
    try:
        info, entries = iter_set(path, strict=strict)
        total = 0
        cur = db.conn.execute(
            "INSERT INTO hashsets (name, sha256, source, format, counts, loaded_at, version,"
            " kind) VALUES (?,?,?,?,?,?,?,?)",
            (name or path.name, digest, source or str(path), info.format, "{}", utc_now(),
             version, "alert"),
        )
        set_id = int(cur.lastrowid or 0)
        next_id = db.count("SELECT MAX(id) FROM known_entries") + 1
        entry_rows: list[tuple[Any, ...]] = []
        hash_rows: list[tuple[Any, ...]] = []
        for entry in entries:
            entry_rows.append((next_id, set_id, entry.ref, entry.media_id, entry.category,
                               entry.series, None if entry.precategorized is None
                               else int(entry.precategorized),
                               None if entry.details is None
                               else json.dumps(entry.details, sort_keys=True)))
            for algo, value in entry.hashes:
                hash_rows.append((set_id, algo, value, entry.category, next_id))
                counts[algo] += 1
            next_id += 1
            total += 1
            if len(hash_rows) >= _BATCH:
                _flush(db.conn, entry_rows, hash_rows)
        _flush(db.conn, entry_rows, hash_rows)
        if not counts:
            raise HashSetError(f"{path}: no MD5, SHA-1, SHA-256, pHash, dHash or PDQ values"
                               " found")
        kind = "known-good" if (known_good or (known_good is None
                                               and info.kind == "known-good")) else "alert"
        profile = load_profile(category_map, info.format, info.labels)
        summary_counts = {algo: counts.get(algo, 0) for algo in ALGORITHMS}
        summary_counts["entries"] = total
        summary_counts["rejected_lines"] = len(info.rejected)
        summary_counts.update({f"skipped: {k}": v for k, v in info.skipped.items()})
        db.conn.execute(
            "UPDATE hashsets SET counts = ?, version = ?, kind = ?, category_profile = ?"
            " WHERE id = ?",
            (json.dumps(summary_counts), version or info.version, kind,
             json.dumps(profile, sort_keys=True), set_id))
        db.commit()
    except BaseException as exc:
        db.rollback()
        if isinstance(exc, (HashSetError, UnicodeDecodeError)):
            case.record("hashset.refused", None, {
                "source": source or str(path), "sha256": digest, "format": info.format,
                "reason": str(exc)[:1000], "imported": 0,
            })
            if isinstance(exc, UnicodeDecodeError):
                raise HashSetError(f"{path}: not UTF-8 text ({exc})") from exc
        raise
    finally:
        db.conn.execute(f"PRAGMA cache_size = {int(previous_cache)}")
    summary = {
        "id": set_id, "name": name or path.name, "source": source or str(path),
        "sha256": digest, "format": info.format, "version": version or info.version,
        "kind": kind, "category_profile": profile["name"], "counts": summary_counts,
        "rejected_lines": info.rejected[:20],
    }
    case.record("hashset.loaded", None, summary)
    return summary


def _flush(conn: sqlite3.Connection, entry_rows: list[tuple[Any, ...]],
           hash_rows: list[tuple[Any, ...]]) -> None:
    conn.executemany(
        "INSERT INTO known_entries (id, hashset_id, ref, media_id, category, series,"
        " precategorized, details) VALUES (?,?,?,?,?,?,?,?)", entry_rows)
    conn.executemany(
        "INSERT INTO known_hashes (hashset_id, algorithm, value, category, entry_id)"
        " VALUES (?,?,?,?,?)", hash_rows)
    entry_rows.clear()
    hash_rows.clear()


def load_hashset(case: Case, path: Path) -> None:
    """Import a set given to ``triage --hashset`` (any supported format); no-op if present."""
    import_hashset(case, path)


def list_hashsets(case: Case) -> list[dict[str, Any]]:
    """The sets in the case, oldest first, as ``exhibit hashset list`` shows them."""
    out = []
    for row in case.db.conn.execute("SELECT * FROM hashsets ORDER BY id"):
        profile = json.loads(row["category_profile"] or "null") or {}
        out.append({
            "id": row["id"], "name": row["name"], "format": row["format"],
            "version": row["version"], "kind": row["kind"], "sha256": row["sha256"],
            "source": row["source"], "loaded_at": row["loaded_at"],
            "counts": json.loads(row["counts"]), "category_profile": profile.get("name"),
        })
    return out
