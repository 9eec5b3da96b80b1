"""Plan the carving of an evidence's unallocated space: ranges, pseudo-entries, batches.

Once per evidence, after the walk (a resume keeps the plan). For every volume, its
unallocated bytes (``ingest.unallocated``: the filesystem's own allocation state, the
whole volume where none was recognised) less the runs of the deleted files the walk
found (``ingest.carve.known``: they are analysed as files, a carve would report them
again); then the space between and after partitions. That space, read as one stream per
volume, is cut into ranges of :data:`RANGE_BYTES`; each becomes a pseudo-entry
(``/$Unallocated/range-NNNNN``, numbered across the evidence, kind ``other``, like
Autopsy's ``$Unalloc``) in a batch of its own, so the ranges run as Dask tasks beside
the file batches, resume like them, and the pictures carved from a range are derived
entries of it under its batch's Merkle root. Each range keeps :data:`LOOKAHEAD` bytes
of the following unallocated runs, so a picture that begins in it is read whole even
when it ends in the next range.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ingest.carve import ALIGN, VERSION, RunView, files_runs, kinds_for
from ingest.image import EvidenceImage
from ingest.location import EvidenceLocation, FileEntry
from ingest.unallocated import (
    ByteRun,
    partition_gaps,
    subtract_runs,
    volume_unallocated,
)
from ingest.volumes import Volume, find_volumes
from ingest.walk import open_filesystem
from pipeline.carving import RANGE_BYTES
from pipeline.case.database import CaseDatabase, entry_key
from pipeline.case.store import Case

LOOKAHEAD = 512 << 20  # bytes past its range a task may read to finish a picture
GAP_FS = "partition-gap"  # fs_type of the pseudo-entries over space in no partition
_PLANNED = "carve_planned:"  # case_info key prefix: the evidence's carving is planned


@dataclass(frozen=True)
class Space:
    """One stream of unallocated space: a volume's (or the partition gaps') runs."""

    volume_index: int
    volume_offset: int
    fs_type: str
    runs: list[ByteRun]
    excluded: int = 0  # bytes of deleted files' runs left out


def plan_carving(case: Case, image: EvidenceImage, evidence_id: str, mode: str,
                 range_bytes: int = RANGE_BYTES) -> None:
    """Store the carve ranges and their batches, and ledger the plan (once per evidence)."""
    kinds_for(mode)  # refuses an unknown mode before anything is written
    db = case.db
    if mode == "none" or db.info(_PLANNED + evidence_id) is not None:
        return
    if range_bytes < ALIGN or range_bytes % ALIGN:
        raise ValueError(f"a carve range must be a positive multiple of {ALIGN} bytes")
    spaces, problems = unallocated_spaces(db, image, evidence_id)
    totals: dict[str, Any] = {"ranges": 0, "bytes": 0, "excluded_deleted_bytes": 0}
    with db.atomic():
        for problem in problems:
            db.add_error(stage="carve", error=problem["error"], message=problem["message"],
                         evidence_id=evidence_id, location=problem["location"])
        for space in spaces:
            totals["excluded_deleted_bytes"] += space.excluded
            view = RunView(image, [tuple(r) for r in space.runs])
            for start in range(0, view.size, range_bytes):
                stop = min(start + range_bytes, view.size)
                runs = view.image_runs(start, min(stop + LOOKAHEAD, view.size) - start)
                file_id = _add_range(db, evidence_id, space, totals["ranges"], stop - start)
                db.add_carve_range(file_id, runs, stop - start, mode)
                totals["ranges"] += 1
                totals["bytes"] += stop - start
                db.add_batch(f"{evidence_id[:12]}-carve-{totals['ranges']:06d}", evidence_id,
                             space.volume_offset, [file_id], stop - start)
        db.set_info(_PLANNED + evidence_id, mode)
    case.record("carve.planned", {"evidence_id": evidence_id}, {
        **totals, "method": f"carved {VERSION}", "mode": mode, "align": ALIGN,
        "range_bytes": range_bytes, "lookahead_bytes": LOOKAHEAD,
        "spaces": [{"volume_index": s.volume_index, "volume_offset": s.volume_offset,
                    "fs_type": s.fs_type, "runs": len(s.runs),
                    "bytes": sum(r.length for r in s.runs), "excluded_deleted_bytes": s.excluded}
                   for s in spaces],
        "not_carved": problems,
    })


def carvable(empty: dict[str, Any] | None) -> bool:
    """Whether to carve, given ``run.unreadable``'s verdict when no filesystem was walked:
    raw bytes that look like nothing we can name are carved (a wiped or reformatted card),
    a container exhibit names but cannot open (VDI, LUKS, APFS …) is not."""
    if empty is None:
        return True
    kinds = [empty["kind"], *(v["kind"] for v in empty["volumes"])]
    return any(kind == "unknown" or kind.startswith("blank") for kind in kinds)


def unallocated_spaces(db: CaseDatabase, image: EvidenceImage, evidence_id: str
                       ) -> tuple[list[Space], list[dict[str, Any]]]:
    """Every volume's carvable space and the partition gaps; problems as error records."""
    spaces: list[Space] = []
    problems: list[dict[str, Any]] = []
    seen: set[int] = set()
    for row in db.volumes(evidence_id):
        if row["status"] == "not-allocated" or row["idx"] in seen:
            continue  # partition-table slots are in the gaps; one filesystem per volume
        seen.add(row["idx"])
        volume = Volume(row["idx"], row["offset"], row["length"], row["description"],
                        "allocated")
        fs_type = row["fs_type"] or "none"
        location = {"evidence_id": evidence_id, "volume_index": volume.index,
                    "volume_offset": volume.start, "fs_type": fs_type}
        try:
            if row["fs_type"] is None:
                runs, excluded = volume_unallocated(image, volume, None), 0
            else:
                fs, _ = open_filesystem(image, volume.start, row["fs_type"])
                free = volume_unallocated(image, volume, (fs, row["fs_type"]))
                known = files_runs(fs, volume.start, db.deleted_inodes(
                    evidence_id, volume.start, row["fs_type"]))
                runs = subtract_runs(free, known)
                excluded = sum(r.length for r in free) - sum(r.length for r in runs)
        except Exception as exc:  # unsupported (ISO, APFS …) or damaged allocation data
            problems.append({"error": type(exc).__name__, "message": f"not carved: {exc}",
                             "location": location})
            continue
        if runs:
            spaces.append(Space(volume.index, volume.start, fs_type, runs, excluded))
    try:
        gaps = partition_gaps(image, find_volumes(image))
    except Exception as exc:  # a damaged partition table: recorded, the run goes on
        problems.append({"error": type(exc).__name__, "message": f"partition gaps not"
                         f" carved: {exc}", "location": {"evidence_id": evidence_id}})
        gaps = []
    if gaps:
        spaces.append(Space(-1, 0, GAP_FS, gaps))
    return spaces, problems


