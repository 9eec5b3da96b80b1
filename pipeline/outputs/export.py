"""Exports of a case's file entries for other tools.

- ``jsonl``/``csv``: one record per walked entry (the README lists the keys).
- ``bodyfile``: The Sleuth Kit's body format, so ``mactime -b`` builds a timeline.
- ``dfxml``: Digital Forensics XML (``creator``, ``source``, ``volume``, ``fileobject``).
- ``geojson``/``kml``: one point per photo with GPS coordinates, for GIS tools.

All but ``dfxml`` are deterministic (ordered by the walk, no run timestamps), so a
resumed run exports byte-for-byte what an uninterrupted run would; DFXML's
``execution_environment`` names the exporting run, as the schema intends. File names
from seized media are attacker-controlled: CSV cells that a spreadsheet would run as a
formula are neutralised (prefixed with ``'``), text is escaped for XML, bytes that would
break a body-file line are escaped, and export paths are chosen by the examiner, never
by the media.
"""

from __future__ import annotations

import csv
import getpass
import io
import json
import math
import os
import platform
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import escape as xml_escape

from ingest.location import encode_name
from pipeline.case.database import ENTRY_ORDER, EVIDENCE_SHA256_SQL, CaseDatabase
from pipeline.outputs import video_export
from pipeline.versions import TOOL_NAME, library_versions, tool_version

EXIF_KEYS = (
    "make", "model", "serial", "datetime_original", "software", "orientation",
    "gps_latitude", "gps_longitude", "gps_altitude", "has_thumbnail",
    # where each value was read (exif analyzer 1.1): see analyzers/exif.py
    "make_source", "model_source", "datetime_original_source", "gps_source", "exif_reader",
    "problems",
)

COLUMNS = (
    "evidence_sha256", "volume_index", "volume_offset", "fs_type", "inode", "path", "stream",
    "snapshot", "derived_from", "derivation",
    "name", "size", "kind", "allocated", "mtime", "atime", "ctime", "crtime", "mode", "uid",
    "gid", "md5", "sha1", "sha256", "mime", "magic", "extension_mismatch", "exif", "phash",
    "dhash", "pdq", "pdq_quality", "video", "vpdq", "matches", "errors",
)

# The PDQ matching compares: its columns, stored with each result (schema 6; an older
# case's are copied from its records when it is opened).
PDQ_COLUMNS = "r.pdq, r.pdq_quality"

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def iter_records(db: CaseDatabase) -> Iterator[dict[str, Any]]:
    """One dict per walked entry, in walk order, with findings, matches and errors."""
    matches: dict[int, list[dict[str, Any]]] = {}
    video_matched = video_export.video_match_details(db)
    for row in db.conn.execute(
        "SELECT m.file_id, h.name, h.kind, m.algorithm, m.distance, m.category,"
        " m.category_label, m.known_id, m.variant, m.known_value, m.hashset_id"
        " FROM matches m JOIN hashsets h ON h.id = m.hashset_id"
        " ORDER BY m.file_id, h.name, m.algorithm, m.known_value"
    ):
        match = {
            "hashset": row["name"], "algorithm": row["algorithm"],
            "distance": row["distance"], "category": row["category"],
            "category_label": row["category_label"], "known_id": row["known_id"],
            "variant": row["variant"], "known_good": row["kind"] == "known-good",
        }
        if row["algorithm"] == "vpdq":  # both percentages and the matching time ranges
            match.update(video_matched.get((row["file_id"], row["hashset_id"],
                                            row["known_id"]), {}))
        matches.setdefault(row["file_id"], []).append(match)
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
        "SELECT f.*, " + EVIDENCE_SHA256_SQL + ","
        " r.md5, r.sha1, r.sha256, r.mime, r.magic, r.extension_mismatch, r.exif,"
        " r.phash, r.dhash, " + PDQ_COLUMNS + ", " + video_export.VIDEO_SQL + ","
        " p.path AS parent_path, t.path AS twin_path FROM files f"
        " LEFT JOIN results r ON r.file_id = coalesce(f.same_as, f.id)"
        " LEFT JOIN files p ON p.id = f.parent_id LEFT JOIN files t ON t.id = f.same_as"
        f" ORDER BY {ENTRY_ORDER}"
    )
    for row in db.conn.execute(query):
        exif = json.loads(row["exif"]) if row["exif"] else None
        video, vpdq = video_export.video_view(row["video"])
        yield {
            "evidence_sha256": row["evidence_sha256"],
            "volume_index": row["volume_index"],
            "volume_offset": row["volume_offset"],
            "fs_type": row["fs_type"],
            "inode": row["inode"],
            "path": row["path"],
            "stream": row["stream"],
            "derived_from": row["parent_path"],
            "derivation": _last_step(row["derivation"]),
            "snapshot": json.loads(row["snapshot"]) if row["snapshot"] else None,
            # a shadow copy's entry analysed once with the live file at this path
            "same_content_as": row["twin_path"],
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
            "pdq": row["pdq"],
            "pdq_quality": row["pdq_quality"],
            "video": video,
            "vpdq": vpdq,
            "matches": matches.get(row["id"], []),
            "errors": errors.get(row["id"], []),
        }


