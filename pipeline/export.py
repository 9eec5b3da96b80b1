"""Exports of a case's file entries: JSON Lines and CSV.

Both are deterministic (ordered by the walk, no run timestamps), so a resumed run
exports byte-for-byte what an uninterrupted run would. File names from seized media are
attacker-controlled: CSV cells that a spreadsheet would run as a formula are neutralised
(prefixed with ``'``), and export paths are chosen by the examiner, never by the media.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pipeline.casedb import CaseDatabase

EXIF_KEYS = (
    "make", "model", "serial", "datetime_original", "software", "orientation",
    "gps_latitude", "gps_longitude", "gps_altitude", "has_thumbnail",
)

COLUMNS = (
    "evidence_sha256", "volume_index", "volume_offset", "fs_type", "inode", "path", "stream",
    "name", "size", "kind", "allocated", "mtime", "atime", "ctime", "crtime", "mode", "uid",
    "gid", "md5", "sha1", "sha256", "mime", "magic", "extension_mismatch", "exif", "phash",
    "dhash", "matches", "errors",
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def iter_records(db: CaseDatabase) -> Iterator[dict[str, Any]]:
    """One dict per walked entry, in walk order, with findings, matches and errors."""
    matches: dict[int, list[dict[str, Any]]] = {}
    for row in db.conn.execute(
        "SELECT m.file_id, h.name, m.algorithm, m.distance, m.category, m.known_value"
        " FROM matches m JOIN hashsets h ON h.id = m.hashset_id"
        " ORDER BY m.file_id, h.name, m.algorithm, m.known_value"
    ):
        matches.setdefault(row["file_id"], []).append({
            "hashset": row["name"], "algorithm": row["algorithm"],
            "distance": row["distance"], "category": row["category"],
        })
    errors: dict[int, list[dict[str, Any]]] = {}
    for row in db.conn.execute(
        "SELECT file_id, stage, analyzer, error, message FROM errors"
        " WHERE file_id IS NOT NULL ORDER BY file_id, id"
    ):
        errors.setdefault(row["file_id"], []).append({
            "stage": row["stage"], "analyzer": row["analyzer"], "error": row["error"],
            "message": row["message"],
        })
    query = (
        "SELECT f.*, r.md5, r.sha1, r.sha256, r.mime, r.magic, r.extension_mismatch, r.exif,"
        " r.phash, r.dhash FROM files f LEFT JOIN results r ON r.file_id = f.id ORDER BY f.id"
    )
    for row in db.conn.execute(query):
        exif = json.loads(row["exif"]) if row["exif"] else None
        yield {
            "evidence_sha256": row["evidence_id"],
            "volume_index": row["volume_index"],
            "volume_offset": row["volume_offset"],
            "fs_type": row["fs_type"],
            "inode": row["inode"],
            "path": row["path"],
            "stream": row["stream"],
            "name": row["name"],
            "size": row["size"],
            "kind": row["kind"],
            "allocated": bool(row["allocated"]),
            "mtime": row["mtime"],
            "atime": row["atime"],
            "ctime": row["ctime"],
            "crtime": row["crtime"],
            "mode": row["mode"],
            "uid": row["uid"],
            "gid": row["gid"],
            "md5": row["md5"],
            "sha1": row["sha1"],
            "sha256": row["sha256"],
            "mime": row["mime"],
            "magic": row["magic"],
            "extension_mismatch": None if row["extension_mismatch"] is None
            else bool(row["extension_mismatch"]),
            "exif": _exif_view(exif),
            "phash": row["phash"],
            "dhash": row["dhash"],
            "matches": matches.get(row["id"], []),
            "errors": errors.get(row["id"], []),
        }


def _exif_view(exif: dict[str, Any] | None) -> dict[str, Any] | None:
    if not exif or not exif.get("present", True):
        return None
    return {key: exif.get(key) for key in EXIF_KEYS}


def write_jsonl(db: CaseDatabase, out: IO[str]) -> int:
    count = 0
    for record in iter_records(db):
        out.write(json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n")
        count += 1
    return count


def neutralise_cell(value: Any) -> Any:
    """Defuse spreadsheet formulas in text cells (OWASP CSV injection guidance)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key in COLUMNS:
        value = record[key]
        if key == "exif":
            for exif_key in EXIF_KEYS:
                flat[f"exif_{exif_key}"] = None if value is None else value.get(exif_key)
        elif key == "matches":
            flat[key] = ";".join(
                f"{m['hashset']}:{m['algorithm']}:{m['distance']}:{m['category'] or ''}"
                for m in value
            )
        elif key == "errors":
            flat[key] = ";".join(f"{e['stage']}/{e['analyzer'] or '-'}: {e['message']}"
                                 for e in value)
        else:
            flat[key] = value
    return flat


def csv_columns() -> list[str]:
    columns: list[str] = []
    for key in COLUMNS:
        if key == "exif":
            columns.extend(f"exif_{k}" for k in EXIF_KEYS)
        else:
            columns.append(key)
    return columns


def write_csv(db: CaseDatabase, out: IO[str]) -> int:
    writer = csv.DictWriter(out, fieldnames=csv_columns(), lineterminator="\r\n")
    writer.writeheader()
    count = 0
    for record in iter_records(db):
        row = {k: neutralise_cell(_csv_value(v)) for k, v in flatten(record).items()}
        writer.writerow(row)
        count += 1
    return count


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


WRITERS = {"jsonl": write_jsonl, "csv": write_csv}


def export(db: CaseDatabase, fmt: str, path: Path, bom: bool = False) -> int:
    """Write the export atomically (temp file, fsync, rename); returns the row count."""
    if fmt not in WRITERS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {sorted(WRITERS)}")
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as out:
        count = WRITERS[fmt](db, out)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    return count


def render(db: CaseDatabase, fmt: str) -> str:
    buf = io.StringIO()
    WRITERS[fmt](db, buf)
    return buf.getvalue()
