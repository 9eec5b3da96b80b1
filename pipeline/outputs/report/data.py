"""Everything the HTML report shows, read from the case directory (never the evidence).

The result is one JSON-serializable dict that the page renders client-side. Files are
rows of a column table with repeated strings (MIME types, libmagic descriptions, file
systems, evidence ids) interned in ``strings``, so 100,000 entries stay a few tens of MB.
Matches are read with every column the ``matches`` table has (``SELECT m.*``), so fields
added by later matching work (algorithm, distance, category label, variant, known id…)
appear in the report without a change here; near-duplicate groups come from
``media_groups`` when the case has that table.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import sqlite3
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chain_of_custody.ledger import read_entries
from pipeline.case.database import ENTRY_ORDER, EVIDENCE_SHA256_SQL, CaseDatabase, utc_now
from pipeline.case.store import THUMBNAIL_DIR
from pipeline.outputs.export import PDQ_COLUMNS
from pipeline.versions import tool_record

LEDGER_NAME = "ledger.jsonl"
FILE_COLUMNS = (
    "id", "path", "size", "kind", "allocated", "mime", "magic", "mismatch", "gps", "matched",
    "mtime", "atime", "ctime", "crtime", "md5", "sha1", "sha256", "volume_index",
    "volume_offset", "fs_type", "inode", "stream", "evidence", "errors", "taken",
)
_INTERNED = {"mime", "magic", "fs_type", "evidence", "kind"}
THUMBNAIL_CHOICES = ("matched", "images", "none")
# The timeline leaves out times before this year (FAT's 1980 epoch and zeroed clocks)
# and after next year (broken clocks), and counts them apart.
_TIMELINE_FIRST_YEAR = 1981


class _Strings:
    """Intern repeated strings as small integers (index into ``strings``)."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.index: dict[str, int] = {}

    def __call__(self, value: str | None) -> int | None:
        if value is None:
            return None
        found = self.index.get(value)
        if found is None:
            found = self.index[value] = len(self.values)
            self.values.append(value)
        return found


