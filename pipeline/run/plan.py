"""Split the walked files into Dask batches, once per evidence (a resume keeps the plan).

Batches follow guided self-scheduling with a quick start: each takes 1/(2p) of the work
still unplanned (p = parallelism), so no worker is left alone with one big batch at the
end; the first p take the smallest batch worth a task, whatever the total, so the first
results come within seconds and those batches can be cut from the first files walked,
before the walk ends (:class:`QuickStart`). The batches after them are cut during the
walk too, as soon as the files walked prove the plan of all files would cut them so
(:meth:`BatchCutter.add_walked`), so the workers are not idle while a long walk runs.
``--batch-mb``/``--batch-files`` are hard maxima.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

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


def unfinished_plan_key(evidence_id: str) -> str:
    """The case-info key present while the evidence's plan holds only the batches cut
    during the walk (:func:`store_walk_batches`), i.e. while the plan is not finished.
    (Its name predates the batches cut after the quick start; cases keep it.)"""
    return f"quick_start_batches:{evidence_id}"


def plan(case: Case, evidence_id: str, batch_bytes: int, batch_files: int,
         parallelism: int) -> None:
    """Store the evidence's batches and ledger the plan, unless it is planned already;
    batches stored during the walk (:class:`QuickStart`) stay its first."""
    db = case.db
    existing = db.batches(evidence_id)
    if existing and db.info(unfinished_plan_key(evidence_id)) is None:
        return
    before = [(b["volume_offset"], json.loads(b["file_ids"]), b["bytes"]) for b in existing]
    with db.atomic():
        number = len(before)
        for vol_offset, ids, nbytes in plan_batches(db, evidence_id, batch_bytes,
                                                    batch_files, parallelism, before):
            number += 1
            db.add_batch(batch_name(evidence_id, number), evidence_id, vol_offset, ids, nbytes)
        db.forget_info(unfinished_plan_key(evidence_id))
    batches = db.batches(evidence_id)
    case.record("batches.planned", {"evidence_id": evidence_id}, {
        "batches": len(batches), "files": sum(len(json.loads(b["file_ids"])) for b in batches),
        "bytes": sum(b["bytes"] for b in batches), "cut_during_walk": len(before),
        "batch_bytes": batch_bytes, "batch_files": batch_files, "parallelism": parallelism,
    })


def store_walk_batches(case: Case, evidence_id: str, cut: list[tuple[str, Batch]],
                       settings: dict[str, Any]) -> None:
    """Store and ledger batches cut during the walk (``batches.quick_start``), so their
    results can be: the plan made after the walk keeps them as its first batches."""
    db = case.db
    with db.atomic():
        for name, (vol_offset, ids, nbytes) in cut:
            db.add_batch(name, evidence_id, vol_offset, ids, nbytes)
        db.set_info(unfinished_plan_key(evidence_id), "batches cut during the walk")
    case.record("batches.quick_start", {"evidence_id": evidence_id}, {
        "batches": [{"batch_id": name, "volume_offset": vol_offset, "files": len(ids),
                     "first_file_id": ids[0], "last_file_id": ids[-1], "bytes": nbytes}
                    for name, (vol_offset, ids, nbytes) in cut],
        "note": "cut from the first files walked while the walk goes on; the plan made"
                " after the walk keeps them as its first batches",
        **settings,
    })


def file_cost(size: int) -> int:
    """A file's cost in a batch: its bytes plus :data:`PER_FILE_COST`."""
    return max(size, 0) + PER_FILE_COST


def batch_target(remaining: int, planned: int, parallelism: int) -> float:
    """Cost one batch should have (see the module docstring)."""
    if planned < parallelism:  # the quick start: independent of the total
        return MIN_BATCH_COST
    return max(MIN_BATCH_COST, remaining / (2 * parallelism))


Batch = tuple[int, list[int], int]  # (volume offset, file ids, bytes)


