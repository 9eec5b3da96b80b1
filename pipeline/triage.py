"""``exhibit triage``: the conductor from image to analysed, ledgered case.

Order of work, each step recorded in the ledger and made durable before the next:

1. open the case (create it if new) and load the given hash sets;
2. open the image read-only, hash it (MD5/SHA-1/SHA-256, one pass) and compare with the
   hashes the examiner stated and those the container stores; register the evidence;
3. find the volumes and walk every filesystem (one database transaction per walk);
4. plan batches of roughly equal bytes (persisted, so a resumed run has the same plan);
5. run the batches on Dask, write each batch's results in one transaction, then append a
   ``batch.analysed`` entry carrying the Merkle root over its result records;
6. match exact hashes against the loaded sets; print the summary.

A re-run on the same case resumes: registered evidence is recognised by its container
files (path, size, mtime), a complete walk is kept, finished batches are skipped, and a
batch whose results were committed but whose ledger entry was not yet written gets it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain_of_custody.canonical import canonical_bytes
from chain_of_custody.ledger import read_entries
from chain_of_custody.merkle import canonical_leaf_hash, merkle_root
from ingest.acquisition import compare_hashes, hash_image
from ingest.errors import IngestError
from ingest.image import EvidenceImage, ImageSpec, open_image
from ingest.volumes import find_volumes
from ingest.walk import FilesystemWalker, open_filesystem
from pipeline import matching
from pipeline.case import Case, command_line
from pipeline.casedb import utc_now
from pipeline.cluster import (
    DEFAULT_FILE_TIMEOUT,
    DEFAULT_TASK_TIMEOUT,
    DEFAULT_WORKER_MEMORY,
    BatchRunner,
)
from pipeline.hashsets import load_hashset
from pipeline.progress import Reporter
from pipeline.worker import BatchTask

DEFAULT_BATCH_BYTES = 256 << 20
THUMBNAIL_DIR = "thumbnails"  # CASE/thumbnails/<sha256>.jpg, written by the driver only
DEFAULT_BATCH_FILES = 2000
# Batch planning (see _plan_batches): a file's fixed cost (open, libmagic, records) in
# content-byte equivalents, the smallest batch worth a Dask task, and how many batches a
# worker should get when nothing else is known about a remote cluster.
PER_FILE_COST = 128 << 10
MIN_BATCH_COST = 8 << 20
REMOTE_PARALLELISM = 16


class HashMismatchError(Exception):
    """Computed acquisition hashes differ from what was stated or stored."""


@dataclass
class TriageOptions:
    images: list[Path]
    case_dir: Path
    examiner: str | None = None
    hashsets: list[Path] = field(default_factory=list)
    workers: int | None = None
    scheduler: str | None = None
    expected_hashes: dict[str, str] = field(default_factory=dict)
    allow_hash_mismatch: bool = False
    analyzers: list[str] | None = None
    batch_bytes: int = DEFAULT_BATCH_BYTES
    batch_files: int = DEFAULT_BATCH_FILES
    progress: bool = True
    file_timeout: float = DEFAULT_FILE_TIMEOUT
    task_timeout: float = DEFAULT_TASK_TIMEOUT
    worker_memory: str = DEFAULT_WORKER_MEMORY


@dataclass
class TriageResult:
    case_dir: Path
    evidence_id: str
    summary: dict[str, Any]
    hash_verified: bool
    interrupted: bool = False


def _container_stat(paths: list[str]) -> list[dict[str, Any]]:
    stats = []
    for p in paths:
        st = Path(p).stat()
        stats.append({"path": p, "size": st.st_size, "mtime_ns": str(st.st_mtime_ns)})
    return stats


class Triage:
    """One triage run over one image into one case."""

    def __init__(self, options: TriageOptions, reporter: Reporter | None = None,
                 runner: BatchRunner | None = None) -> None:
        """``runner``: an entered BatchRunner to reuse (many cases on one cluster, e.g. the
        fuzz harness); its own limits then apply, not the options' workers/timeouts."""
        self.options = options
        self.reporter = reporter or Reporter(enabled=options.progress)
        self.runner = runner
        self.started = time.monotonic()

    # -- the run -------------------------------------------------------------------

    def run(self) -> TriageResult:
        case = Case(self.options.case_dir, self.options.examiner, running="triage")
        try:
            return self._run(case)
        finally:
            case.close()

    def _run(self, case: Case) -> TriageResult:
        opts = self.options
        analyzers = self._analyzer_names()
        case.record("triage.started", None, {
            "command": command_line(),
            "images": [str(p) for p in opts.images],
            "analyzers": analyzers,
            "hashsets": [str(p) for p in opts.hashsets],
            "scheduler": opts.scheduler or "local",
            "workers": opts.workers,
            "batch_bytes": opts.batch_bytes,
            "batch_files": opts.batch_files,
        })
        for path in opts.hashsets:
            load_hashset(case, path)
        try:
            image = open_image(opts.images)
        except IngestError as exc:
            case.record("error", None, {"stage": "open", "images": [str(p) for p in opts.images],
                                        "message": str(exc)})
            raise
        try:
            evidence_id, verified = self._register(case, image)
            self._walk(case, image, evidence_id)
        finally:
            image.close()
        self._plan(case, evidence_id)
        interrupted = self._analyse(case, image.spec, evidence_id, analyzers)
        if not interrupted:
            self._match(case, evidence_id)
        summary = self.summary(case, evidence_id)
        summary["elapsed_seconds"] = round(time.monotonic() - self.started, 3)
        action = "triage.interrupted" if interrupted else "triage.completed"
        case.record(action, {"evidence_id": evidence_id}, summary)
        return TriageResult(opts.case_dir, evidence_id, summary, verified, interrupted)

    def _analyzer_names(self) -> list[str]:
        from analyzers import registry

        return [a.name for a in registry.create(self.options.analyzers)]

    # -- hash sets -------------------------------------------------------------------

    # -- evidence registration and acquisition hashes --------------------------------

    def _register(self, case: Case, image: EvidenceImage) -> tuple[str, bool]:
        paths = [str(Path(p).resolve()) for p in image.paths]
        stat = _container_stat(paths)
        known = case.db.evidence_by_paths(paths)
        if known is not None and json.loads(known["container_stat"]) == stat:
            case.record("evidence.reopened", {"evidence_id": known["id"]}, {
                "paths": paths, "container_stat": stat,
                "note": "container files unchanged since registration (size, mtime);"
                        " acquisition hashes not recomputed",
            })
            self._check_verified(case, known["id"], bool(known["verified"]))
            return known["id"], bool(known["verified"])

        with self.reporter.bytes_task("Hashing image", image.size) as advance:
            started = time.monotonic()
            computed = hash_image(image, progress=advance)
            seconds = time.monotonic() - started
        evidence_id = computed["sha256"]
        subject = {"evidence_id": evidence_id}
        case.record("acquisition.hashed", subject, {
            "format": image.format, "paths": paths, "size": image.size,
            "md5": computed["md5"], "sha1": computed["sha1"], "sha256": computed["sha256"],
            "seconds": round(seconds, 3),
            "mb_per_s": round(image.size / 1e6 / seconds, 1) if seconds > 0 else None,
        })
        stated = self.options.expected_hashes
        comparisons = [dict(c, source="examiner") for c in compare_hashes(computed, stated)] + [
            dict(c, source="container") for c in compare_hashes(computed, image.stored_hashes)
        ]
        verified = all(c["status"] == "match" for c in comparisons)
        case.record("acquisition.compared", subject, {
            "comparisons": comparisons,
            "result": "match" if verified else "MISMATCH",
            "compared": len(comparisons),
        })
        existing = case.db.evidence(evidence_id)
        if existing is None:
            case.db.add_evidence({
                "id": evidence_id, "format": image.format, "paths": json.dumps(paths),
                "size": image.size, "md5": computed["md5"], "sha1": computed["sha1"],
                "sha256": computed["sha256"], "stored_hashes": json.dumps(image.stored_hashes),
                "expected_hashes": json.dumps(self.options.expected_hashes),
                "verification": json.dumps(comparisons), "verified": int(verified),
                "container_stat": json.dumps(stat), "registered_at": utc_now(),
            })
            case.record("evidence.registered", subject, {
                "format": image.format, "paths": paths, "size": image.size,
                "container_metadata": image.metadata,
            })
        else:
            case.record("evidence.reopened", subject, {
                "paths": paths, "note": "same media data as already registered evidence",
                "registered_paths": json.loads(existing["paths"]),
            })
        self._check_verified(case, evidence_id, verified)
        return evidence_id, verified

    def _check_verified(self, case: Case, evidence_id: str, verified: bool) -> None:
        if verified:
            return
        if not self.options.allow_hash_mismatch:
            case.record("triage.refused", {"evidence_id": evidence_id}, {
                "reason": "acquisition hash mismatch; rerun with --allow-hash-mismatch to"
                          " analyse the image anyway",
            })
            raise HashMismatchError(
                "acquisition hashes do not match the stated or stored hashes"
                " (see the ledger); use --allow-hash-mismatch to analyse anyway"
            )
        case.record("acquisition.mismatch_allowed", {"evidence_id": evidence_id}, {
            "note": "examiner chose to continue despite the hash mismatch",
        })

    # -- volumes and filesystems -----------------------------------------------------

    def _walk(self, case: Case, image: EvidenceImage, evidence_id: str) -> None:
        db = case.db
        row = db.evidence(evidence_id)
        if row is not None and row["walk_complete"]:
            return
        scan = find_volumes(image)
        db.begin()
        try:
            db.forget_walk(evidence_id)
            db.conn.execute("UPDATE evidence SET partition_table = ? WHERE id = ?",
                            (scan.partition_table, evidence_id))
            walked: list[tuple[dict[str, Any], dict[str, Any]]] = []
            for volume in scan.volumes:
                walked.append(self._walk_volume(case, image, evidence_id, volume))
            db.conn.execute("UPDATE evidence SET walk_complete = 1 WHERE id = ?", (evidence_id,))
            db.commit()
        except BaseException:
            db.rollback()
            raise
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

    def _walk_volume(self, case: Case, image: EvidenceImage, evidence_id: str,
                     volume: Any) -> tuple[dict[str, Any], dict[str, Any]]:
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
        entries = _counting(iter(walker), None)
        failure = None
        with self.reporter.count_task(f"Walking volume {volume.index} ({fs_type})") as advance:
            entries.advance = advance
            try:
                db.add_files(entries)
            except IngestError as exc:  # keep what was read; say where the walk stopped
                failure = str(exc)
                db.add_error(stage="walk", error="WalkFailed", message=failure,
                             evidence_id=evidence_id, location=dict(subject, fs_type=fs_type))
        count = entries.count
        stats = walker.stats
        for note in stats.notes:
            db.add_error(stage="walk", error="WalkProblem", message=note,
                         evidence_id=evidence_id, location=dict(subject, fs_type=fs_type))
        detail = {"status": "walked", "fs_type": fs_type, "entries": count,
                  **stats.to_dict()}
        if failure:
            detail["walk_error"] = failure
        db.add_volume(dict(base, fs_type=fs_type, status="walked", detail=json.dumps(detail)))
        return dict(subject, fs_type=fs_type), detail

    # -- batches ---------------------------------------------------------------------

    def _plan(self, case: Case, evidence_id: str) -> None:
        """Split the regular files into batches of about equal bytes, once per evidence."""
        db = case.db
        if db.batches(evidence_id):
            return
        opts = self.options
        totals = {"batches": 0, "files": 0, "bytes": 0}
        parallelism = opts.workers or (REMOTE_PARALLELISM if opts.scheduler
                                       else os.cpu_count() or 1)
        db.begin()
        try:
            for vol_offset, ids, nbytes in _plan_batches(db, evidence_id, opts.batch_bytes,
                                                         opts.batch_files, parallelism):
                totals["batches"] += 1
                totals["files"] += len(ids)
                totals["bytes"] += nbytes
                batch_id = f"{evidence_id[:12]}-{totals['batches']:06d}"
                db.add_batch(batch_id, evidence_id, vol_offset, ids, nbytes)
            db.commit()
        except BaseException:
            db.rollback()
            raise
        case.record("batches.planned", {"evidence_id": evidence_id}, {
            **totals, "batch_bytes": opts.batch_bytes, "batch_files": opts.batch_files,
            "parallelism": parallelism,
        })

    def _analyse(self, case: Case, spec: ImageSpec, evidence_id: str,
                 analyzers: list[str]) -> bool:
        """Run the unfinished batches; returns True when interrupted by the examiner."""
        db = case.db
        unrecorded = [b["id"] for b in db.batches(evidence_id)
                      if b["status"] == "done" and b["ledger_seq"] is None]
        if unrecorded:
            self._reconcile_batches(case, unrecorded)
        todo = [b for b in db.batches(evidence_id) if b["status"] != "done"]
        if not todo:
            return False
        total_files = sum(len(json.loads(b["file_ids"])) for b in todo)
        total_bytes = sum(b["bytes"] for b in todo)

        def tasks() -> Iterator[BatchTask]:  # built lazily: memory bounded by the batches in flight
            for batch in todo:
                rows = db.files_by_ids(json.loads(batch["file_ids"]))
                items = tuple((r["id"], r["entry_key"], db.file_entry(r).to_dict())
                              for r in rows)
                yield BatchTask(batch["id"], spec, batch["volume_offset"], items,
                                tuple(analyzers))

        opts = self.options
        runner = self.runner or BatchRunner(
            opts.workers, opts.scheduler, worker_memory=opts.worker_memory,
            file_timeout=opts.file_timeout, task_timeout=opts.task_timeout)
        with _interruptible() as stop, nullcontext(runner) if self.runner else runner, \
                self.reporter.analysis_task(total_files, total_bytes) as advance:
            case.record("analysis.started", {"evidence_id": evidence_id}, {
                "batches": len(todo), "files": total_files, "bytes": total_bytes,
                "cluster": runner.describe(),
            })
            for task, outcome in runner.run(tasks(), stop):
                self._store_batch(case, task, outcome)
                self._record_batch(case, task.batch_id)
                advance(len(task.items), sum(max(0, i[2]["size"]) for i in task.items))
            return stop.is_set()

    def _reconcile_batches(self, case: Case, batch_ids: list[str]) -> None:
        """After a kill: link committed batches to their ledger entries, or write them.

        A kill can fall between the ledger append and the database noting its sequence
        number; the entry is then already in the ledger and must not be written twice.
        """
        wanted = set(batch_ids)
        found: dict[str, int] = {}
        for entry in read_entries(case.ledger_path):
            subject = entry.get("subject") or {}
            if entry.get("action") == "batch.analysed" and subject.get("batch_id") in wanted:
                found[subject["batch_id"]] = entry["seq"]
        for batch_id in batch_ids:
            if batch_id in found:
                case.db.conn.execute("UPDATE batches SET ledger_seq = ? WHERE id = ?",
                                     (found[batch_id], batch_id))
            else:
                self._record_batch(case, batch_id)

    def _store_batch(self, case: Case, task: BatchTask, outcome: dict[str, Any]) -> None:
        db = case.db
        records = outcome["records"]
        # Canonical JSON is the driver's main cost per file: made once, hashed and stored.
        canonical = [canonical_bytes(r["record"]) for r in records]
        root = merkle_root([canonical_leaf_hash(c) for c in canonical])
        bad_thumbnails = _store_thumbnails(case.directory, records)  # before the rows: a
        db.begin()  # committed record never names a thumbnail that is not on disk
        try:
            for index, item in enumerate(records):
                record = item["record"]
                findings = record["findings"]
                hashes = findings.get("hashes", {})
                ftype = findings.get("filetype", {})
                exif = findings.get("exif")
                perceptual = findings.get("perceptual", {})
                db.conn.execute(
                    "INSERT OR REPLACE INTO results (file_id, batch_id, leaf_index, record, md5,"
                    " sha1, sha256, mime, magic, extension_mismatch, exif, phash, dhash)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (item["file_id"], task.batch_id, index,
                     canonical[index].decode("utf-8"), hashes.get("md5"),
                     hashes.get("sha1"), hashes.get("sha256"), ftype.get("mime"),
                     ftype.get("magic"),
                     None if "extension_mismatch" not in ftype
                     else int(bool(ftype["extension_mismatch"])),
                     None if exif is None else json.dumps(exif, sort_keys=True),
                     perceptual.get("phash"), perceptual.get("dhash")),
                )
                db.conn.execute("DELETE FROM errors WHERE file_id = ? AND stage IN"
                                " ('read', 'analyze', 'worker')", (item["file_id"],))
                for err in record["errors"] + bad_thumbnails.get(item["file_id"], []):
                    db.add_error(stage=err.get("stage", "analyze"), error=err["error"],
                                 message=err["message"],
                                 evidence_id=record["location"]["evidence_id"],
                                 file_id=item["file_id"], batch_id=task.batch_id,
                                 analyzer=err.get("analyzer"),
                                 analyzer_version=err.get("version"),
                                 traceback=err.get("traceback"), location=record["location"])
            db.conn.execute(
                "UPDATE batches SET status = 'done', merkle_root = ?, worker = ? WHERE id = ?",
                (root, json.dumps(outcome.get("worker", {}), sort_keys=True), task.batch_id),
            )
            db.commit()
        except BaseException:
            db.rollback()
            raise

    def _record_batch(self, case: Case, batch_id: str) -> None:
        """Append the batch's ledger entry (from the committed rows, so a resume can too)."""
        db = case.db
        batch = db.conn.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        errors = [
            {"file_id": r["file_id"], "location": json.loads(r["location"] or "null"),
             "stage": r["stage"], "analyzer": r["analyzer"], "error": r["error"],
             "message": r["message"][:500]}
            for r in db.conn.execute("SELECT * FROM errors WHERE batch_id = ? ORDER BY id",
                                     (batch_id,))
        ]
        ids = json.loads(batch["file_ids"])
        thumbnails = sorted({r[0] for r in db.conn.execute(
            "SELECT json_extract(record, '$.findings.thumbnail.sha256') FROM results"
            " WHERE batch_id = ? AND json_extract(record, '$.findings.thumbnail.sha256')"
            " IS NOT NULL", (batch_id,))})
        entry = case.record("batch.analysed", {
            "evidence_id": batch["evidence_id"], "volume_offset": batch["volume_offset"],
            "batch_id": batch_id,
        }, {
            "files": len(ids), "first_file_id": ids[0], "last_file_id": ids[-1],
            "bytes": batch["bytes"], "merkle_root": batch["merkle_root"],
            "record_hash": "sha256, RFC 6962 tree over canonical result records",
            "errors": errors, "worker": json.loads(batch["worker"] or "{}"),
            "thumbnails": {"directory": THUMBNAIL_DIR, "count": len(thumbnails),
                           "sha256": thumbnails},
        })
        db.conn.execute("UPDATE batches SET ledger_seq = ? WHERE id = ?",
                        (entry["seq"], batch_id))

    # -- matching and summary --------------------------------------------------------

    def _match(self, case: Case, evidence_id: str) -> None:
        found = matching.match_evidence(case.db, evidence_id)
        series = found.pop("series")
        if case.db.count("SELECT COUNT(*) FROM hashsets") > 0:
            case.record("matches.found", {"evidence_id": evidence_id}, found)
        case.record("series.grouped", {"evidence_id": evidence_id},
                    dict(series, thresholds=found["thresholds"]))

    @staticmethod
    def summary(case: Case, evidence_id: str) -> dict[str, Any]:
        return summarize(case, evidence_id)


