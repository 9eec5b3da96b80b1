"""The first batches, sent to the cluster while the walk still runs (issue 18).

A walk of 100,000 entries takes seconds, and the plan needs the whole walk; but the
plan's quick-start batches (``run.plan``) depend only on the files walked before them.
So they are cut as the walk stores each file, and sent as soon as the cluster is up: the
first results come while the walk goes on.

Nothing of them is stored or ledgered before the walk is committed and the plan made,
in the usual order (``batches.planned``, ``analysis.started``, ``batch.analysed``): the
runner takes a result sent early only for the very task the plan gives (same batch id,
files, limits and analyzers) and cancels it otherwise, so the speculation can cost
wasted work, never a result. An interrupted walk leaves nothing: its transaction rolls
back and the tasks end with the cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.run.plan import Batch, BatchCutter, batch_name

if TYPE_CHECKING:
    from pipeline.run.cluster import BatchRunner
    from pipeline.run.worker import BatchTask

MakeTask = Callable[[str, int, list[int]], "BatchTask"]  # (batch id, volume offset, file ids)


class QuickStart:
    """Cut the quick-start batches from the files the walk stores; send them early."""

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
