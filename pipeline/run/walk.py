"""Find the volumes and walk every filesystem into the case, once per evidence.

The walk is one database transaction, except where results of the batches cut from its
first files are stored while it runs (``plan.QuickStart``): the entries walked so far are
then committed first. An interrupted walk leaves nothing else; a resumed run walks
again, and the walk being deterministic, it keeps the entries committed (checking that
the new walk gives them again, in the same order) and stores the rest.

Each filesystem is walked in a child process with a time limit (``contained_walk``), so
a stall or crash inside The Sleuth Kit costs that filesystem's remaining entries, not
the run. A volume whose auto-detection is ambiguous gets one
walk per filesystem that opens. The ledger gets the volumes found and one entry per
filesystem (or per volume not walked).

Each NTFS volume's shadow copies (unless ``snapshots`` is off) are walked after it, each
store as its own snapshot of the volume: its entries carry the snapshot in their
location, and the ledger gets the stores found and one walk entry per store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ingest.errors import IngestError
from ingest.image import EvidenceImage
from ingest.location import FileEntry, Snapshot
from ingest.volumes import Volume, find_volumes
from pipeline.case.database import entry_key
from pipeline.case.store import Case, CaseError
from pipeline.run.contained_walk import DEFAULT_WALK_TIMEOUT, WalkContained, WalkProcess
from pipeline.run.progress import Reporter

_ACTIONS = {"walked": "filesystem.walked", "no-filesystem": "error", "stalled": "error"}
OnFile = Callable[[int, int, int], None]  # told of each plannable file stored (id, offset, size)


def walk_evidence(case: Case, image: EvidenceImage, evidence_id: str, reporter: Reporter,
                  walk_timeout: float = DEFAULT_WALK_TIMEOUT, snapshots: bool = True,
                  on_file: OnFile | None = None) -> None:
    """Walk every volume of ``image`` unless a complete walk is already stored;
    ``on_file`` is told of each file the plan will take, as it is stored."""
    db = case.db
    row = db.evidence(evidence_id)
    if row is not None and row["walk_complete"]:
        return
    scan = find_volumes(image)
    walked: list[tuple[dict[str, Any], dict[str, Any]]] = []
    # Entries committed by an interrupted walk that stored results (see the docstring).
    kept = _Kept(db.walked_keys(evidence_id) if db.batches(evidence_id) else [])
    try:
        with db.atomic(), WalkProcess(image.spec, evidence_id, walk_timeout) as child:
            db.forget_walk(evidence_id, keep_entries=bool(kept.keys))
            db.set_partition_table(evidence_id, scan.partition_table)
            for volume in scan.volumes:
                walked.extend(_walk_volume(case, child, evidence_id, volume, reporter,
                                           snapshots, on_file, kept))
            kept.check_all_given()
            db.mark_walk_complete(evidence_id)
    except WalkDiverged as exc:
        case.record("error", {"evidence_id": evidence_id},
                    {"stage": "walk", "error": "WalkDiverged", "message": str(exc)})
        raise
    several = {s["volume_index"]: d["volume_filesystems"] for s, d in walked
               if "volume_filesystems" in d}
    steps: list[tuple[str, dict[str, Any] | None, dict[str, Any]]] = [
        ("volumes.found", {"evidence_id": evidence_id}, {
            "partition_table": scan.partition_table,
            "warnings": scan.warnings,
            "volumes": [
                {"index": v.index, "offset": v.start, "length": v.length,
                 "description": v.description, "flag": v.flag,
                 **({"filesystems": several[v.index]} if v.index in several else {})}
                for v in scan.volumes
            ],
        })]
    for subject, details in walked:
        action = details.pop("action", None) or _ACTIONS.get(details.get("status", ""),
                                                             "volume.skipped")
        steps.append((action, subject, details))
    case.record_many(steps)  # one sync for the walk's entries, not two per volume


def _walk_volume(case: Case, child: WalkProcess, evidence_id: str, volume: Volume,
                 reporter: Reporter, snapshots: bool, on_file: OnFile | None, kept: _Kept
                 ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Store one volume's filesystems; returns a ledger subject and details for each."""
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
        return [(subject, detail)]
    try:
        fs_types = child.detect(volume)
    except IngestError as exc:
        code = exc.code if isinstance(exc, WalkContained) else "NoFilesystem"
        detail = {"status": "no-filesystem", "stage": "walk", "message": str(exc),
                  "description": volume.description}
        if isinstance(exc, WalkContained):
            detail["error"] = code
        db.add_volume(dict(base, fs_type=None, status="no-filesystem",
                           detail=json.dumps(detail)))
        db.add_error(stage="walk", error=code, message=str(exc),
                     evidence_id=evidence_id, location=subject)
        return [(subject, detail)]
    several = fs_types if len(fs_types) > 1 else None
    out = [_walk_filesystem(case, child, evidence_id, volume, fs_type, slot, several, base,
                            reporter, kept, on_file=on_file)
           for slot, fs_type in enumerate(fs_types)]
    if snapshots and "ntfs" in fs_types and not volume.extents:  # not inside an LVM LV
        out.extend(_walk_snapshots(case, child, evidence_id, volume, reporter, kept,
                                   on_file))
    return out