def _table_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def collect(db: CaseDatabase, case_dir: Path, thumbnails: str = "matched") -> dict[str, Any]:
    """Read the case into the report's data model (see the module docstring)."""
    if thumbnails not in THUMBNAIL_CHOICES:
        raise ValueError(f"thumbnails must be one of {THUMBNAIL_CHOICES}, not {thumbnails!r}")
    conn = db.conn
    strings = _Strings()
    matches = _matches(conn)
    groups = _groups(conn)
    errors: dict[int, list[dict[str, Any]]] = {}
    for row in conn.execute("SELECT file_id, stage, analyzer, error, message FROM errors"
                            " WHERE file_id IS NOT NULL ORDER BY file_id, id"):
        errors.setdefault(row["file_id"], []).append(
            {k: row[k] for k in ("stage", "analyzer", "error", "message")})

    rows: list[list[Any]] = []
    exif_by_id: dict[int, dict[str, Any]] = {}
    perceptual: dict[int, dict[str, Any]] = {}
    derived: dict[int, dict[str, Any]] = {}  # container and derivation chain, by file id
    snapshots: dict[int, dict[str, Any]] = {}  # shadow copy entries, by file id
    live_content = _live_content(conn)
    thumbs: dict[int, str] = {}
    gps: list[list[Any]] = []
    by_type: Counter[str] = Counter()
    timeline_times: list[tuple[str, bool]] = []
    query = (
        "SELECT f.*, " + EVIDENCE_SHA256_SQL + ", r.md5, r.sha1, r.sha256, r.mime, r.magic,"
        " r.extension_mismatch, r.exif, r.phash, r.dhash, " + PDQ_COLUMNS + ","
        " COALESCE(json_extract(r.record, '$.findings.thumbnail.sha256'),"
        " json_extract(r.record, '$.findings.video.contact_sheet.sha256')) AS thumb,"
        " p.path AS parent_path FROM files f"
        " LEFT JOIN results r ON r.file_id = coalesce(f.same_as, f.id)"
        f" LEFT JOIN files p ON p.id = f.parent_id ORDER BY {ENTRY_ORDER}"
    )
    for row in conn.execute(query):
        fid = row["id"]
        exif = _finite(json.loads(row["exif"])) if row["exif"] else None
        if exif is not None and not exif.get("present", True):
            exif = None
        has_gps = bool(exif and isinstance(exif.get("gps_latitude"), int | float)
                       and isinstance(exif.get("gps_longitude"), int | float)
                       and abs(exif["gps_latitude"]) <= 90 and abs(exif["gps_longitude"]) <= 180)
        if exif:
            exif_by_id[fid] = {k: v for k, v in exif.items() if k != "present"}
        if has_gps:
            gps.append([fid, exif["gps_latitude"], exif["gps_longitude"]])
        taken = exif.get("datetime_original_iso") if exif else None
        mime = row["mime"]
        if row["kind"] != "file":
            by_type[row["kind"]] += 1
        else:
            by_type[(mime or "not analysed").split("/")[0]] += 1
        if taken:
            timeline_times.append((taken, True))
        elif row["kind"] == "file" and row["mtime"]:
            timeline_times.append((row["mtime"], False))
        if row["thumb"]:
            thumbs[fid] = row["thumb"]
        hashes = {k: row[k] for k in ("phash", "dhash", "pdq", "pdq_quality")
                  if row[k] is not None}
        if hashes:  # the values the export gives and matching compared
            perceptual[fid] = hashes
        if row["snapshot"]:
            snapshots[fid] = dict(json.loads(row["snapshot"]), same_as=row["same_as"],
                                  only=_only_in_snapshots(row, live_content))
        if row["parent_id"] is not None:
            derived[fid] = {"derived_from": row["parent_path"], "parent_id": row["parent_id"],
                            "chain": json.loads(row["derivation"] or "[]")}
        mismatch = row["extension_mismatch"]
        rows.append([
            fid, row["path"] if row["stream"] is None else f"{row['path']}:{row['stream']}",
            row["size"], strings(row["kind"]), row["allocated"], strings(mime),
            strings(row["magic"]), mismatch, int(has_gps), len(matches.get(fid, [])),
            row["mtime"], row["atime"], row["ctime"], row["crtime"], row["md5"], row["sha1"],
            row["sha256"], row["volume_index"], row["volume_offset"], strings(row["fs_type"]),
            row["inode"], row["stream"], strings(row["evidence_sha256"]), len(errors.get(fid, [])),
            taken,
        ])

    wanted = set(matches) if thumbnails == "matched" else set(thumbs)
    if thumbnails == "none":
        wanted = set()
    thumbdata, thumb_problems = _thumbnails(case_dir, {fid: thumbs[fid] for fid in wanted
                                                       if fid in thumbs})
    return {
        "generated": utc_now(),
        "tool": tool_record(),
        "case": _case_info(db, case_dir),
        "evidence": _evidence(db),
        "ledger": _ledger(db, case_dir),
        "counts": dict(_counts(conn, matches), in_snapshots=len(snapshots),
                       only_in_snapshots=sum(1 for s in snapshots.values() if s["only"])),
        "by_type": dict(sorted(by_type.items())),
        "runs": _runs(case_dir),
        "analyzers": _analyzer_versions(conn),
        "hashsets": _hashsets(conn),
        "strings": strings.values,
        "columns": list(FILE_COLUMNS),
        "interned": sorted(_INTERNED),
        "files": rows,
        "exif": exif_by_id,
        "perceptual": perceptual,
        "derived": derived,
        "snapshots": snapshots,
        "matches": matches,
        "groups": groups,
        "errors": errors,
        "thumbs": {fid: digest for fid, digest in thumbs.items() if digest in thumbdata},
        "thumbdata": thumbdata,
        "thumb_problems": thumb_problems,
        "timeline": timeline(timeline_times),
        "gps": gps,
    }