def _last_step(derivation: str | None) -> dict[str, Any] | None:
    """How a derived entry came out of its parent (the full chain is in the ledger)."""
    steps = json.loads(derivation) if derivation else []
    return steps[-1] if steps else None


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
                cell = None if value is None else value.get(exif_key)
                flat[f"exif_{exif_key}"] = "; ".join(cell) if isinstance(cell, list) else cell
        elif key == "video":
            flat.update(video_export.csv_cells(value, record["vpdq"]))
        elif key == "vpdq":
            continue
        elif key == "matches":
            flat[key] = ";".join(
                f"{m['hashset']}:{m['algorithm']}:{m['distance']}:{m['category'] or ''}"
                for m in value
            )
        elif key == "derivation":
            flat[key] = None if value is None else (
                value["method"] + (f":{value['inner']}" if value.get("inner") is not None
                                   else "")
                + (f"@{value['offset']}+{value['length']}" if value.get("offset") is not None
                   else ""))
        elif key == "snapshot":  # a volume shadow copy's entry: store index, id, created
            flat[key] = None if value is None else (
                f"{value['index']}:{value['id']}:{value.get('created') or ''}")
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
        elif key == "video":
            columns.extend(video_export.csv_columns())
        elif key == "vpdq":
            continue
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


# -- The Sleuth Kit body file ---------------------------------------------------------

# tsk_fs_name_type_str / tsk_fs_meta_type_str: the letters fls -m prints for each kind.
_KIND_LETTER = {"file": "r", "directory": "d", "symlink": "l", "other": "-"}
# TSK's virtual entries: exhibit's walk records them as plain files/directories with no
# metadata of their own (mode 0, no times); fls prints them as v/v and V/V.
_VIRTUAL_NAMES = {"/$MBR", "/$FAT1", "/$FAT2", "/$OrphanFiles"}
_BODY_UNSAFE = {ord("|"), ord("\n"), ord("\r")}


def _epoch(stamp: str | None) -> int:
    """Whole seconds since 1970 of a stored UTC ISO time; 0 when unknown (as fls writes)."""
    if not stamp:
        return 0
    return int(datetime.fromisoformat(stamp[:19]).replace(tzinfo=UTC).timestamp())


def _permissions(mode: int) -> str:
    """The nine ``ls -l`` permission letters, with setuid/setgid/sticky as TSK prints them."""
    out = []
    for shift, special, letter in ((6, 0o4000, "s"), (3, 0o2000, "s"), (0, 0o1000, "t")):
        bits = (mode >> shift) & 7
        out.append("r" if bits & 4 else "-")
        out.append("w" if bits & 2 else "-")
        if mode & special:
            out.append(letter if bits & 1 else letter.upper())
        else:
            out.append("x" if bits & 1 else "-")
    return "".join(out)


def body_mode(kind: str, mode: int | None, path: str, has_times: bool) -> str:
    """The body file's mode string, e.g. ``r/rrw-r--r--`` (name type / meta type + perms)."""
    if path in _VIRTUAL_NAMES and not mode and not has_times:
        letter = "V" if kind == "directory" else "v"
        return f"{letter}/{letter}---------"
    letter = _KIND_LETTER.get(kind, "-")
    if mode is None:  # a name without metadata
        return f"{letter}/----------"
    return f"{letter}/{letter}{_permissions(mode)}"


def body_name(path: str, stream: str | None, allocated: bool,
              meta_allocated: bool | None) -> str:
    r"""The name column: the media's raw bytes (as fls writes them), TSK's deletion marks.

    Returned as text whose undecodable bytes are surrogate escapes, for a file opened
    with ``errors="surrogateescape"``. ``|`` and line breaks, which fls writes raw (so
    mactime drops the line: sleuthkit issue 2124), are written as ``\x7c``/``\x0a``/``\x0d``.
    """
    raw = encode_name(path if stream is None else f"{path}:{stream}")
    if any(b in _BODY_UNSAFE for b in raw):
        raw = b"".join(b"\\x%02x" % b if b in _BODY_UNSAFE else bytes([b]) for b in raw)
    name = raw.decode("utf-8", errors="surrogateescape")
    if not allocated:
        name += " (deleted-realloc)" if meta_allocated else " (deleted)"
    return name


