"""Take finished batches into the case: thumbnails, result rows, then ledger entries.

The driver is the only writer. The batches that finished together are one transaction
(group commit, issue 17); each batch's ``batch.analysed`` entry carries the Merkle root
over its canonical result records and is written from the committed rows, so a run
killed between the two can write it on resume (and one killed between the ledger append
and noting its sequence number does not write it twice).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from chain_of_custody.canonical import canonical_bytes
from chain_of_custody.ledger import read_entries
from chain_of_custody.merkle import canonical_leaf_hash, merkle_root
from ingest.location import FileEntry
from pipeline.case.database import CaseDatabase, derived_path
from pipeline.case.store import THUMBNAIL_DIR, Case


def store_batches(case: Case, finished: list[tuple[str, dict[str, Any]]]) -> None:
    """Write finished batches' results, derived entries and errors; mark each done.

    Group commit (issue 17): the thumbnails of all of them are fsynced side by side and
    their rows go into one transaction, so a driver receiving many batches at once pays
    the durability cost once. The Merkle leaves of each batch are its result records in
    order: each planned file's, followed by those of everything derived from its
    content, depth first.
    """
    prepared = []
    every_item: list[dict[str, Any]] = []
    for batch_id, outcome in finished:
        items = list(_flatten(outcome["records"]))
        # Canonical JSON, made once, hashed and stored: by the worker (issue 17), or here
        # for a record the driver made or changed.
        canonical = [item.get("canonical") or canonical_bytes(item["record"])
                     for item in items]
        root = merkle_root([canonical_leaf_hash(c) for c in canonical])
        prepared.append((batch_id, outcome, items, canonical, root, len(every_item)))
        every_item.extend(items)
    # Thumbnails before the rows: a committed record never names one that is not on disk.
    bad_thumbnails = store_thumbnails(case.directory, every_item)
    with case.db.atomic():
        for batch_id, outcome, items, canonical, root, first in prepared:
            bad = {index - first: errors for index, errors in bad_thumbnails.items()
                   if first <= index < first + len(items)}
            _store_rows(case, batch_id, outcome, items, canonical, root, bad)


def _store_rows(case: Case, batch_id: str, outcome: dict[str, Any],
                items: list[dict[str, Any]], canonical: list[bytes], root: str,
                bad_thumbnails: dict[int, list[dict[str, Any]]]) -> None:
    """One batch's rows, inside the caller's transaction."""
    db = case.db
    ids: dict[str, int] = {}  # entry key -> file id, for derived entries' parents
    paths: dict[str, str] = {}
    rows = []
    for index, item in enumerate(items):
        record = item["record"]
        if "file_id" in item:
            file_id = item["file_id"]
            paths[record["entry"]] = record["location"]["path"]
        else:
            entry = FileEntry.from_dict(item["entry"])
            path = derived_path(paths[item["parent_key"]], entry)
            file_id = db.add_derived(ids[item["parent_key"]], item["key"], entry, path)
            paths[item["key"]] = path
        ids[record["entry"]] = file_id
        rows.append((file_id, index, record, canonical[index].decode("utf-8")))
    db.store_results(batch_id, rows)
    for file_id, index, record, _ in rows:
        for err in record["errors"] + bad_thumbnails.get(index, []):
            db.add_error(stage=err.get("stage", "analyze"), error=err["error"],
                         message=err["message"],
                         evidence_id=record["location"]["evidence_id"],
                         file_id=file_id, batch_id=batch_id,
                         analyzer=err.get("analyzer"),
                         analyzer_version=err.get("version"),
                         traceback=err.get("traceback"), location=record["location"])
    db.finish_batch(batch_id, root, outcome.get("worker", {}))


def _flatten(records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in records:
        yield item
        yield from item.get("children", ())


def record_batches(case: Case, batch_ids: list[str]) -> None:
    """Append the batches' ``batch.analysed`` entries (one write, one fsync), made from
    the committed rows so a resume can too; then note their sequence numbers."""
    if not batch_ids:
        return
    db = case.db
    steps = [("batch.analysed", *_batch_entry(db, batch_id)) for batch_id in batch_ids]
    entries = case.ledger.append_many(steps)
    with db.atomic():
        case.note_head(entries[-1]["seq"], entries[-1]["hash"])
        for batch_id, entry in zip(batch_ids, entries, strict=True):
            db.set_batch_ledger_seq(batch_id, entry["seq"])


def _batch_entry(db: CaseDatabase, batch_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(subject, details) of one committed batch's ledger entry."""
    batch = db.batch(batch_id)
    errors = [
        {"file_id": r["file_id"], "location": json.loads(r["location"] or "null"),
         "stage": r["stage"], "analyzer": r["analyzer"], "error": r["error"],
         "message": r["message"][:500]}
        for r in db.batch_errors(batch_id)
    ]
    ids = json.loads(batch["file_ids"])
    thumbnails = db.batch_thumbnails(batch_id)
    derived = db.batch_derived(batch_id)
    return {
        "evidence_id": batch["evidence_id"], "volume_offset": batch["volume_offset"],
        "batch_id": batch_id,
    }, {
        "files": len(ids), "first_file_id": ids[0], "last_file_id": ids[-1],
        "bytes": batch["bytes"], "merkle_root": batch["merkle_root"],
        "record_hash": "sha256, RFC 6962 tree over canonical result records",
        "errors": errors, "worker": json.loads(batch["worker"] or "{}"),
        "thumbnails": {"directory": THUMBNAIL_DIR, "count": len(thumbnails),
                       "sha256": thumbnails},
        **({"derived": derived} if derived["entries"] else {}),
    }


