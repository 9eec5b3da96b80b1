"""Export what matched: VICS 2.0 JSON (back to a national database) and a CSV of matches.

- **VICS JSON**: one ``Media`` per distinct content (MD5) among the files that matched an
  alert set, with ``MD5``/``SHA1``/``SHA256``, perceptual hashes as ``AlternativeHashes``
  (``PDQ``, ``pHash``, ``dHash``), the category of its closest match (exact before near;
  the set's own value, so a VICS number stays a number), ``IsPrecategorized`` (true: the
  category came from a hash set, not from review), ``Series`` (exhibit's near-duplicate
  group) and ``MediaFiles[]`` with every location of that content on the media. The file
  imports back into exhibit (and any VICS 2.0 reader) as a hash set.
- **CSV**: one row per match (file × set × algorithm), with the file's digests and
  perceptual hashes, so it also imports back as a CSV hash set. Cells that a spreadsheet
  would run as formulas are neutralised, as in the main CSV export.

Both are deterministic (ordered by file id, set name, algorithm), so a resumed triage
exports the same bytes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import IO, Any

from pipeline.case.database import EVIDENCE_SHA256_SQL, CaseDatabase
from pipeline.outputs.export import neutralise_cell

VICS_CONTEXT = ("http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/CUSTOM/"
                "$metadata#Media")

CSV_COLUMNS = (
    "evidence_sha256", "volume_offset", "inode", "path", "name", "size", "md5", "sha1",
    "sha256", "phash", "dhash", "pdq", "pdq_quality", "hashset", "hashset_kind", "algorithm",
    "distance", "variant", "category", "category_label", "known_id", "known_media_id",
    "series",
)

_ALGO_RANK = {"sha256": 0, "sha1": 1, "md5": 2, "pdq": 3, "phash": 4, "dhash": 5}


def iter_matches(db: CaseDatabase) -> Iterator[dict[str, Any]]:
    """One dict per match row, in a stable order."""
    query = (
        "SELECT f.id AS file_id, " + EVIDENCE_SHA256_SQL + ","
        " f.volume_offset, f.inode, f.path, f.name,"
        " f.size, r.md5, r.sha1, r.sha256, r.phash, r.dhash, r.pdq, r.pdq_quality,"
        " h.name AS hashset, h.kind AS hashset_kind, m.algorithm, m.distance, m.variant,"
        " m.category, m.category_label, m.known_id, e.media_id AS known_media_id,"
        " g.group_id FROM matches m JOIN files f ON f.id = m.file_id"
        " JOIN results r ON r.file_id = f.id JOIN hashsets h ON h.id = m.hashset_id"
        " LEFT JOIN known_entries e ON e.id = m.known_id"
        " LEFT JOIN media_groups g ON g.file_id = f.id"
        " ORDER BY f.id, h.name, m.algorithm, m.known_value"
    )
    for row in db.conn.execute(query):
        record = dict(row)
        group = record.pop("group_id")
        record["series"] = None if group is None else f"exhibit-group-{group}"
        yield record


def write_matches_csv(db: CaseDatabase, out: IO[str]) -> int:
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore",
                            lineterminator="\r\n")
    writer.writeheader()
    count = 0
    for record in iter_matches(db):
        writer.writerow({k: neutralise_cell("" if record[k] is None else record[k])
                         for k in CSV_COLUMNS})
        count += 1
    return count


def vics_document(db: CaseDatabase, case_id: str) -> dict[str, Any]:
    """The VICS 2.0 document for the media that matched alert sets."""
    media: dict[str, dict[str, Any]] = {}
    best: dict[str, tuple[int, int]] = {}
    for m in iter_matches(db):
        if m["hashset_kind"] == "known-good" or not m["md5"]:
            continue
        item = media.get(m["md5"])
        if item is None:
            item = media[m["md5"]] = _media(m, len(media) + 1)
        location = {"FileName": m["name"], "FilePath": m["path"],
                    "SourceID": f"{m['evidence_sha256']}:{m['volume_offset']}:{m['inode']}"}
        if location not in item["MediaFiles"]:
            item["MediaFiles"].append(location)
        rank = (_ALGO_RANK.get(m["algorithm"], 9), m["distance"])
        if m["category"] is not None and (m["md5"] not in best or rank < best[m["md5"]]):
            best[m["md5"]] = rank
            item["Category"] = int(m["category"]) if m["category"].isdigit() else m["category"]
            item["Comments"] = (f"exhibit: {m['algorithm']} match, distance {m['distance']},"
                                f" set {m['hashset']}" + (f", known MediaID {m['known_media_id']}"
                                                         if m["known_media_id"] else ""))
        if m["series"] and not item.get("Series"):
            item["Series"] = m["series"]
    return {
        "@odata.context": VICS_CONTEXT,
        "value": [{
            "CaseID": case_id,
            "SourceApplicationName": "exhibit",
            "Media": list(media.values()),
        }],
    }


def _media(m: dict[str, Any], media_id: int) -> dict[str, Any]:
    alternatives = [{"HashName": name, "HashValue": m[key]}
                    for name, key in (("PDQ", "pdq"), ("pHash", "phash"), ("dHash", "dhash"))
                    if m[key]]
    item: dict[str, Any] = {
        "MediaID": media_id, "MD5": m["md5"].upper(), "SHA1": m["sha1"].upper(),
        "SHA256": m["sha256"].upper(), "MediaSize": m["size"], "IsPrecategorized": True,
        "AlternativeHashes": alternatives, "MediaFiles": [],
    }
    return item


def write_vics(db: CaseDatabase, out: IO[str], case_id: str = "exhibit") -> int:
    doc = vics_document(db, case_id)
    out.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return len(doc["value"][0]["Media"])


WRITERS = {"vics": write_vics, "csv": write_matches_csv}