def summarize(case: Case, evidence_id: str) -> dict[str, Any]:
    """The counts an examiner reads first (also the ``triage.completed`` details)."""
    db = case.db
    q = (evidence_id,)
    volumes = db.volumes(evidence_id)
    return {
        "evidence_id": evidence_id,
        "volumes": len(volumes),
        "filesystems": sorted({v["fs_type"] for v in volumes if v["fs_type"]}),
        "filesystems_walked": sum(1 for v in volumes if v["status"] == "walked"),
        "entries": db.count("SELECT COUNT(*) FROM files WHERE evidence_id = ?", q),
        "files": db.count("SELECT COUNT(*) FROM files WHERE evidence_id = ? AND kind = 'file'", q),
        "deleted": db.count("SELECT COUNT(*) FROM files WHERE evidence_id = ? AND allocated = 0",
                            q),
        "bytes": db.count("SELECT SUM(size) FROM files WHERE evidence_id = ? AND kind = 'file'",
                          q),
        "analysed": db.count("SELECT COUNT(*) FROM results r JOIN files f ON f.id = r.file_id"
                             " WHERE f.evidence_id = ?", q),
        "images": db.count("SELECT COUNT(*) FROM results r JOIN files f ON f.id = r.file_id"
                           " WHERE f.evidence_id = ? AND r.mime LIKE 'image/%'", q),
        "type_mismatches": db.count(
            "SELECT COUNT(*) FROM results r JOIN files f ON f.id = r.file_id"
            " WHERE f.evidence_id = ? AND r.extension_mismatch = 1", q),
        "known_hash_matches": db.count(
            "SELECT COUNT(DISTINCT m.file_id) FROM matches m JOIN files f ON f.id = m.file_id"
            " JOIN hashsets h ON h.id = m.hashset_id"
            " WHERE f.evidence_id = ? AND h.kind != 'known-good'", q),
        "known_hash_matches_by_category": {
            row[0]: row[1] for row in db.conn.execute(
                "SELECT COALESCE(m.category_label, m.category, '(none)'), COUNT(DISTINCT"
                " m.file_id) FROM matches m JOIN files f ON f.id = m.file_id JOIN hashsets h"
                " ON h.id = m.hashset_id WHERE f.evidence_id = ? AND h.kind != 'known-good'"
                " GROUP BY 1 ORDER BY 1", q)},
        "near_matches": db.count(  # altered copies: found only by a perceptual hash
            "SELECT COUNT(DISTINCT m.file_id) FROM matches m JOIN files f ON f.id = m.file_id"
            " JOIN hashsets h ON h.id = m.hashset_id WHERE f.evidence_id = ?"
            " AND h.kind != 'known-good' AND m.algorithm IN ('phash', 'dhash', 'pdq')"
            " AND m.file_id NOT IN (SELECT file_id FROM matches"
            " WHERE algorithm IN ('md5', 'sha1', 'sha256'))", q),
        "known_good_files": db.count(
            "SELECT COUNT(DISTINCT m.file_id) FROM matches m JOIN files f ON f.id = m.file_id"
            " JOIN hashsets h ON h.id = m.hashset_id"
            " WHERE f.evidence_id = ? AND h.kind = 'known-good'", q),
        "near_duplicate_groups": db.count(
            "SELECT COUNT(DISTINCT group_id) FROM media_groups WHERE evidence_id = ?", q),
        "errors": db.count("SELECT COUNT(*) FROM errors WHERE evidence_id = ?"
                           " AND error != 'Skipped'", q),
        "skipped": db.count("SELECT COUNT(*) FROM errors WHERE evidence_id = ?"
                            " AND error = 'Skipped'", q),
    }