def write_bodyfile(db: CaseDatabase, out: IO[str]) -> int:
    """``MD5|name|inode|mode|UID|GID|size|atime|mtime|ctime|crtime``, one line per entry.

    Mount point ``/`` for every volume, like ``fls -r -m /`` run on each partition. The
    MD5 column holds the file's MD5 when exhibit hashed it (fls writes 0).
    """
    count = 0
    for row in db.conn.execute(
        "SELECT f.path, f.stream, f.inode, f.kind, f.mode, f.uid, f.gid, f.size, f.allocated,"
        " f.meta_allocated, f.atime, f.mtime, f.ctime, f.crtime, f.snapshot, r.md5"
        f" FROM files f LEFT JOIN results r ON r.file_id = f.id ORDER BY {ENTRY_ORDER}"
    ):
        times = [row["atime"], row["mtime"], row["ctime"], row["crtime"]]
        meta_allocated = None if row["meta_allocated"] is None else bool(row["meta_allocated"])
        name = body_name(row["path"], row["stream"], bool(row["allocated"]), meta_allocated)
        if row["snapshot"]:  # the same path in a shadow copy is another entry: say which
            name += f" (shadow copy {json.loads(row['snapshot'])['index']})"
        fields = [
            row["md5"] or "0",
            name,
            str(row["inode"]),
            body_mode(row["kind"], row["mode"], row["path"], any(times)),
            str(row["uid"] or 0), str(row["gid"] or 0), str(max(0, row["size"])),
            *(str(_epoch(t)) for t in times),
        ]
        out.write("|".join(fields) + "\n")
        count += 1
    return count


# -- DFXML ------------------------------------------------------------------------------

DFXML_NS = "http://www.forensicswiki.org/wiki/Category:Digital_Forensics_XML"
DC_NS = "http://purl.org/dc/elements/1.1/"
DFXML_VERSION = "1.2.0"
# TSK_FS_META_TYPE_ENUM values, which fiwalk writes as meta_type.
_META_TYPE = {"file": 1, "directory": 2, "symlink": 6}
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: Any) -> str:
    r"""Escape for XML 1.0; characters XML cannot hold at all become ``\xNN``."""
    text = _XML_BAD.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))
    return xml_escape(text, {'"': "&quot;"})


def _tag(name: str, value: Any, **attrs: Any) -> str:
    extra = "".join(f' {k}="{xml_text(v)}"' for k, v in attrs.items())
    return f"<{name}{extra}>{xml_text(value)}</{name}>"


def write_dfxml(db: CaseDatabase, out: IO[str]) -> int:
    """DFXML with fiwalk's element order (the schema's sequences follow fiwalk).

    ``partition`` is the 1-based order of the walked volume within its evidence;
    ``byte_runs`` are left out because exhibit does not record block runs yet.
    """
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(f'<dfxml xmlns="{DFXML_NS}" xmlns:dc="{DC_NS}" version="{DFXML_VERSION}">\n')
    out.write("  <metadata><dc:type>File system walk of seized media (exhibit)</dc:type>"
              "</metadata>\n")
    out.write(f"  <creator version=\"{DFXML_VERSION}\">\n")
    out.write(f"    {_tag('program', TOOL_NAME)}\n    {_tag('version', tool_version())}\n")
    uname = platform.uname()
    out.write("    <execution_environment>\n")
    for tag, value in (("os_sysname", uname.system), ("os_release", uname.release),
                       ("os_version", uname.version), ("host", uname.node),
                       ("arch", uname.machine), ("command_line", " ".join(sys.argv)),
                       ("uid", os.getuid()), ("username", getpass.getuser()),
                       ("start_time", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))):
        out.write(f"      {_tag(tag, value)}\n")
    out.write("    </execution_environment>\n")
    for name, version in sorted(library_versions().items()):
        out.write(f'    <library name="{xml_text(name)}" version="{xml_text(version)}"/>\n')
    out.write("  </creator>\n  <source>\n")
    evidence = db.conn.execute("SELECT id, paths FROM evidence ORDER BY registered_at, id")
    for ev in evidence.fetchall():
        for path in json.loads(ev["paths"]):
            out.write(f"    {_tag('image_filename', path)}\n")
    out.write("  </source>\n")
    count = 0
    for ev in db.conn.execute("SELECT id FROM evidence ORDER BY registered_at, id").fetchall():
        walked = [v for v in db.volumes(ev["id"]) if v["status"] in ("walked", "stalled")]
        for ordinal, volume in enumerate(walked + _carved_only(db, ev["id"], walked), start=1):
            out.write(f'  <volume offset="{volume["offset"]}">\n')
            if volume["offset"] > 0 or isinstance(volume, dict):  # dict: carved space only
                out.write(f"    {_tag('partition_offset', volume['offset'])}\n")
            out.write(f"    {_tag('ftype_str', volume['fs_type'])}\n")
            count += _dfxml_files(db, out, ev["id"], volume, ordinal)
            out.write("  </volume>\n")
    out.write("</dfxml>\n")
    return count


