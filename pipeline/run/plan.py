"""Split the walked files into Dask batches, once per evidence (a resume keeps the plan).

Batches follow guided self-scheduling with a quick start: each takes 1/(2p) of the work
still unplanned (p = parallelism), the first p a quarter of that, so the first results
come within seconds and no worker is left alone with one big batch at the end.
``--batch-mb``/``--batch-files`` are hard maxima.
"""

from __future__ import annotations

from collections.abc import Iterator

from pipeline.case.database import CaseDatabase
from pipeline.case.store import Case

# A file's fixed cost (open, libmagic, records) in content-byte equivalents, the smallest
# batch worth a Dask task, and how many batches a worker should get when nothing else is
# known about a remote cluster.
PER_FILE_COST = 128 << 10
MIN_BATCH_COST = 8 << 20
REMOTE_PARALLELISM = 16


def plan(case: Case, evidence_id: str, batch_bytes: int, batch_files: int,
         parallelism: int) -> None:
    """Store the evidence's batches and ledger the plan, unless it is planned already."""
    db = case.db
    if db.batches(evidence_id):
        return
    totals = {"batches": 0, "files": 0, "bytes": 0}
    with db.atomic():
        for vol_offset, ids, nbytes in plan_batches(db, evidence_id, batch_bytes,
                                                    batch_files, parallelism):
            totals["batches"] += 1
            totals["files"] += len(ids)
            totals["bytes"] += nbytes
            batch_id = f"{evidence_id[:12]}-{totals['batches']:06d}"
            db.add_batch(batch_id, evidence_id, vol_offset, ids, nbytes)
    case.record("batches.planned", {"evidence_id": evidence_id}, {
        **totals, "batch_bytes": batch_bytes, "batch_files": batch_files,
        "parallelism": parallelism,
    })


def batch_target(remaining: int, planned: int, parallelism: int) -> float:
    """Cost one batch should have (see the module docstring)."""
    target = max(MIN_BATCH_COST, remaining / (2 * parallelism))
    return max(MIN_BATCH_COST, target / 4) if planned < parallelism else target


def plan_batches(db: CaseDatabase, evidence_id: str, batch_bytes: int, batch_files: int,
                 parallelism: int = 1) -> Iterator[tuple[int, list[int], int]]:
    """(volume offset, file ids, bytes) per batch, streamed in walk order per volume.

    ``batch_bytes``/``batch_files`` are hard maxima; within them batch sizes follow
    :func:`batch_target`, a file costing its size plus :data:`PER_FILE_COST`.
    """
    count, total, rows = db.plannable_files(evidence_id)
    remaining = count * PER_FILE_COST + total
    planned = 0
    target = batch_target(remaining, planned, parallelism)
    current: list[int] = []
    size = cost = 0
    offset = None
    for row in rows:
        if current and (row["volume_offset"] != offset or size >= batch_bytes
                        or len(current) >= batch_files or cost >= target):
            yield offset, current, size
            remaining -= cost
            planned += 1
            target = batch_target(remaining, planned, parallelism)
            current, size, cost = [], 0, 0
        offset = row["volume_offset"]
        current.append(row["id"])
        size += max(0, row["size"])
        cost += max(0, row["size"]) + PER_FILE_COST
    if current:
        yield offset, current, size