def _add_range(db: CaseDatabase, evidence_id: str, space: Space, number: int,
               size: int) -> int:
    name = f"range-{number:05d}"
    location = EvidenceLocation(evidence_id, space.volume_index, space.volume_offset,
                                space.fs_type, 0, f"/$Unallocated/{name}")
    entry = FileEntry(location, name, size, "other", allocated=False,
                      notes=("unallocated space: carve range",))
    db.add_files([entry])
    return db.file_id_by_key(entry_key(location, False))


def carve_spec(db: CaseDatabase, file_ids: list[int]) -> dict[str, Any] | None:
    """What a carve batch's task needs (None for a batch of files)."""
    if len(file_ids) != 1:
        return None
    row = db.carve_range(file_ids[0])
    if row is None:
        return None
    return {"runs": json.loads(row["runs"]), "stop": row["stop"], "mode": row["mode"]}


def interleave(batches: list[Any]) -> list[Any]:
    """File batches and carve batches alternately, so carving runs beside file analysis
    (the ranges are planned after the files, and the runner takes batches in order)."""
    carve = [b for b in batches if "-carve-" in b["id"]]
    files = [b for b in batches if "-carve-" not in b["id"]]
    out: list[Any] = []
    for index in range(max(len(carve), len(files))):
        out.extend(group[index] for group in (files, carve) if index < len(group))
    return out
