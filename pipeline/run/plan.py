"""Split the walked files into Dask batches, once per evidence (a resume keeps the plan).

Batches follow guided self-scheduling with a quick start: each takes 1/(2p) of the work
still unplanned (p = parallelism), so no worker is left alone with one big batch at the
end; the first p take the smallest batch worth a task, whatever the total, so the first
results come within seconds and those batches can be cut from the first files walked,
before the walk ends (:class:`QuickStart`). ``--batch-mb``/``--batch-files`` are hard
maxima.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from pipeline.case.database import CaseDatabase
from pipeline.case.store import Case

if TYPE_CHECKING:
    from pipeline.run.cluster import BatchRunner
    from pipeline.run.worker import BatchTask

# A file's fixed cost (open, libmagic, records) in content-byte equivalents, the smallest
# batch worth a Dask task, and how many batches a worker should get when nothing else is
# known about a remote cluster.
PER_FILE_COST = 128 << 10
MIN_BATCH_COST = 8 << 20
REMOTE_PARALLELISM = 16


def batch_name(evidence_id: str, number: int) -> str:
    """The id of the evidence's ``number``-th batch (1-based), as planned."""
    return f"{evidence_id[:12]}-{number:06d}"


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
            db.add_batch(batch_name(evidence_id, totals["batches"]), evidence_id, vol_offset,
                         ids, nbytes)
    case.record("batches.planned", {"evidence_id": evidence_id}, {
        **totals, "batch_bytes": batch_bytes, "batch_files": batch_files,
        "parallelism": parallelism,
    })


def batch_target(remaining: int, planned: int, parallelism: int) -> float:
    """Cost one batch should have (see the module docstring)."""
    if planned < parallelism:  # the quick start: independent of the total
        return MIN_BATCH_COST
    return max(MIN_BATCH_COST, remaining / (2 * parallelism))


Batch = tuple[int, list[int], int]  # (volume offset, file ids, bytes)


class BatchCutter:
    """Cuts files, given one by one in walk order, into batches (see the module docstring).

    ``remaining`` is the cost of all files to plan; None while it is not known (during the
    walk), when only the quick-start batches can be cut: :meth:`add` then returns nothing
    once they are (:attr:`quick_start_done`).
    """

    def __init__(self, batch_bytes: int, batch_files: int, parallelism: int,
                 remaining: int | None = None) -> None:
        self.batch_bytes = batch_bytes
        self.batch_files = batch_files
        self.parallelism = parallelism
        self.remaining = remaining
        self.planned = 0
        self._current: list[int] = []
        self._size = self._cost = 0
        self._offset: int | None = None
        self._target = batch_target(remaining or 0, 0, parallelism)  # changes as batches close

    @property
    def quick_start_done(self) -> bool:
        return self.remaining is None and self.planned >= self.parallelism

    def add(self, file_id: int, volume_offset: int, size: int) -> Batch | None:
        """Take the next file; the batch it closes, if it closes one (called once per file
        walked: kept to a few comparisons)."""
        if self.quick_start_done:
            return None
        closed = None
        if self._current and (volume_offset != self._offset or self._size >= self.batch_bytes
                              or len(self._current) >= self.batch_files
                              or self._cost >= self._target):
            closed = self._close()
            if self.quick_start_done:
                return closed
        self._offset = volume_offset
        self._current.append(file_id)
        if size > 0:
            self._size += size
            self._cost += size
        self._cost += PER_FILE_COST
        return closed

    def _close(self) -> Batch:
        assert self._offset is not None
        batch = (self._offset, self._current, self._size)
        if self.remaining is not None:
            self.remaining -= self._cost
        self.planned += 1
        self._target = batch_target(self.remaining or 0, self.planned, self.parallelism)
        self._current, self._size, self._cost = [], 0, 0
        return batch

    def finish(self) -> Batch | None:
        """The last batch, once every file was given."""
        return self._close() if self._current else None


def plan_batches(db: CaseDatabase, evidence_id: str, batch_bytes: int, batch_files: int,
                 parallelism: int = 1) -> Iterator[Batch]:
    """(volume offset, file ids, bytes) per batch, streamed in walk order per volume.

    ``batch_bytes``/``batch_files`` are hard maxima; within them batch sizes follow
    :func:`batch_target`, a file costing its size plus :data:`PER_FILE_COST`.
    """
    count, total, rows = db.plannable_files(evidence_id)
    cutter = BatchCutter(batch_bytes, batch_files, parallelism,
                         remaining=count * PER_FILE_COST + total)
    add = cutter.add
    for file_id, volume_offset, size in rows:
        batch = add(file_id, volume_offset, size)
        if batch is not None:
            yield batch
    last = cutter.finish()
    if last is not None:
        yield last


MakeTask = Callable[[str, int, list[int]], "BatchTask"]  # (batch id, volume offset, file ids)


class QuickStart:
    """Cut the quick-start batches from the files the walk stores; send them to the
    cluster while the walk still runs (issue 18).

    A walk of 100,000 entries takes seconds, and the plan needs the whole walk; but the
    plan's quick-start batches depend only on the files walked before them.
    So they are cut as the walk stores each file, and sent as soon as the cluster is up: the
    first results come while the walk goes on.

    Nothing of them is stored or ledgered before the walk is committed and the plan made,
    in the usual order (``batches.planned``, ``analysis.started``, ``batch.analysed``): the
    runner takes a result sent early only for the very task the plan gives (same batch id,
    files, limits and analyzers) and cancels it otherwise, so the speculation can cost
    wasted work, never a result. An interrupted walk leaves nothing: its transaction rolls
    back and the tasks end with the cluster.
    """

    def __init__(self, runner: BatchRunner, evidence_id: str, batch_bytes: int,
                 batch_files: int, parallelism: int, make_task: MakeTask) -> None:
        self.runner = runner
        self.evidence_id = evidence_id
        self.cutter = BatchCutter(batch_bytes, batch_files, parallelism)
        self.make_task = make_task
        self.pending: list[tuple[str, Batch]] = []
        self.sent = 0

    def on_file(self, file_id: int, volume_offset: int, size: int) -> None:
        """Told of each plannable file as the walk stores it (in walk order)."""
        if self.cutter.quick_start_done and not self.pending:
            return
        batch = self.cutter.add(file_id, volume_offset, size)
        if batch is not None:
            self.pending.append((batch_name(self.evidence_id, self.cutter.planned), batch))
        if self.pending and self.runner.started():
            for name, (offset, ids, _) in self.pending:
                self.runner.prestart(self.make_task(name, offset, ids))
                self.sent += 1
            self.pending.clear()