class BatchCutter:
    """Cuts files, given one by one in walk order, into batches (see the module docstring).

    ``remaining`` is the cost of all files to plan; None while it is not known (during the
    walk), when :meth:`add` cuts only the quick-start batches (:attr:`quick_start_done`)
    and :meth:`add_walked` also the later ones the walk so far decides.
    """

    def __init__(self, batch_bytes: int, batch_files: int, parallelism: int,
                 remaining: int | None = None, planned: int = 0) -> None:
        """``planned``: batches planned before this cutter's first (``remaining`` then
        excludes their cost)."""
        self.batch_bytes = batch_bytes
        self.batch_files = batch_files
        self.parallelism = parallelism
        self.remaining = remaining
        self.planned = planned
        self._current: list[int] = []
        self._size = self._cost = 0
        self._offset: int | None = None
        self._target = batch_target(remaining or 0, planned, parallelism)  # set as batches close
        # add_walked, after the quick start: the files walked and not yet in a batch cut, in
        # order, their cost, and how many of them the next batch takes so far (its size, cost).
        self._ahead: deque[tuple[int, int, int]] = deque()
        self._ahead_cost = 0
        self._next_files = self._next_size = self._next_cost = 0

    @property
    def quick_start_done(self) -> bool:
        return self.remaining is None and self.planned >= self.parallelism

    def add(self, file_id: int, volume_offset: int, size: int) -> Batch | None:
        """Take the next file; the batch it closes, if it closes one (called once per file
        walked: kept to a few comparisons)."""
        if self.quick_start_done:
            return None
        closed = None
        if self._current and (self._full(self._offset, self._size, len(self._current),
                                         volume_offset) or self._cost >= self._target):
            closed = self._close()
            if self.quick_start_done:
                return closed
        self._offset = volume_offset
        self._current.append(file_id)
        self._size += max(size, 0)
        self._cost += file_cost(size)
        return closed

    def _full(self, offset: int | None, size: int, files: int, next_offset: int) -> bool:
        """Whether a batch closes before the next file whatever its target: the next file
        is on another volume, or the batch reached a maximum."""
        return next_offset != offset or size >= self.batch_bytes or files >= self.batch_files

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

    def add_walked(self, file_id: int, volume_offset: int, size: int) -> list[Batch]:
        """Take the next file walked (the total is not known yet); the batches now known to
        be the plan's next, in order.

        After the quick start a batch's target is ``remaining / 2p``, and ``remaining``
        is at least the cost of the files walked and not yet in a batch. So the next batch
        is decided once it closes on a maximum or a volume's end before its cost reaches
        the target that lower bound gives: the plan of all files, whose target can only
        be larger, closes it at the same file. Until then it waits for more of the walk;
        what is left at the walk's end is the plan's to cut (:func:`plan_batches`)."""
        out: list[Batch] = []
        if not self.quick_start_done:
            batch = self.add(file_id, volume_offset, size)
            if batch is not None:
                out.append(batch)
            if not self.quick_start_done:
                return out
            # The quick start's last batch closed at this file, which it did not take.
        self._ahead.append((file_id, volume_offset, size))
        self._ahead_cost += file_cost(size)
        while (batch := self._cut_ahead()) is not None:
            out.append(batch)
        return out

    def _cut_ahead(self) -> Batch | None:
        ahead = self._ahead
        target = batch_target(self._ahead_cost, self.planned, self.parallelism)
        while self._next_files < len(ahead):
            _, volume_offset, size = ahead[self._next_files]
            if self._next_files:
                if self._full(ahead[0][1], self._next_size, self._next_files, volume_offset):
                    return self._cut_next()
                if self._next_cost >= target:  # the plan's target may be larger: wait
                    return None
            self._next_files += 1
            self._next_size += max(size, 0)
            self._next_cost += file_cost(size)
        return None

    def _cut_next(self) -> Batch:
        taken = [self._ahead.popleft() for _ in range(self._next_files)]
        batch = (taken[0][1], [file_id for file_id, _, _ in taken], self._next_size)
        self._ahead_cost -= self._next_cost
        self.planned += 1
        self._next_files = self._next_size = self._next_cost = 0
        return batch


def batch_cost(ids: Sequence[int], nbytes: int) -> int:
    """A batch's cost: its bytes plus :data:`PER_FILE_COST` per file."""
    return nbytes + len(ids) * PER_FILE_COST