def _carved_only(db: CaseDatabase, evidence_id: str, walked: list[Any]) -> list[dict[str, Any]]:
    """Carved space outside every walked filesystem (a volume without one, partition gaps)."""
    known = {(v["offset"], v["fs_type"]) for v in walked}
    rows = db.conn.execute(
        "SELECT DISTINCT volume_offset, fs_type FROM files WHERE evidence_id = ? AND"
        " parent_id IS NULL AND path LIKE '/$Unallocated/%' ORDER BY volume_offset, fs_type",
        (evidence_id,)).fetchall()
    return [{"offset": r[0], "fs_type": r[1]} for r in rows if (r[0], r[1]) not in known]


def _dfxml_files(db: CaseDatabase, out: IO[str], evidence_id: str, volume: Any,
                 partition: int) -> int:
    count = 0
    rows = db.conn.execute(
        "SELECT f.*, r.md5, r.sha1, r.sha256, r.magic FROM files f"
        " LEFT JOIN results r ON r.file_id = f.id"
        f" WHERE f.evidence_id = ? AND f.volume_offset = ? AND f.fs_type = ?"
        f" ORDER BY {ENTRY_ORDER}",
        (evidence_id, volume["offset"], volume["fs_type"]))
    for row in rows:
        times = [row["atime"], row["mtime"], row["ctime"], row["crtime"]]
        mode = body_mode(row["kind"], row["mode"], row["path"], any(times))
        path = row["path"].lstrip("/")
        if row["stream"]:
            path = f"{path}:{row['stream']}"
        parts = [
            _tag("filename", path),
            _tag("partition", partition),
            _tag("id", row["id"]),
            _tag("name_type", mode[0].lower()),  # the schema has no "V": v + meta_type 11
            _tag("filesize", max(0, row["size"])),
            _tag("alloc", 1) if row["allocated"] else _tag("unalloc", 1),  # as fiwalk
        ]
        if "orphan (no parent directory)" in row["notes"]:
            parts.append(_tag("orphan", 1))
        parts.append(_tag("inode", row["inode"]))
        meta_type = 10 if mode[2] == "v" else 11 if mode[2] == "V" else _META_TYPE.get(
            row["kind"])
        if meta_type is not None and row["mode"] is not None:
            parts.append(_tag("meta_type", meta_type))
        for key in ("mode", "uid", "gid"):
            if row[key] is not None:
                parts.append(_tag(key, row[key]))
        for key in ("mtime", "ctime", "atime", "crtime"):  # the schema's order
            if row[key]:
                parts.append(_tag(key, row[key]))
        if row["magic"]:
            parts.append(_tag("libmagic", row["magic"]))
        for algo in ("md5", "sha1", "sha256"):
            if row[algo]:
                parts.append(_tag("hashdigest", row[algo], type=algo))
        out.write("    <fileobject>\n      " + "\n      ".join(parts) + "\n    </fileobject>\n")
        count += 1
    return count


# -- GeoJSON and KML --------------------------------------------------------------------


