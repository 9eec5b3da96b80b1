"""Register the evidence and hash it alongside the walk and the analysis.

Reading a whole image to hash it takes as long as reading it (a 64 GB card: minutes), so
the examiner's first results do not wait for it: registration names the evidence by its
containers (:func:`ingest.acquisition.evidence_id_for`), records ``acquisition.started``
and starts one sequential reader in a thread of its own (its own handle on the image).
The conductor asks between batches whether it finished; when it has, the driver — the
ledger's only writer — records ``acquisition.hashed`` and ``acquisition.compared``, so
the ledger's order is the order of events: what was analysed before the comparison sits
before it. A mismatch stops the run there (``triage.refused``) unless the examiner
allowed it; the batches analysed before it stay in the case, under evidence marked not
verified. No ``triage.completed`` is written before the comparison.

A resumed run recognises evidence it registered and hashed before by its container files
(path, size, mtime) and does not hash it again; evidence whose hash never finished (the
run was interrupted) or whose files changed is hashed again, and a changed media hash
under the same paths is a mismatch.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ingest.acquisition import (
    compare_hashes,
    container_record,
    container_stat,
    evidence_id_for,
    evidence_paths,
    hash_image,
    stated_comparisons,
)
from ingest.errors import IngestError
from ingest.formats.virtual import FORMATS as VIRTUAL_FORMATS
from ingest.image import EvidenceImage, ImageSpec
from ingest.remote import is_url
from ingest.remote.objects import RemoteError
from pipeline.case.database import utc_now
from pipeline.case.store import Case

HASH_NICENESS = 10  # Linux: a thread's own nice value


class HashMismatchError(Exception):
    """Computed acquisition hashes differ from what was stated or stored."""


class BackgroundHash:
    """The acquisition hash (and a virtual disk's container files) in a thread of its own.

    hashlib releases the GIL on large buffers and the reads are the image library's, so
    the thread costs the driver little; it opens its own handle because image handles
    are not shared between threads.
    """

    def __init__(self, spec: ImageSpec, paths: list[str]) -> None:
        self.spec = spec
        self.paths = paths
        self.cancel = threading.Event()
        self.result: dict[str, Any] | None = None
        self.containers: dict[str, Any] = {}
        self.error: BaseException | None = None
        self.done_bytes = 0
        self.seconds = 0.0
        self.media_reader: str | None = None
        self._thread = threading.Thread(target=self._run, name="acquisition-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        # Below the walk, the cluster's start and the workers when they compete for cores
        # (the threads hash_image starts inherit it): the first results come first, the
        # hash takes what is left and all of the machine once the analysis ends.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICENESS)
        try:
            image = self.spec.open()
            try:
                self.result = hash_image(image, progress=self._progress, cancel=self.cancel)
                self.media_reader = image.media_reader
            finally:
                image.close()
            self.seconds = time.monotonic() - started
            if self.spec.format in VIRTUAL_FORMATS:  # raw and E01: no second read
                self.containers = container_record(self.spec.format, self.paths)
        except BaseException as exc:  # handed to the driver, which records it
            self.error = exc

    def _progress(self, done: int) -> None:
        self.done_bytes = done

    def finished(self) -> bool:
        return not self._thread.is_alive()

    def wait(self) -> None:
        self._thread.join()

    def stop(self) -> None:
        """Cancel and wait (the reader stops at its next chunk)."""
        self.cancel.set()
        self._thread.join()


@dataclass
class Registration:
    """The evidence a triage runs on, and its acquisition hash while that runs."""

    evidence_id: str
    image_format: str
    size: int
    paths: list[str]
    stored_hashes: dict[str, str]
    expected: dict[str, str]
    allow_mismatch: bool
    verified: bool | None = None  # None until the hash is compared
    hashing: BackgroundHash | None = None
    registered_sha256: str | None = None  # what the case recorded before (a re-hash)
    objects: list[dict[str, Any]] = field(default_factory=list)  # a store's: URL, ETag, size

    def progress_text(self) -> str:
        """For the progress line: how far the hash beside the analysis has got."""
        if self.hashing is None or self.size <= 0:
            return ""
        return f"image hash {100 * self.hashing.done_bytes / self.size:.0f} %"


def register(case: Case, image: EvidenceImage, expected: dict[str, str],
             allow_mismatch: bool) -> Registration:
    """Register ``image`` (or recognise it) and start its hash if it is not known yet.

    Known and verified evidence is checked here (a recorded mismatch refuses at once);
    otherwise the comparison comes from :func:`conclude`.
    """
    paths = evidence_paths(image)
    stat = container_stat(paths)
    known = case.db.evidence_by_paths(paths)
    reg = Registration(
        evidence_id=known["id"] if known is not None else evidence_id_for(image.format, paths),
        image_format=image.format, size=image.size, paths=paths,
        stored_hashes=dict(image.stored_hashes), expected=dict(expected),
        allow_mismatch=allow_mismatch, objects=stat if any(is_url(p) for p in paths) else [])
    subject = {"evidence_id": reg.evidence_id}
    if known is not None and known["sha256"] and json.loads(known["container_stat"]) == stat:
        case.record("evidence.reopened", subject, {
            "paths": paths, "container_stat": stat,
            "note": "container files unchanged since registration (size, mtime);"
                    " acquisition hashes not recomputed",
        })
        reg.verified = bool(known["verified"])
        check_verified(case, reg.evidence_id, reg.verified, allow_mismatch)
        return reg
    if known is None:
        case.db.add_evidence({
            "id": reg.evidence_id, "format": image.format, "paths": json.dumps(paths),
            "size": image.size, "stored_hashes": json.dumps(image.stored_hashes),
            "expected_hashes": json.dumps(expected), "verification": "[]",
            "container_stat": json.dumps(stat), "registered_at": utc_now(),
        })
        case.record("evidence.registered", subject, {
            "format": image.format, "paths": paths, "size": image.size,
            "container_metadata": image.metadata,
            "acquisition_hash": "runs alongside the walk and the analysis;"
                                " acquisition.hashed and acquisition.compared follow",
        })
    else:
        reg.registered_sha256 = known["sha256"]
        case.record("evidence.reopened", subject, {
            "paths": paths, "container_stat": stat,
            "note": "acquisition hash not finished before" if not known["sha256"] else
                    "container files changed since registration (size or mtime):"
                    " hashed again and compared with the registered hashes",
        })
        case.db.conn.execute("UPDATE evidence SET container_stat = ? WHERE id = ?",
                             (json.dumps(stat), reg.evidence_id))
    case.record("acquisition.started", subject, {
        "format": image.format, "paths": paths, "size": image.size,
        "algorithms": ["md5", "sha1", "sha256"],
        **({"objects": reg.objects} if reg.objects else {}),
    })
    reg.hashing = BackgroundHash(image.spec, paths)
    return reg


def conclude(case: Case, reg: Registration, wait: bool) -> None:
    """Record the finished hash and its comparisons; refuse on a mismatch unless allowed.

    Without ``wait`` it returns at once when the hash is still running. Media that cannot
    be read to the end has no hash: ``acquisition.failed`` says so and the run goes on
    (the files are read, or get error records, one by one). Raises
    :class:`HashMismatchError`.
    """
    hashing = reg.hashing
    if hashing is None or not (wait or hashing.finished()):
        return
    hashing.wait()
    reg.hashing = None
    subject = {"evidence_id": reg.evidence_id}
    if isinstance(hashing.error, RemoteError):  # the store failed, not the media: resumable
        case.record("error", subject, {
            "stage": "acquisition", "error": type(hashing.error).__name__,
            "message": str(hashing.error), "paths": reg.paths,
            "note": "the evidence store failed during the acquisition hash; run the same"
                    " command to hash again and resume",
        })
        raise hashing.error
    if isinstance(hashing.error, IngestError | OSError):  # the media cannot be read through
        case.record("acquisition.failed", subject, {
            "error": type(hashing.error).__name__, "message": str(hashing.error)[:2000],
            "paths": reg.paths, "read_bytes": hashing.done_bytes, "size": reg.size,
            "note": "no acquisition hash exists for this image; what can be read is"
                    " analysed, unreadable parts are error records; a re-run hashes again",
        })
        return
    if hashing.error is not None or hashing.result is None:
        raise hashing.error or RuntimeError("acquisition hash ended without a result")
    computed = hashing.result
    seconds = hashing.seconds
    comparisons = stated_comparisons(computed, reg.expected, reg.stored_hashes)
    if reg.registered_sha256:
        comparisons += [dict(c, source="registration") for c in compare_hashes(
            computed, {"sha256": reg.registered_sha256})]
    verified = all(c["status"] == "match" for c in comparisons)
    same_media = [r["id"] for r in case.db.conn.execute(
        "SELECT id FROM evidence WHERE sha256 = ? AND id != ?",
        (computed["sha256"], reg.evidence_id))]
    case.record_many([  # the hash, then its comparison: one sync for both
        ("acquisition.hashed", subject, {
            "format": reg.image_format, "paths": reg.paths, "size": reg.size,
            **({"objects": reg.objects} if reg.objects else {}),
            "md5": computed["md5"], "sha1": computed["sha1"], "sha256": computed["sha256"],
            "seconds": round(seconds, 3),
            "mb_per_s": round(reg.size / 1e6 / seconds, 1) if seconds > 0 else None,
            **({"media_read_by": hashing.media_reader} if hashing.media_reader else {}),
            **hashing.containers,
        }),
        ("acquisition.compared", subject, {
            "comparisons": comparisons,
            "result": "match" if verified else "MISMATCH",
            "compared": len(comparisons),
            **({"same_media_as": same_media} if same_media else {}),
        })])
    case.db.conn.execute(
        "UPDATE evidence SET md5 = ?, sha1 = ?, sha256 = ?, verification = ?, verified = ?"
        " WHERE id = ?",
        (computed["md5"], computed["sha1"], computed["sha256"], json.dumps(comparisons),
         int(verified), reg.evidence_id))
    reg.verified = verified
    check_verified(case, reg.evidence_id, verified, reg.allow_mismatch)


def abandon(case: Case, reg: Registration) -> None:
    """Stop a hash still running (the run ends early); the ledger says it did not finish."""
    hashing = reg.hashing
    if hashing is None:
        return
    if not hashing.finished():
        hashing.stop()
        if hashing.result is None:
            reg.hashing = None
            case.record("acquisition.stopped", {"evidence_id": reg.evidence_id}, {
                "read_bytes": hashing.done_bytes, "size": reg.size,
                "note": "the run ended before the acquisition hash; the next run hashes again",
            })
            return
    conclude(case, reg, wait=True)


def check_verified(case: Case, evidence_id: str, verified: bool, allow_mismatch: bool) -> None:
    """Stop on a hash mismatch unless the examiner allowed it; ledger either way."""
    if verified:
        return
    if not allow_mismatch:
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
