"""The Dask task: analyse one batch of files and return closed results.

A task gets a picklable description (image spec, volume offset, file entries) and
returns one result record per file: findings, or error records with tracebacks. It has
no side effects — the driver writes the database and the ledger — so a retried or
duplicated task can do no harm. The image and its filesystems stay open in a
per-process cache across tasks (``ingest.content.reader_for``).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import os
import socket
import traceback
from dataclasses import dataclass, field
from typing import Any

from analyzers import registry
from analyzers.base import Analyzer
from analyzers.run import analyze_chunks
from chain_of_custody.canonical import canonical_bytes
from chain_of_custody.errors import CanonicalizationError
from ingest.content import reader_for
from ingest.derive import Limits
from ingest.image import ImageSpec
from ingest.location import FileEntry
from ingest.remote.objects import RemoteError
from pipeline.carving.task import carve_range
from pipeline.run.expand import EXPAND, Context, Node, Tap, expand
from pipeline.run.watchdog import announce_start, watchdog
from pipeline.versions import library_versions

CHUNK_SIZE = 1 << 20

# Analyzer settings in a hashable form: ((analyzer, ((key, value), ...)), ...), sorted.
Settings = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


def frozen_settings(settings: dict[str, dict[str, str]]) -> Settings:
    """``{"video": {"seconds_per_hash": "2"}}`` as a task carries it (and caches by it)."""
    return tuple(sorted((name, tuple(sorted(values.items())))
                        for name, values in settings.items()))


_ANALYZERS: dict[tuple[tuple[str, ...], Settings], list[Analyzer]] = {}

# glibc's malloc: Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which
# also fixes the mmap threshold at 128 KiB, so every 1 MiB chunk read and every image
# buffer was a fresh mmap, page-faulted in and unmapped again: measured on photos, the
# worker's system time 1.1 s → 7.0 s and its CPU time +45 %. Up to these sizes blocks
# are reused from the heap instead; at most M_TRIM_THRESHOLD of free heap is kept.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 64 << 20
_tuned_pid: int | None = None


def tune_allocator() -> bool:
    """Once per process: the malloc thresholds above (glibc only); True if set."""
    global _tuned_pid
    if _tuned_pid == os.getpid():
        return True
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to undo
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    _tuned_pid = os.getpid() if ok else None
    return ok


@dataclass(frozen=True)
class BatchTask:
    """Everything a worker needs, and nothing that cannot be pickled."""

    batch_id: str
    spec: ImageSpec
    volume_offset: int
    items: tuple[tuple[int, str, dict[str, Any]], ...]  # (file_id, entry_key, entry dict)
    analyzers: tuple[str, ...]
    file_timeout: float = 120.0  # seconds per file before the watchdog steps in; 0 = none
    timeout_grace: float = 10.0  # seconds native code gets to notice before the process ends
    key: str = ""  # the Dask key of this submission (named in timeout events)
    limits: Limits = field(default_factory=Limits)  # when ``expand`` is among the analyzers
    scratch: str | None = None  # the case's folder for members too large for memory
    carve: dict[str, Any] | None = None  # a carve range (pipeline.carving): runs, stop, mode
    settings: Settings = ()  # the examiner's analyzer settings (--setting NAME.KEY=VALUE)



def _analyzers(names: tuple[str, ...], settings: Settings = ()) -> list[Analyzer]:
    if (names, settings) not in _ANALYZERS:
        chosen = [n for n in names if n != EXPAND]
        _ANALYZERS[names, settings] = registry.create(
            chosen, {name: dict(values) for name, values in settings if name in chosen})
    return _ANALYZERS[names, settings]


def error_record(stage: str, exc: BaseException,
                 analyzer: Analyzer | None = None) -> dict[str, Any]:
    """A closed description of a failure, safe to store and to hash."""
    return {
        "stage": stage,
        "analyzer": None if analyzer is None else analyzer.name,
        "version": None if analyzer is None else analyzer.version,
        "error": type(exc).__name__,
        "message": str(exc) or type(exc).__name__,
        "traceback": "".join(traceback.format_exception(exc)),
    }


def analyze_entry(task: BatchTask, entry: FileEntry, analyzers: list[Analyzer]) -> dict[str, Any]:
    """Findings and errors for one file (and what expansion needs); raises only when the
    evidence store failed (``RemoteError``), which stops the run instead of a file."""
    loc = entry.location
    reader = None
    try:
        reader = reader_for(task.spec)
        scan = task.limits.scan_bytes if EXPAND in task.analyzers else 0
        tap = Tap(reader.iter_chunks(task.volume_offset, loc.inode, loc.stream, CHUNK_SIZE,
                                     fs_type=loc.fs_type, snapshot=loc.snapshot), scan)
        findings, errors = analyze_chunks(
            tap, entry, analyzers,
            opener=lambda: reader.open_stream(task.volume_offset, loc.inode, loc.stream,
                                              loc.fs_type, snapshot=loc.snapshot))
    except RemoteError:  # not the evidence but the store failed: the run stops, resumable
        raise
    except Exception as exc:  # reading the evidence failed: the file gets an error record
        failure = reader.image.remote_failure if reader is not None else None
        if failure is not None:  # the store's error behind The Sleuth Kit's: as above
            reader.image.remote_failure = None
            raise failure from exc
        return {"findings": {}, "errors": [error_record("read", exc)], "tap": None}
    return {"findings": findings, "errors": [dict(e, stage="analyze") for e in errors],
            "tap": tap}


def expand_entry(task: BatchTask, ctx: Context, key: str, entry: FileEntry,
                 outcome: dict[str, Any]) -> list[dict[str, Any]]:
    """Everything derived from one planned file's content (see ``pipeline.run.expand``)."""
    loc = entry.location
    reader = reader_for(task.spec)
    node = Node(entry=entry, key=key, tap=outcome["tap"], size=max(entry.size, 0),
                open=lambda: reader.open_stream(task.volume_offset, loc.inode, loc.stream,
                                                loc.fs_type, loc.snapshot),
                errors=outcome["errors"],
                sha256=outcome["findings"].get("hashes", {}).get("sha256"))
    children = expand(ctx, node)
    for child in children:
        blobs = detach_blobs(child["record"]["findings"])
        if blobs:
            child["blobs"] = blobs
    return children