def iter_photos(db: CaseDatabase) -> Iterator[dict[str, Any]]:
    """Every analysed file whose EXIF holds a GPS position, in walk order; then videos."""
    for row in db.conn.execute(
        "SELECT f.id, " + EVIDENCE_SHA256_SQL + ","
        " f.volume_index, f.volume_offset, f.fs_type, f.inode, f.path, f.stream, f.name,"
        " f.allocated, f.mtime, r.sha256, r.mime, r.exif"
        " FROM files f JOIN results r ON r.file_id = f.id WHERE r.exif IS NOT NULL"
        f" ORDER BY {ENTRY_ORDER}"
    ):
        exif = json.loads(row["exif"])
        lat, lon = exif.get("gps_latitude"), exif.get("gps_longitude")
        if not isinstance(lat, int | float) or not isinstance(lon, int | float):
            continue
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            continue  # a corrupt tag is not a place
        alt = exif.get("gps_altitude")
        if not isinstance(alt, int | float) or not math.isfinite(alt):
            alt = None  # JSON has no NaN; a corrupt rational can give one
        yield {
            "latitude": lat, "longitude": lon, "altitude": alt,
            "time": exif.get("datetime_original_iso"),
            "camera_make": exif.get("make"), "camera_model": exif.get("model"),
            "camera_serial": exif.get("serial"),
            "path": row["path"], "name": row["name"], "allocated": bool(row["allocated"]),
            "sha256": row["sha256"], "mime": row["mime"], "mtime": row["mtime"],
            "evidence_sha256": row["evidence_sha256"], "volume_index": row["volume_index"],
            "volume_offset": row["volume_offset"], "fs_type": row["fs_type"],
            "inode": row["inode"], "stream": row["stream"],
        }
    yield from video_export.iter_video_points(db)


def write_geojson(db: CaseDatabase, out: IO[str]) -> int:
    """An RFC 7946 FeatureCollection: Point [lon, lat(, alt)] with time, camera and path."""
    out.write('{"type": "FeatureCollection", "features": [')
    count = 0
    for photo in iter_photos(db):
        coords = [photo["longitude"], photo["latitude"]]
        if isinstance(photo["altitude"], int | float):
            coords.append(photo["altitude"])
        props = {k: v for k, v in photo.items() if k not in ("latitude", "longitude")}
        feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": coords},
                   "properties": props}
        out.write(("\n" if count == 0 else ",\n") + json.dumps(feature, ensure_ascii=False))
        count += 1
    out.write("\n]}\n")
    return count


def write_kml(db: CaseDatabase, out: IO[str]) -> int:
    """KML 2.2: one Placemark per photo (name, TimeStamp, description, Point)."""
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n'
              '<kml xmlns="http://www.opengis.net/kml/2.2">\n<Document>\n'
              f"  {_tag('name', 'exhibit: photos with GPS positions')}\n")
    count = 0
    for photo in iter_photos(db):
        camera = " ".join(str(v) for v in (photo["camera_make"], photo["camera_model"]) if v)
        lines = [f"path: {photo['path']}", f"camera: {camera or 'unknown'}",
                 f"taken: {photo['time'] or 'unknown'}", f"sha256: {photo['sha256']}",
                 f"evidence: {photo['evidence_sha256']} volume {photo['volume_index']}"
                 f" inode {photo['inode']}", "allocated" if photo["allocated"] else "DELETED"]
        alt = photo["altitude"] if isinstance(photo["altitude"], int | float) else 0
        out.write("  <Placemark>\n")
        out.write(f"    {_tag('name', photo['name'])}\n")
        if photo["time"]:
            out.write(f"    <TimeStamp>{_tag('when', photo['time'])}</TimeStamp>\n")
        out.write(f"    {_tag('description', chr(10).join(lines))}\n")
        out.write(f"    <Point><coordinates>{photo['longitude']},{photo['latitude']},{alt}"
                  "</coordinates></Point>\n  </Placemark>\n")
        count += 1
    out.write("</Document>\n</kml>\n")
    return count


WRITERS = {"jsonl": write_jsonl, "csv": write_csv, "bodyfile": write_bodyfile,
           "dfxml": write_dfxml, "geojson": write_geojson, "kml": write_kml}
SUFFIXES = {"jsonl": "jsonl", "csv": "csv", "bodyfile": "body", "dfxml": "dfxml",
            "geojson": "geojson", "kml": "kml"}


def export(db: CaseDatabase, fmt: str, path: Path, bom: bool = False) -> int:
    """Write the export atomically (temp file, fsync, rename); returns the row count."""
    if fmt not in WRITERS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {sorted(WRITERS)}")
    if bom and fmt != "csv":
        raise ValueError("a byte-order mark is only written for csv")
    tmp = path.with_name(path.name + ".partial")
    # surrogateescape: the body file writes names as the raw bytes the media held
    with tmp.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="",
                  errors="surrogateescape") as out:
        count = WRITERS[fmt](db, out)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    return count


def render(db: CaseDatabase, fmt: str) -> str:
    buf = io.StringIO()
    WRITERS[fmt](db, buf)
    return buf.getvalue()
