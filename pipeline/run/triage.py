"""``exhibit triage``: the conductor, from an image to an analysed, ledgered case.

The story of a triage, each step a call into the room that owns it, recorded in the
ledger and made durable before the next:

1. open the case (create it if new) and load the given hash sets (``matching``);
2. open the image read-only (``ingest``), hash it and compare with the stated and stored
   hashes, register the evidence (``run.acquisition``);
3. find the volumes and walk every filesystem into the case (``run.walk``); when not one
   could be read, say what the image looks like (``run.unreadable``:
   ``triage.nothing_examined``);
4. plan batches of roughly equal work, persisted for resume (``run.plan``); the first
   few were cut and sent to the cluster while the walk ran (``run.plan.QuickStart``);
5. run the batches on Dask (``run.cluster``, ``run.worker``) and take each finished one
   into the case and the ledger with its Merkle root (``run.collect``);
6. match against the loaded sets and group near duplicates (``matching``);
7. summarise (``case.summary``).

A re-run on the same case resumes: registered evidence is recognised by its container
files, a complete walk and the plan are kept, finished batches are skipped, and a batch
whose results were committed but whose ledger entry was not yet written gets it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.derive import Limits
from ingest.errors import IngestError
from ingest.image import EvidenceImage, ImageSpec, open_image
from ingest.layers import PASSWORD_ENV, RECOVERY_KEY_ENV
from ingest.remote.objects import RemoteError
from pipeline.carving import RANGE_BYTES
from pipeline.case.indexes import hash_indexes_deferred
from pipeline.case.store import SCRATCH_DIR, Case, command_line
from pipeline.case.summary import entry_counts, summarize
from pipeline.run import EXPAND, EXPAND_VERSION, acquisition, collect, plan
from pipeline.run.cluster import (
    DEFAULT_FILE_TIMEOUT,
    DEFAULT_TASK_TIMEOUT,
    DEFAULT_WORKER_MEMORY,
    BatchRunner,
)
from pipeline.run.contained_walk import DEFAULT_WALK_TIMEOUT
from pipeline.run.plan import QuickStart
from pipeline.run.progress import Reporter
from pipeline.run.unreadable import nothing_examined
from pipeline.run.walk import walk_evidence
from pipeline.secure.tls import TlsOptions, cluster_security, describe

if TYPE_CHECKING:  # with the analysis stack, imported beside the walk (_LATER_MODULES)
    from pipeline.case.database import CaseDatabase
    from pipeline.matching.series import EarlyPairs
    from pipeline.run.worker import BatchTask

# Imported by the cluster's start thread while the walk runs, not before the case opens.
_LATER_MODULES = ("pipeline.carving.plan", "pipeline.matching.match", "pipeline.run.worker")

log = logging.getLogger(__name__)

DEFAULT_BATCH_BYTES = 256 << 20
DEFAULT_BATCH_FILES = 2000


@dataclass
class TriageOptions:
    images: list[Path | str]  # a str: an object named by URL (s3://bucket/key …)
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
    walk_timeout: float = DEFAULT_WALK_TIMEOUT
    expand: bool = True  # open archives, documents, mail and pictures inside files
    limits: Limits = field(default_factory=Limits)
    allow_empty: bool = False  # nothing examined is then accepted (still recorded)
    snapshots: bool = True  # walk NTFS volumes' shadow copies (--snapshots all|none)
    tls: TlsOptions = field(default_factory=TlsOptions)  # for a scheduler elsewhere
    carve: str = "pictures"  # carve unallocated space: none | pictures (and videos) | all
    settings: dict[str, dict[str, str]] = field(default_factory=dict)  # analyzer: key: value
    carve_range_bytes: int = RANGE_BYTES

    @property
    def parallelism(self) -> int:
        """Workers the plan is shaped for (a remote cluster's size is not known ahead)."""
        if self.workers:
            return self.workers
        return plan.REMOTE_PARALLELISM if self.scheduler else os.cpu_count() or 1


@dataclass
class TriageResult:
    case_dir: Path
    evidence_id: str
    summary: dict[str, Any]
    hash_verified: bool
    interrupted: bool = False

    @property
    def nothing_examined(self) -> dict[str, Any] | None:
        """What the image looks like, when no volume or filesystem in it could be read."""
        return self.summary.get("nothing_examined")


def _fresh_scratch(folder: Path) -> Path:
    """The workers' spool folder, emptied of what a killed run may have left."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


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

    def run(self) -> TriageResult:
        opts = self.options
        self.security = cluster_security(opts.scheduler, opts.tls)
        # The cluster starts first (issue 18: its start is the longest step before the first
        # result), beside opening the case, the image hash and the walk.
        runner = self.runner or BatchRunner(
            opts.workers, opts.scheduler, worker_memory=opts.worker_memory,
            file_timeout=opts.file_timeout, task_timeout=opts.task_timeout,
            security=self.security)
        if self.runner is None:
            runner.start_in_background(warm=_LATER_MODULES)
        try:
            case = Case(opts.case_dir, opts.examiner, running="triage")
            try:
                return self._run(case, runner)
            finally:
                case.close()
        except BaseException:
            if self.runner is None:
                try:
                    runner.shutdown()
                except Exception:  # the run's own error is the one raised
                    log.exception("closing the Dask cluster after a failed run")
            raise

    def _run(self, case: Case, runner: BatchRunner) -> TriageResult:
        opts = self.options
        analyzers = self._analyzer_names()
        case.record("triage.started", None, {
            "command": command_line(),
            "images": [str(p) for p in opts.images],
            "analyzers": analyzers,
            "hashsets": [str(p) for p in opts.hashsets],
            "scheduler": opts.scheduler or "local",
            **(describe(self.security, opts.tls) if opts.scheduler else {}),
            "workers": opts.workers,
            "batch_bytes": opts.batch_bytes,
            "batch_files": opts.batch_files,
            "snapshots": "all" if opts.snapshots else "none",
            "volume_keys_given": sorted(  # that a key was given, never the key
                k for k in (PASSWORD_ENV, RECOVERY_KEY_ENV) if os.environ.get(k)),
            "expand": {"method": f"{EXPAND} {EXPAND_VERSION}",
                       "limits": opts.limits.to_dict()}
            if opts.expand else None,
            "carve": opts.carve,
            "analyzer_settings": opts.settings,
        })
        if opts.hashsets:
            from pipeline.matching.hashsets import load_hashset

            for path in opts.hashsets:
                load_hashset(case, path)
        try:
            image = open_image(opts.images)
        except IngestError as exc:
            case.record("error", None, {"stage": "open", "images": [str(p) for p in opts.images],
                                        "message": str(exc)})
            raise
        reg = acquisition.register(case, image, opts.expected_hashes, opts.allow_hash_mismatch)
        evidence_id = reg.evidence_id
        names = (*analyzers, EXPAND) if opts.expand else tuple(analyzers)
        scratch = _fresh_scratch(case.directory / SCRATCH_DIR)
        # The image hash, the walk (a child process) and the cluster's start run together,
        # and the first batches start while the walk goes on.
        quick = QuickStart(runner, evidence_id, opts.batch_bytes, opts.batch_files,
                           opts.parallelism,
                           lambda name, offset, ids: self._task(case, image.spec, name, offset,
                                                                ids, names, scratch),
                           lambda cut, finished: self._take_early(case, evidence_id, runner,
                                                                  cut, finished))
        try:
            empty = self._walk_and_plan(case, image, evidence_id, quick)
            acquisition.conclude(case, reg, wait=False)
            from pipeline.matching.known import DEFAULT_THRESHOLDS
            from pipeline.matching.series import EarlyPairs

            pairs = EarlyPairs(case.db, evidence_id, DEFAULT_THRESHOLDS)
            interrupted, counts = self._analyse(case, image.spec, reg, names, scratch, runner,
                                                quick, pairs)
            if self.runner is None:  # while the hash ends and the driver matches
                runner.close_in_background()
            if interrupted:
                acquisition.abandon(case, reg)
            else:
                acquisition.conclude(case, reg, wait=True)
                self._match(case, evidence_id, pairs)
            summary = summarize(case.db, evidence_id, counts)
            if empty is not None:
                summary["nothing_examined"] = empty
            summary["elapsed_seconds"] = round(time.monotonic() - self.started, 3)
            action = "triage.interrupted" if interrupted else "triage.completed"
            case.record(action, {"evidence_id": evidence_id}, summary)
        except BaseException:
            if reg.hashing is not None:  # the run failed: the hash stops with it
                reg.hashing.stop()
            runner.cancel_early()  # and what was sent during the walk
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        if self.runner is None:
            runner.shutdown()
        return TriageResult(opts.case_dir, evidence_id, summary, bool(reg.verified), interrupted)

    def _walk_and_plan(self, case: Case, image: EvidenceImage, evidence_id: str,
                       quick: QuickStart) -> dict[str, Any] | None:
        """Walk, plan the batches and the carve ranges; what the image looks like when
        nothing in it could be read (else None). The image is closed after."""
        opts = self.options
        # A resumed run's batches are stored already: nothing to cut or send early.
        on_file = None if case.db.batches(evidence_id) else quick.on_file
        try:
            walk_evidence(case, image, evidence_id, self.reporter, opts.walk_timeout,
                          opts.snapshots, on_file)
            empty = nothing_examined(case.db, image, evidence_id)
            if empty is not None:
                case.record("triage.nothing_examined", {"evidence_id": evidence_id},
                            dict(empty, allowed=opts.allow_empty))
            plan.plan(case, evidence_id, opts.batch_bytes, opts.batch_files, opts.parallelism)
            from pipeline.carving import plan as carving

            if carving.carvable(empty):
                carving.plan_carving(case, image, evidence_id, opts.carve,
                                     opts.carve_range_bytes)
            return empty
        finally:
            image.close()

    def _take_early(self, case: Case, evidence_id: str, runner: BatchRunner,
                    cut: list[tuple[str, plan.Batch]], finished: list[Any]) -> None:
        """Results of batches sent during the walk, taken in while it runs (issue 18:
        first result at once): the walk so far is committed (the results name its
        entries), the batches cut are stored and ledgered, then the results, in the order
        a run after the walk would record them; then the walk's transaction goes on."""
        db = case.db
        db.commit()
        if cut:
            opts = self.options
            plan.store_walk_batches(case, evidence_id, cut, {
                "batch_bytes": opts.batch_bytes, "batch_files": opts.batch_files,
                "parallelism": opts.parallelism, "cluster": runner.describe()})
        collect.store_batches(case, [(t.batch_id, out) for t, out in finished])
        collect.record_batches(case, [t.batch_id for t, _ in finished])
        db.begin()

    def _analyzer_names(self) -> list[str]:
        from analyzers import registry

        return [a.name for a in registry.create(self.options.analyzers, self.options.settings)]

    def _task(self, case: Case, spec: ImageSpec, batch_id: str, volume_offset: int,
              file_ids: list[int], names: tuple[str, ...], scratch: Path) -> BatchTask:
        return batch_task(case.db, self.options, spec, batch_id, volume_offset, file_ids,
                          names, scratch)

    def _analyse(self, case: Case, spec: ImageSpec, reg: acquisition.Registration,
                 names: tuple[str, ...], scratch: Path, runner: BatchRunner,
                 quick: QuickStart, pairs: EarlyPairs) -> tuple[bool, dict[str, int] | None]:
        """Run the unfinished batches; returns whether the examiner interrupted them, and
        the summary's entry counts when they were taken beside the hash indexes' build.
        Once every batch is sent, the near-duplicate ``pairs`` search begins too.

        Between batches the acquisition hash running beside them is recorded once it
        finishes (a mismatch stops the run there)."""
        db = case.db
        evidence_id = reg.evidence_id
        unrecorded = [b["id"] for b in db.batches(evidence_id)
                      if b["status"] == "done" and b["ledger_seq"] is None]
        if unrecorded:
            collect.reconcile_batches(case, unrecorded)
        from pipeline.carving import plan as carving

        todo = carving.interleave([b for b in db.batches(evidence_id)
                                   if b["status"] != "done"])
        if not todo:
            shutil.rmtree(scratch, ignore_errors=True)
            return False, None
        total_files = sum(len(json.loads(b["file_ids"])) for b in todo)
        total_bytes = sum(b["bytes"] for b in todo)

        if self.runner is None:
            runner.wait_started()
        with _interruptible() as stop, hash_indexes_deferred(db) as indexes, \
                self.reporter.analysis_task(
                total_files, total_bytes, reg.progress_text) as advance:

            def tasks() -> Iterator[BatchTask]:  # lazily: memory bounded by those in flight
                for batch in todo:
                    yield self._task(case, spec, batch["id"], batch["volume_offset"],
                                     json.loads(batch["file_ids"]), names, scratch)
                # Every batch is sent: the hash indexes are built while the workers run the
                # last ones (issue 18: 0.37 s at the end of a run of 100,000 files), and
                # the pictures stored so far are searched for near-duplicate pairs (0.19 s
                # at the end of the photos benchmark's 5,500).
                indexes.begin()
                pairs.begin()

            case.record("analysis.started", {"evidence_id": evidence_id}, {
                "batches": len(todo), "files": total_files, "bytes": total_bytes,
                "cluster": runner.describe(), "batches_sent_during_walk": quick.sent,
                "batches_done_during_walk": quick.taken,
            })
            try:
                for finished in runner.run(tasks(), stop):
                    indexes.settle()  # the case's connection writes again
                    collect.store_batches(case, [(t.batch_id, out) for t, out in finished])
                    collect.record_batches(case, [t.batch_id for t, _ in finished])
                    for task, _ in finished:
                        advance(len(task.items),
                                sum(max(0, i[2]["size"]) for i in task.items))
                    acquisition.conclude(case, reg, wait=False)
            except RemoteError as exc:  # the evidence store failed: finished batches are kept
                indexes.settle()
                case.record("error", {"evidence_id": evidence_id}, {
                    "stage": "analysis", "message": str(exc),
                    "note": "the evidence store failed; no file was recorded from the failed"
                            " reads; run the same command to resume"})
                raise
            # Nothing is written until the indexes are built; the counts no longer change.
            indexes.beside = lambda: entry_counts(db, evidence_id)
        shutil.rmtree(scratch, ignore_errors=True)
        return stop.is_set(), indexes.result

    @staticmethod
    def _match(case: Case, evidence_id: str, pairs: EarlyPairs) -> None:
        from pipeline.matching.match import match_evidence

        found = match_evidence(case.db, evidence_id, early=pairs)
        series = found.pop("series")
        if case.db.count("SELECT COUNT(*) FROM hashsets") > 0:
            case.record("matches.found", {"evidence_id": evidence_id}, found)
        case.record("series.grouped", {"evidence_id": evidence_id},
                    dict(series, thresholds=found["thresholds"]))


class _StopFlag:
    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


def batch_task(db: CaseDatabase, opts: TriageOptions, spec: ImageSpec, batch_id: str,
               volume_offset: int, file_ids: list[int], names: tuple[str, ...],
               scratch: Path) -> BatchTask:
    """One batch's task, as the case stands now (also for a batch sent while the walk
    runs: the runner takes its result only if the planned task is equal; and for the
    worker profile in ``benchmarks/speed``, which must run what a triage runs)."""
    from pipeline.carving import plan as carving
    from pipeline.run.worker import BatchTask, frozen_settings

    items = db.batch_items(file_ids)
    # The case's budget for bytes copied out of containers, as it stands now.
    budget = max(0, opts.limits.case_bytes
                 - db.derived_bytes(items[0][2]["location"]["evidence_id"]))
    return BatchTask(batch_id, spec, volume_offset, items, names,
                     limits=replace(opts.limits, case_bytes=budget), scratch=str(scratch),
                     carve=carving.carve_spec(db, file_ids),
                     settings=frozen_settings(opts.settings))


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