def _live_content(conn: sqlite3.Connection) -> tuple[set[str], set[tuple[str, str]]]:
    """SHA-256s of the live volumes' files and their (evidence, path)s."""
    hashes = {r[0] for r in conn.execute(
        "SELECT r.sha256 FROM files f JOIN results r ON r.file_id = f.id"
        " WHERE f.snapshot IS NULL AND r.sha256 IS NOT NULL")}
    paths = {(r[0], r[1]) for r in conn.execute(
        "SELECT evidence_id, path FROM files WHERE snapshot IS NULL")}
    return hashes, paths


def _only_in_snapshots(row: sqlite3.Row, live: tuple[set[str], set[tuple[str, str]]]) -> bool:
    """A shadow copy's file whose content no live file has (a deleted or overwritten
    picture); without a hash (not analysed), one whose path the live volume lacks."""
    if row["kind"] != "file":
        return (row["evidence_id"], row["path"]) not in live[1]
    if row["sha256"]:
        return row["sha256"] not in live[0]
    return (row["evidence_id"], row["path"]) not in live[1]


def _finite(value: Any) -> Any:
    """Replace NaN/infinity (a corrupt EXIF rational can give them) by None: JSON has none."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _matches(conn: sqlite3.Connection) -> dict[int, list[dict[str, Any]]]:
    """Every match with every column the table has, plus its hash set's name and kind."""
    hashsets = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM hashsets")}
    columns = _table_columns(conn, "matches")
    order = [c for c in ("file_id", "hashset_id", "algorithm", "known_value") if c in columns]
    found: dict[int, list[dict[str, Any]]] = {}
    videos = _video_matches(conn)
    for row in conn.execute(f"SELECT * FROM matches ORDER BY {', '.join(order)}"):
        match = {k: row[k] for k in columns if k != "file_id"}
        if match.get("algorithm") == "vpdq":  # how much matched, and where in each video
            match.update(videos.get((row["file_id"], row["hashset_id"], row["known_id"]), {}))
        hashset = hashsets.get(row["hashset_id"], {})
        match["hashset"] = hashset.get("name")
        if hashset.get("kind"):
            match["hashset_kind"] = hashset["kind"]
        found.setdefault(row["file_id"], []).append(match)
    return found


def _video_matches(conn: sqlite3.Connection) -> dict[tuple[int, int, int], dict[str, str]]:
    """vPDQ match details by (file, set, known entry): percentages and time ranges."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND"
                        " name = 'video_matches'").fetchone():
        return {}

    def spans(text: str) -> str:
        return ", ".join(f"{a:g}–{b:g} s" for a, b in json.loads(text))

    return {(r["file_id"], r["hashset_id"], r["known_id"]): {
        "video_matched": f"{r['query_pct']:g} %", "known_matched": f"{r['compared_pct']:g} %",
        "matching_ranges": spans(r["ranges"]), "known_ranges": spans(r["known_ranges"])}
        for r in conn.execute("SELECT * FROM video_matches")}


def _groups(conn: sqlite3.Connection) -> dict[int, dict[str, Any]]:
    """Near-duplicate groups within the media (``media_groups``), when the case has them."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND"
                        " name = 'media_groups'").fetchone():
        return {}
    columns = _table_columns(conn, "media_groups")
    return {row["file_id"]: {k: row[k] for k in columns if k not in ("file_id", "evidence_id")}
            for row in conn.execute("SELECT * FROM media_groups")}