def _walk_snapshots(case: Case, child: WalkProcess, evidence_id: str, volume: Volume,
                    reporter: Reporter, kept: _Kept, on_file: OnFile | None = None
                    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Walk each shadow copy store of an NTFS volume; a catalog or store that cannot be
    read is an error record (the live volume's walk stands)."""
    db = case.db
    subject = {"evidence_id": evidence_id, "volume_index": volume.index,
               "volume_offset": volume.start, "fs_type": "ntfs"}
    try:
        scan = child.snapshots(volume)
    except IngestError as exc:
        code = exc.code if isinstance(exc, WalkContained) else "SnapshotsUnreadable"
        db.add_error(stage="walk", error=code, message=str(exc), evidence_id=evidence_id,
                     location=subject)
        return [(subject, {"action": "error", "stage": "walk", "error": code,
                           "message": str(exc)})]
    for message in scan.errors:
        db.add_error(stage="walk", error="SnapshotUnreadable", message=message,
                     evidence_id=evidence_id, location=subject)
    if not scan.enabled:
        return []
    out = [(subject, {"action": "snapshots.found", "method": _method(),
                      "stores": [s.to_dict() for s in scan.snapshots],
                      "errors": scan.errors})]
    for snap in scan.snapshots:
        out.append(_walk_filesystem(case, child, evidence_id, volume, "ntfs", 0, None, {},
                                    reporter, kept, snap, on_file))
    return out


def _method() -> str:
    import pyvshadow

    return f"libvshadow {pyvshadow.get_version()}"


def _walk_filesystem(case: Case, child: WalkProcess, evidence_id: str, volume: Volume,
                     fs_type: str, slot: int, several: list[str] | None, base: dict[str, Any],
                     reporter: Reporter, kept: _Kept, snapshot: Snapshot | None = None,
                     on_file: OnFile | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Store one filesystem's entries, keeping those walked before a stall or failure.
    A shadow copy's walk (``snapshot``) has no volume row: its ledger entry says it all."""
    db = case.db
    subject: dict[str, Any] = {"evidence_id": evidence_id, "volume_index": volume.index,
                               "volume_offset": volume.start, "fs_type": fs_type}
    label = f"Walking volume {volume.index} ({fs_type})"
    if snapshot is not None:
        subject["snapshot"] = snapshot.to_dict()
        label = f"Walking volume {volume.index} shadow copy {snapshot.index}"
    failure: str | None = None
    contained: WalkContained | None = None
    with reporter.count_task(label) as advance:
        entries = _Counting(child.walk(volume, fs_type, snapshot), advance)
        try:
            db.add_files(kept.skip(entries), on_file)
        except WalkContained as exc:  # stalled or crashed: the run goes on
            contained = exc
            db.add_error(stage="walk", error=exc.code, message=str(exc),
                         evidence_id=evidence_id, location=subject)
        except IngestError as exc:  # keep what was read; say where the walk stopped
            failure = str(exc)
            db.add_error(stage="walk", error="WalkFailed", message=failure,
                         evidence_id=evidence_id, location=subject)
    stats = child.stats
    for note in stats.notes:
        db.add_error(stage="walk", error="WalkProblem", message=note,
                     evidence_id=evidence_id, location=subject)
    status = "stalled" if contained else "walked"
    detail: dict[str, Any] = {"status": status, "fs_type": fs_type, "entries": entries.count,
                              **stats.to_dict()}
    if several:
        detail["volume_filesystems"] = several
    if fs_type in child.described:  # an APFS volume: its name, identifier, encryption
        detail["apfs_volume"] = child.described[fs_type]
    if failure:
        detail["walk_error"] = failure
    if contained:
        detail.update(stage="walk", error=contained.code, message=str(contained))
    if snapshot is None:
        db.add_volume(dict(base, fs_type=fs_type, status=status, fs_slot=slot,
                           detail=json.dumps(detail)))
    return subject, detail


class _Counting:
    """Pass entries through, counting them and advancing a progress display."""

    def __init__(self, entries: Iterator[Any], advance: Callable[[int], None] | None) -> None:
        self.entries = entries
        self.advance = advance
        self.count = 0

    def __iter__(self) -> Iterator[Any]:
        shown = 0
        for entry in self.entries:
            self.count += 1
            if self.advance is not None and self.count - shown >= 256:  # not per entry
                self.advance(self.count - shown)
                shown = self.count
            yield entry
        if self.advance is not None and self.count > shown:
            self.advance(self.count - shown)


class WalkDiverged(CaseError):
    """A resumed walk does not give again the entries the interrupted one committed."""


class _Kept:
    """The entries an interrupted walk committed, in walk order: given again by the new
    walk, each is checked against its stored key and not stored twice."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.given = 0

    def skip(self, entries: Iterable[FileEntry]) -> Iterator[FileEntry]:
        for entry in entries:
            if self.given == len(self.keys):
                yield entry
                continue
            stored = self.keys[self.given]
            key = entry_key(entry.location, entry.allocated)
            if stored != key and not (stored.startswith(key + "#")
                                      and stored[len(key) + 1:].isdigit()):
                raise WalkDiverged(
                    f"the walk gave {key!r} where the interrupted walk stored {stored!r}"
                    f" (entry {self.given + 1} of {len(self.keys)} committed); the results"
                    " already recorded stand; triage this image into a new case")
            self.given += 1

    def check_all_given(self) -> None:
        if self.given < len(self.keys):
            raise WalkDiverged(
                f"the walk ended after {self.given} of the {len(self.keys)} entries the"
                " interrupted walk committed; the results already recorded stand; triage"
                " this image into a new case")