def plan_batches(db: CaseDatabase, evidence_id: str, batch_bytes: int, batch_files: int,
                 parallelism: int = 1, after: Sequence[Batch] = ()) -> Iterator[Batch]:
    """(volume offset, file ids, bytes) per batch, streamed in walk order per volume.

    ``batch_bytes``/``batch_files`` are hard maxima; within them batch sizes follow
    :func:`batch_target`, a file costing its size plus :data:`PER_FILE_COST`. ``after``:
    batches planned already (cut during the walk), whose files are skipped; the batches
    that follow them are the ones a plan of all files would give after them.
    """
    count, total, rows = db.plannable_files(evidence_id)
    taken = {i for _, ids, _ in after for i in ids}
    cutter = BatchCutter(batch_bytes, batch_files, parallelism,
                         remaining=count * PER_FILE_COST + total
                         - sum(batch_cost(ids, nbytes) for _, ids, nbytes in after),
                         planned=len(after))
    add = cutter.add
    for file_id, volume_offset, size in rows:
        if taken and file_id in taken:
            continue
        batch = add(file_id, volume_offset, size)
        if batch is not None:
            yield batch
    last = cutter.finish()
    if last is not None:
        yield last


MakeTask = Callable[[str, int, list[int]], "BatchTask"]  # (batch id, volume offset, file ids)


TakeEarly = Callable[[list[tuple[str, Batch]], list[Any]], None]  # (batches to store, results)
POLL_SECONDS = 0.02  # how often the walk asks the cluster for finished early batches


class QuickStart:
    """Cut the plan's first batches from the files the walk stores; send them to the
    cluster while the walk still runs, and take their results in (issue 18).

    A walk of 100,000 entries takes seconds, and the plan needs the whole walk; but the
    plan's quick-start batches depend only on the files walked before them, and each
    later one is decided once enough files after it were walked
    (:meth:`BatchCutter.add_walked`). So they are cut as the walk stores each file, and
    sent as soon as the cluster is up, two per worker at a time.
    When one has finished, ``take_early`` is given it with the batches cut but not yet
    stored: the conductor commits the walk so far, stores and ledgers those batches
    (``batches.quick_start``), then the results (``batch.analysed``), and the walk goes
    on. The plan made after the walk keeps them as its first batches (:func:`plan`), and
    a resumed walk keeps the entries committed (``run.walk``). A batch sent early and
    not finished by the walk's end is taken by the runner if the plan gives the very same
    task, and cancelled otherwise: speculation can cost wasted work, never a result.
    """

    def __init__(self, runner: BatchRunner, evidence_id: str, batch_bytes: int,
                 batch_files: int, parallelism: int, make_task: MakeTask,
                 take_early: TakeEarly | None = None) -> None:
        self.runner = runner
        self.evidence_id = evidence_id
        self.cutter = BatchCutter(batch_bytes, batch_files, parallelism)
        self.make_task = make_task
        self.take_early = take_early
        self.cut: list[tuple[str, Batch]] = []
        self.stored = 0  # of the batches cut, how many the case holds
        self.sent = 0
        self.taken = 0  # batches whose results were stored during the walk
        self._next_poll = 0.0

    def on_file(self, file_id: int, volume_offset: int, size: int) -> None:
        """Told of each plannable file as the walk stores it (in walk order)."""
        for batch in self.cutter.add_walked(file_id, volume_offset, size):
            self.cut.append((batch_name(self.evidence_id, len(self.cut) + 1), batch))
        if self.sent < len(self.cut) and self.runner.started():
            # Enough sent to keep every worker busy and one more batch each queued.
            room = 2 * self.cutter.parallelism - (self.sent - self.taken)
            for name, (offset, ids, _) in self.cut[self.sent:self.sent + max(0, room)]:
                self.runner.prestart(self.make_task(name, offset, ids))
                self.sent += 1
        if self.take_early is not None and self.taken < self.sent:
            now = time.monotonic()
            if now >= self._next_poll:
                self._next_poll = now + POLL_SECONDS
                finished = self.runner.take_early_finished()
                if finished:
                    self.take_early(self.cut[self.stored:self.sent], finished)
                    self.stored = self.sent
                    self.taken += len(finished)