def detach_blobs(findings: dict[str, Any]) -> dict[str, bytes]:
    """Move analyzers' binary outputs (``blob_base64``, e.g. thumbnails) out of findings.

    The record that is hashed into the batch's Merkle tree keeps the blob's ``sha256``;
    the bytes travel beside it to the driver, which stores them and ledgers their digests.
    """
    blobs: dict[str, bytes] = {}
    for name, found in findings.items():
        if isinstance(found, dict) and "blob_base64" in found:
            blobs[name] = base64.b64decode(found.pop("blob_base64"))
    return blobs


def attach_canonical(records: list[dict[str, Any]]) -> None:
    """Each record's RFC 8785 bytes beside it (``canonical``), children included.

    Issue 17: canonical JSON was a third of the driver's CPU per record, and the driver
    is one process for every worker; made here, it costs the driver nothing. Same
    function, same bytes: the driver stores them as the record and hashes them into the
    batch's Merkle tree, and makes them itself for any record it changes. A record that
    cannot be made canonical is left for the driver, which fails on it as before.
    """
    for item in records:
        with contextlib.suppress(CanonicalizationError):
            item["canonical"] = canonical_bytes(item["record"])
        attach_canonical(item.get("children", []))


def analyze_batch(task: BatchTask) -> dict[str, Any]:
    """Run every analyzer over every file of the batch; one record per file, in order."""
    tune_allocator()
    analyzers = _analyzers(task.analyzers, task.settings)
    versions = {a.name: a.version for a in analyzers}
    guard = watchdog()
    announce_start(task.key)
    records = []
    try:
        if task.carve is not None:  # one range of unallocated space, not files
            def watch_range() -> Any:
                return guard.watch(task_key=task.key, file_id=task.items[0][0],
                                   limit=task.file_timeout, grace=task.timeout_grace)

            records.append(carve_range(task, analyzers, versions, watch_range, detach_blobs))
        for file_id, key, entry_dict in () if task.carve is not None else task.items:
            entry = FileEntry.from_dict(entry_dict)

            def watch(file_id: int = file_id) -> Any:
                return guard.watch(task_key=task.key, file_id=file_id, limit=task.file_timeout,
                                   grace=task.timeout_grace)

            with watch():
                outcome = analyze_entry(task, entry, analyzers)
            children = []
            if EXPAND in task.analyzers and outcome["tap"] is not None \
                    and outcome["tap"].head:
                ctx = Context(task.limits, analyzers, versions, watch, task.scratch)
                children = expand_entry(task, ctx, key, entry, outcome)
            blobs = detach_blobs(outcome["findings"])
            records.append(
                {
                    "file_id": file_id,
                    "record": {
                        "entry": key,
                        "location": entry.location.to_dict(),
                        "analyzers": versions,
                        "findings": outcome["findings"],
                        "errors": outcome["errors"],
                    },
                    **({"blobs": blobs} if blobs else {}),
                    **({"children": children} if children else {}),
                }
            )
    finally:
        guard.disarm()
    attach_canonical(records)
    return {
        "batch_id": task.batch_id,
        "records": records,
        "worker": {"host": socket.gethostname(), "pid": os.getpid(),
                   "libraries": library_versions()},
    }