def _store_thumbnails(case_dir: Path, records: list[dict[str, Any]]
                      ) -> dict[int, list[dict[str, Any]]]:
    """Write the thumbnails that came beside a batch's records as CASE/thumbnails/<sha256>.jpg.

    Atomic (temp file, fsync, rename) and idempotent: a re-run batch rewrites nothing.
    A blob whose digest is not the one its record states is not stored; the file gets an
    error record instead. Returns those errors by file id.
    """
    bad: dict[int, list[dict[str, Any]]] = {}
    directory = case_dir / THUMBNAIL_DIR
    for item in records:
        blob = item.get("blobs", {}).get("thumbnail")
        if blob is None:
            continue
        stated = item["record"]["findings"].get("thumbnail", {}).get("sha256")
        digest = hashlib.sha256(blob).hexdigest()
        if digest != stated:
            bad[item["file_id"]] = [{"stage": "thumbnail", "analyzer": "thumbnail",
                                     "error": "DigestMismatch",
                                     "message": f"thumbnail bytes hash to {digest}, the"
                                                f" record states {stated}; not stored"}]
            continue
        target = directory / f"{digest}.jpg"
        if target.exists():
            continue
        directory.mkdir(exist_ok=True)
        tmp = target.with_name(f".{digest}.partial")
        with tmp.open("wb") as out:
            out.write(blob)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(target)
    return bad


