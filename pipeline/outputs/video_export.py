"""The video part of the exports: the ``video`` object, its CSV cells and its GPS points.

JSONL gets a ``video`` object per video (``duration`` in seconds, ``width``, ``height``,
``codec``, ``fps``, ``bit_rate``, ``creation_time``, GPS, device, the decoding counts and
the contact sheet's digest) and ``vpdq``: python-threatexchange's JSON list form — a list
of ``"pdq,quality,timestamp"`` strings, the form ThreatExchange tools read back. CSV
flattens the object into ``video_*`` columns and carries ``vpdq`` as that JSON text.
GeoJSON/KML get a point for every video whose container states a position.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from pipeline.case.database import ENTRY_ORDER, EVIDENCE_SHA256_SQL, CaseDatabase

VIDEO_KEYS = (
    "container", "duration", "width", "height", "codec", "pixel_format", "fps", "bit_rate",
    "audio", "creation_time", "creation_time_source", "gps_latitude", "gps_longitude",
    "gps_altitude", "gps_source", "make", "model", "software", "seconds_per_hash",
    "frames_decoded", "frames_hashed", "budget_reached",
)
VIDEO_SQL = "json_extract(r.record, '$.findings.video') AS video"


def video_view(text: str | None) -> tuple[dict[str, Any] | None, list[str] | None]:
    """(the ``video`` object, the ``vpdq`` list) from the stored findings' JSON."""
    if not text:
        return None, None
    found = json.loads(text)
    view = {key: found.get(key) for key in VIDEO_KEYS}
    view["contact_sheet_sha256"] = (found.get("contact_sheet") or {}).get("sha256")
    return view, found.get("vpdq")


def csv_cells(video: dict[str, Any] | None, vpdq: list[str] | None) -> dict[str, Any]:
    cells = {f"video_{key}": None if video is None else video.get(key)
             for key in (*VIDEO_KEYS, "contact_sheet_sha256")}
    cells["vpdq"] = None if vpdq is None else json.dumps(vpdq)
    return cells


def csv_columns() -> list[str]:
    return [f"video_{key}" for key in (*VIDEO_KEYS, "contact_sheet_sha256")] + ["vpdq"]


def video_match_details(db: CaseDatabase) -> dict[tuple[int, int, int], dict[str, Any]]:
    """Percentages and ranges of every vPDQ match, by (file, set, known entry)."""
    return {(r["file_id"], r["hashset_id"], r["known_id"]): {
        "query_pct": r["query_pct"], "compared_pct": r["compared_pct"],
        "ranges": json.loads(r["ranges"]), "known_ranges": json.loads(r["known_ranges"])}
        for r in db.conn.execute("SELECT * FROM video_matches")}


def iter_video_points(db: CaseDatabase) -> Iterator[dict[str, Any]]:
    """Videos whose container states a position, in walk order (as photos are)."""
    for row in db.conn.execute(
        "SELECT f.id, " + EVIDENCE_SHA256_SQL + ","
        " f.volume_index, f.volume_offset, f.fs_type, f.inode, f.path, f.stream, f.name,"
        " f.allocated, f.mtime, r.sha256, r.mime, " + VIDEO_SQL +
        " FROM files f JOIN results r ON r.file_id = f.id WHERE"
        " json_extract(r.record, '$.findings.video.gps_latitude') IS NOT NULL"
        f" ORDER BY {ENTRY_ORDER}"
    ):
        video = json.loads(row["video"])
        lat, lon = video.get("gps_latitude"), video.get("gps_longitude")
        if not isinstance(lat, int | float) or not isinstance(lon, int | float) \
                or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            continue
        alt = video.get("gps_altitude")
        if not isinstance(alt, int | float) or not math.isfinite(alt):
            alt = None
        yield {
            "latitude": lat, "longitude": lon, "altitude": alt,
            "time": video.get("creation_time"),
            "camera_make": video.get("make"), "camera_model": video.get("model"),
            "camera_serial": None,
            "path": row["path"], "name": row["name"], "allocated": bool(row["allocated"]),
            "sha256": row["sha256"], "mime": row["mime"], "mtime": row["mtime"],
            "evidence_sha256": row["evidence_sha256"], "volume_index": row["volume_index"],
            "volume_offset": row["volume_offset"], "fs_type": row["fs_type"],
            "inode": row["inode"], "stream": row["stream"],
        }