def _thumbnails(case_dir: Path, wanted: dict[int, str]) -> tuple[dict[str, str], list[str]]:
    """Base64 of each wanted thumbnail whose bytes still hash to its name."""
    data: dict[str, str] = {}
    problems: list[str] = []
    for digest in sorted(set(wanted.values())):
        path = case_dir / THUMBNAIL_DIR / f"{digest}.jpg"
        try:
            blob = path.read_bytes()
        except OSError as exc:
            problems.append(f"thumbnail {digest} missing ({exc.strerror})")
            continue
        if hashlib.sha256(blob).hexdigest() != digest:
            problems.append(f"thumbnail {digest} altered: its bytes no longer hash to its name")
            continue
        data[digest] = base64.b64encode(blob).decode("ascii")
    return data, problems


def _case_info(db: CaseDatabase, case_dir: Path) -> dict[str, Any]:
    info = {r["key"]: r["value"] for r in db.conn.execute("SELECT key, value FROM case_info")}
    info.pop("ledger_head", None)
    return {"directory": str(case_dir.resolve()), **info}


def _evidence(db: CaseDatabase) -> list[dict[str, Any]]:
    items = []
    for ev in db.all_evidence():
        item = dict(ev)
        item.pop("container_stat", None)
        for key in ("paths", "stored_hashes", "expected_hashes", "verification"):
            item[key] = json.loads(ev[key]) if ev[key] else None
        item["verified"] = bool(ev["verified"])
        item["volumes"] = [
            {"index": v["idx"], "offset": v["offset"], "length": v["length"],
             "description": v["description"], "fs_type": v["fs_type"], "status": v["status"],
             "detail": json.loads(v["detail"])}
            for v in db.volumes(ev["id"])
        ]
        items.append(item)
    return items


def _ledger(db: CaseDatabase, case_dir: Path) -> dict[str, Any]:
    """Everything ``exhibit ledger verify`` checks, run now (signatures, chain, head,
    the database's findings against the signed Merkle roots)."""
    from pipeline.case.custody import verify_case

    path = case_dir / LEDGER_NAME
    if not path.exists():
        return {"present": False, "ok": False, "entries": 0, "reason": "no ledger in the case"}
    result = verify_case(case_dir)
    return {"present": True, "ok": result.ok, "entries": result.ledger.entries,
            "first_bad_seq": result.failure_seq, "reason": result.failure,
            "checks": [list(row) for row in result.rows], "verified_at": utc_now()}


def _counts(conn: sqlite3.Connection, matches: dict[int, list[dict[str, Any]]]
            ) -> dict[str, Any]:
    def one(sql: str) -> int:
        return int(conn.execute(sql).fetchone()[0] or 0)

    by_category: Counter[str] = Counter()
    for found in matches.values():
        labels = {m.get("category_label") or m.get("category") or "(no category)"
                  for m in found if m.get("hashset_kind") != "known-good"}
        by_category.update(labels)
    alert = {fid for fid, found in matches.items()
             if any(m.get("hashset_kind") != "known-good" for m in found)}
    return {
        "entries": one("SELECT COUNT(*) FROM files"),
        "files": one("SELECT COUNT(*) FROM files WHERE kind = 'file'"),
        "directories": one("SELECT COUNT(*) FROM files WHERE kind = 'directory'"),
        "deleted": one("SELECT COUNT(*) FROM files WHERE allocated = 0"),
        "bytes": one("SELECT SUM(size) FROM files WHERE kind = 'file'"),
        "analysed": one("SELECT COUNT(*) FROM results"),
        "images": one("SELECT COUNT(*) FROM results WHERE mime LIKE 'image/%'"),
        "mismatches": one("SELECT COUNT(*) FROM results WHERE extension_mismatch = 1"),
        "errors": one("SELECT COUNT(*) FROM errors WHERE error != 'Skipped'"),
        "skipped": one("SELECT COUNT(*) FROM errors WHERE error = 'Skipped'"),
        "matched_files": len(alert),
        "known_good_files": len(set(matches) - alert),
        "matches_by_category": dict(sorted(by_category.items())),
    }


