"""Register the evidence: hash the image, compare with stated and stored hashes, ledger both.

A resumed run recognises evidence it registered before by its container files (path,
size, mtime) and does not hash it again; the ledger says so.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ingest.acquisition import (
    compare_hashes,
    container_record,
    container_stat,
    evidence_paths,
    hash_image,
)
from ingest.formats.virtual import FORMATS as VIRTUAL_FORMATS
from ingest.image import EvidenceImage
from ingest.remote import is_url
from pipeline.case.database import utc_now
from pipeline.case.store import Case
from pipeline.run.progress import Reporter


class HashMismatchError(Exception):
    """Computed acquisition hashes differ from what was stated or stored."""


def register(case: Case, image: EvidenceImage, expected: dict[str, str],
             allow_mismatch: bool, reporter: Reporter) -> tuple[str, bool]:
    """(evidence id, hashes verified) for ``image``; refuses a mismatch unless allowed."""
    paths = evidence_paths(image)
    stat = container_stat(paths)
    known = case.db.evidence_by_paths(paths)
    if known is not None and json.loads(known["container_stat"]) == stat:
        case.record("evidence.reopened", {"evidence_id": known["id"]}, {
            "paths": paths, "container_stat": stat,
            "note": "container files unchanged since registration (size, mtime);"
                    " acquisition hashes not recomputed",
        })
        check_verified(case, known["id"], bool(known["verified"]), allow_mismatch)
        return known["id"], bool(known["verified"])

    with reporter.bytes_task("Hashing image", image.size) as advance:
        started = time.monotonic()
        computed = hash_image(image, progress=advance)
        seconds = time.monotonic() - started
    containers: dict[str, Any] = {}
    if image.format in VIRTUAL_FORMATS:  # a raw or E01 registration reads its files once
        with reporter.bytes_task("Hashing container files",
                                 sum(s["size"] for s in stat)) as advance:
            containers = container_record(image.format, paths, progress=advance)
    evidence_id = computed["sha256"]
    subject = {"evidence_id": evidence_id}
    case.record("acquisition.hashed", subject, {
        "format": image.format, "paths": paths, "size": image.size,
        **({"objects": stat} if any(is_url(p) for p in paths) else {}),
        "md5": computed["md5"], "sha1": computed["sha1"], "sha256": computed["sha256"],
        "seconds": round(seconds, 3),
        "mb_per_s": round(image.size / 1e6 / seconds, 1) if seconds > 0 else None,
    })
    comparisons = [dict(c, source="examiner") for c in compare_hashes(computed, expected)] + [
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
            "expected_hashes": json.dumps(expected),
            "verification": json.dumps(comparisons), "verified": int(verified),
            "container_stat": json.dumps(stat), "registered_at": utc_now(),
        })
        case.record("evidence.registered", subject, {
            "format": image.format, "paths": paths, "size": image.size,
            "container_metadata": image.metadata, **containers,
        })
    else:
        case.record("evidence.reopened", subject, {
            "paths": paths, "note": "same media data as already registered evidence",
            "registered_paths": json.loads(existing["paths"]), **containers,
        })
    check_verified(case, evidence_id, verified, allow_mismatch)
    return evidence_id, verified


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