def _batch_target(remaining: int, planned: int, parallelism: int) -> float:
    """Cost one batch should have: guided self-scheduling with a quick start.

    Each batch takes 1/(2p) of the work still unplanned, so batches shrink towards the
    end and no worker is left alone with one big batch while the others idle; the first
    ``p`` batches are a quarter of that, so the first results arrive within seconds.
    """
    target = max(MIN_BATCH_COST, remaining / (2 * parallelism))
    return max(MIN_BATCH_COST, target / 4) if planned < parallelism else target


def _plan_batches(db: Any, evidence_id: str, batch_bytes: int, batch_files: int,
                  parallelism: int = 1) -> Iterator[tuple[int, list[int], int]]:
    """(volume offset, file ids, bytes) per batch, streamed in walk order per volume.

    ``batch_bytes``/``batch_files`` are hard maxima; within them batch sizes follow
    :func:`_batch_target`, a file costing its size plus :data:`PER_FILE_COST`.
    """
    count, total = db.conn.execute(
        "SELECT count(*), coalesce(sum(max(size, 0)), 0) FROM files"
        " WHERE evidence_id = ? AND kind = 'file'", (evidence_id,)).fetchone()
    remaining = count * PER_FILE_COST + total
    planned = 0
    target = _batch_target(remaining, planned, parallelism)
    current: list[int] = []
    size = cost = 0
    offset = None
    rows = db.conn.execute(
        "SELECT id, volume_offset, size FROM files WHERE evidence_id = ? AND kind = 'file'"
        " ORDER BY volume_offset, id", (evidence_id,))
    for row in rows:
        if current and (row["volume_offset"] != offset or size >= batch_bytes
                        or len(current) >= batch_files or cost >= target):
            yield offset, current, size
            remaining -= cost
            planned += 1
            target = _batch_target(remaining, planned, parallelism)
            current, size, cost = [], 0, 0
        offset = row["volume_offset"]
        current.append(row["id"])
        size += max(0, row["size"])
        cost += max(0, row["size"]) + PER_FILE_COST
    if current:
        yield offset, current, size


class _counting:
    """Pass entries through, counting them and advancing a progress display."""

    def __init__(self, entries: Iterator[Any], advance: Any) -> None:
        self.entries = entries
        self.advance = advance
        self.count = 0

    def __iter__(self) -> Iterator[Any]:
        for entry in self.entries:
            self.count += 1
            if self.advance is not None:
                self.advance(1)
            yield entry


class _StopFlag:
    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


@contextmanager
def _interruptible() -> Iterator[_StopFlag]:
    """First Ctrl-C: finish the batches in flight, then stop cleanly. Second: abort."""
    stop = _StopFlag()
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        stop.set()

    with suppress(ValueError):  # not the main thread (embedded use): no signal handling
        signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        with suppress(ValueError):
            signal.signal(signal.SIGINT, previous)