def _runs(case_dir: Path) -> list[dict[str, Any]]:
    """Each triage run from the ledger: when, by whom, what ran, how long."""
    path = case_dir / LEDGER_NAME
    if not path.exists():
        return []
    runs: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    try:
        entries = list(read_entries(path))
    except Exception as exc:  # a damaged ledger is shown by its verification; say so here
        return [{"error": f"ledger unreadable: {exc}"}]
    for entry in entries:
        action = entry.get("action")
        details = entry.get("details") or {}
        if action == "triage.started":
            current = {"started": entry.get("time"), "actor": entry.get("actor"),
                       "command": details.get("command"), "analyzers": details.get("analyzers"),
                       "tool": (entry.get("tool") or {}).get("version")}
            runs.append(current)
        elif action in ("triage.completed", "triage.interrupted") and current is not None:
            current.update(ended=entry.get("time"), outcome=action.split(".")[1],
                           elapsed_seconds=details.get("elapsed_seconds"))
            current = None
    return runs


def _analyzer_versions(conn: sqlite3.Connection) -> dict[str, Any]:
    """Analyzer versions and the workers' library versions, as the batches recorded them."""
    analyzers: dict[str, set[str]] = {}
    for row in conn.execute("SELECT DISTINCT json_extract(record, '$.analyzers') FROM results"):
        for name, version in json.loads(row[0] or "{}").items():
            analyzers.setdefault(name, set()).add(str(version))
    libraries: dict[str, set[str]] = {}
    for row in conn.execute("SELECT DISTINCT worker FROM batches WHERE worker IS NOT NULL"):
        for name, version in (json.loads(row[0]).get("libraries") or {}).items():
            libraries.setdefault(name, set()).add(str(version))
    return {"analyzers": {k: sorted(v) for k, v in sorted(analyzers.items())},
            "worker_libraries": {k: sorted(v) for k, v in sorted(libraries.items())}}


def _hashsets(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    out = []
    for row in conn.execute("SELECT * FROM hashsets ORDER BY id"):
        item = dict(row)
        item["counts"] = json.loads(item["counts"]) if item.get("counts") else None
        item.pop("category_profile", None)
        out.append(item)
    return out


def timeline(times: list[tuple[str, bool]]) -> dict[str, Any]:
    """Histogram buckets (label, captured, modified) at a unit that fits the time span."""
    now_year = datetime.now(UTC).year
    kept: list[tuple[str, bool]] = []
    out_of_range = 0
    for stamp, captured in times:
        year = int(stamp[:4]) if stamp[:4].isdigit() else 0
        if _TIMELINE_FIRST_YEAR <= year <= now_year + 1:
            kept.append((stamp, captured))
        else:
            out_of_range += 1
    if not kept:
        return {"unit": "month", "buckets": [], "out_of_range": out_of_range}
    first, last = min(s for s, _ in kept), max(s for s, _ in kept)
    span_days = (_date(last) - _date(first)).days
    unit, width = ("day", 10) if span_days <= 92 else ("month", 7) if span_days <= 3660 \
        else ("year", 4)
    counts: dict[str, list[int]] = {}
    for stamp, captured in kept:
        bucket = counts.setdefault(stamp[:width], [0, 0])
        bucket[0 if captured else 1] += 1
    labels = _labels(first[:width], last[:width], unit)
    return {"unit": unit, "out_of_range": out_of_range,
            "buckets": [[label, *counts.get(label, [0, 0])] for label in labels]}


def _date(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp[:10])


def _labels(first: str, last: str, unit: str) -> list[str]:
    """Every bucket label from first to last inclusive, so gaps show as gaps."""
    labels = []
    if unit == "year":
        return [str(y) for y in range(int(first), int(last) + 1)]
    if unit == "month":
        year, month = int(first[:4]), int(first[5:7])
        while f"{year:04d}-{month:02d}" <= last:
            labels.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return labels
    day = datetime.fromisoformat(first).toordinal()
    end = datetime.fromisoformat(last).toordinal()
    return [datetime.fromordinal(d).strftime("%Y-%m-%d") for d in range(day, end + 1)]