def reconcile_batches(case: Case, batch_ids: list[str]) -> None:
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
    with case.db.atomic():
        for batch_id, seq in found.items():
            case.db.set_batch_ledger_seq(batch_id, seq)
    record_batches(case, [b for b in batch_ids if b not in found])


THUMBNAIL_BLOBS = ("thumbnail", "video")
_SYNC_THREADS = 16  # a picture's thumbnail, a video's contact sheet


def _thumbnail_blobs(records: list[dict[str, Any]]) -> Any:
    for index, item in enumerate(records):
        for name in THUMBNAIL_BLOBS:
            blob = item.get("blobs", {}).get(name)
            if blob is not None:
                yield index, item, name, blob


def _write_synced(job: tuple[Path, bytes]) -> None:
    """Temp file, its bytes, fsync, rename: the thumbnail is whole or absent."""
    target, blob = job
    tmp = target.with_name(f".{target.stem}.partial")
    with tmp.open("wb") as out:
        out.write(blob)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(target)


def store_thumbnails(case_dir: Path, records: list[dict[str, Any]]
                     ) -> dict[int, list[dict[str, Any]]]:
    """Write the thumbnails that came beside a batch's records as CASE/thumbnails/<sha256>.jpg.

    Atomic (temp file, fsync, rename) and idempotent: a re-run batch rewrites nothing.
    A blob whose digest is not the one its record states is not stored; the file gets an
    error record instead. Returns those errors by the record's index in ``records``.
    """
    bad: dict[int, list[dict[str, Any]]] = {}
    directory = case_dir / THUMBNAIL_DIR
    todo: dict[Path, bytes] = {}
    for index, item, name, blob in _thumbnail_blobs(records):
        found = item["record"]["findings"].get(name, {})
        stated = (found if name == "thumbnail" else found.get("contact_sheet", {})).get("sha256")
        digest = hashlib.sha256(blob).hexdigest()
        if digest != stated:
            bad.setdefault(index, []).append(
                {"stage": "thumbnail", "analyzer": name, "error": "DigestMismatch",
                 "message": f"thumbnail bytes hash to {digest}, the record states {stated};"
                            " not stored"})
            continue
        target = directory / f"{digest}.jpg"
        if not target.exists():
            todo[target] = blob
    if todo:
        directory.mkdir(exist_ok=True)
        # One fsync per file, but side by side: the filesystem commits them together
        # (issue 17: serial fsyncs were most of the driver's time per batch on photos).
        with ThreadPoolExecutor(max_workers=min(len(todo), _SYNC_THREADS)) as pool:
            list(pool.map(_write_synced, todo.items()))
    return bad
