"""Find the volumes and walk every filesystem into the case, once per evidence.

The whole walk is one database transaction: an interrupted walk leaves nothing, and a
resumed run walks again. The ledger gets the volumes found and one entry per volume.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from ingest.errors import IngestError
from ingest.image import EvidenceImage
from ingest.volumes import Volume, find_volumes
from ingest.walk import FilesystemWalker, open_filesystem
from pipeline.case.store import Case
from pipeline.run.progress import Reporter


def walk_evidence(case: Case, image: EvidenceImage, evidence_id: str,
                  reporter: Reporter) -> None:
    """Walk every volume of ``image`` unless a complete walk is already stored."""
    db = case.db
    row = db.evidence(evidence_id)
    if row is not None and row["walk_complete"]:
        return
    scan = find_volumes(image)
    with db.atomic():
        db.forget_walk(evidence_id)
        db.set_partition_table(evidence_id, scan.partition_table)
        walked = [_walk_volume(case, image, evidence_id, volume, reporter)
                  for volume in scan.volumes]
        db.mark_walk_complete(evidence_id)
    case.record("volumes.found", {"evidence_id": evidence_id}, {
        "partition_table": scan.partition_table,
        "warnings": scan.warnings,
        "volumes": [
            {"index": v.index, "offset": v.start, "length": v.length,
             "description": v.description, "flag": v.flag}
            for v in scan.volumes
        ],
    })
    for subject, details in walked:
        action = "filesystem.walked" if details.get("status") == "walked" else "volume.skipped"
        if details.get("status") == "no-filesystem":
            action = "error"
        case.record(action, subject, details)


def _walk_volume(case: Case, image: EvidenceImage, evidence_id: str, volume: Volume,
                 reporter: Reporter) -> tuple[dict[str, Any], dict[str, Any]]:
    """Store one volume's entries; returns its ledger subject and details."""
    db = case.db
    subject = {"evidence_id": evidence_id, "volume_index": volume.index,
               "volume_offset": volume.start}
    base = {"evidence_id": evidence_id, "idx": volume.index, "offset": volume.start,
            "length": volume.length, "description": volume.description,
            "allocated": int(volume.is_filesystem_candidate)}
    if not volume.is_filesystem_candidate:
        detail = {"status": "not-allocated", "flag": volume.flag,
                  "description": volume.description}
        db.add_volume(dict(base, fs_type=None, status="not-allocated",
                           detail=json.dumps(detail)))
        return subject, detail
    try:
        fs, fs_type = open_filesystem(image, volume.start)
    except IngestError as exc:
        detail = {"status": "no-filesystem", "stage": "walk", "message": str(exc),
                  "description": volume.description}
        db.add_volume(dict(base, fs_type=None, status="no-filesystem",
                           detail=json.dumps(detail)))
        db.add_error(stage="walk", error="NoFilesystem", message=str(exc),
                     evidence_id=evidence_id, location=subject)
        return subject, detail
    walker = FilesystemWalker(image, volume, evidence_id, fs=fs, fs_type=fs_type)
    failure = None
    with reporter.count_task(f"Walking volume {volume.index} ({fs_type})") as advance:
        entries = _Counting(iter(walker), advance)
        try:
            db.add_files(entries)
        except IngestError as exc:  # keep what was read; say where the walk stopped
            failure = str(exc)
            db.add_error(stage="walk", error="WalkFailed", message=failure,
                         evidence_id=evidence_id, location=dict(subject, fs_type=fs_type))
    stats = walker.stats
    for note in stats.notes:
        db.add_error(stage="walk", error="WalkProblem", message=note,
                     evidence_id=evidence_id, location=dict(subject, fs_type=fs_type))
    detail = {"status": "walked", "fs_type": fs_type, "entries": entries.count,
              **stats.to_dict()}
    if failure:
        detail["walk_error"] = failure
    db.add_volume(dict(base, fs_type=fs_type, status="walked", detail=json.dumps(detail)))
    return dict(subject, fs_type=fs_type), detail


class _Counting:
    """Pass entries through, counting them and advancing a progress display."""

    def __init__(self, entries: Iterator[Any], advance: Callable[[int], None] | None) -> None:
        self.entries = entries
        self.advance = advance
        self.count = 0

    def __iter__(self) -> Iterator[Any]:
        for entry in self.entries:
            self.count += 1
            if self.advance is not None:
                self.advance(1)
            yield entry
