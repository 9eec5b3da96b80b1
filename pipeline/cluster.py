"""Running batches on Dask: a local cluster by default, an existing one on request.

The runner keeps a bounded number of batches in flight (so the driver's memory does not
grow with the case), yields each batch's outcome as it completes, and never loses a
file: a batch whose task fails (an exception, or a worker process that died in native
code) is split in halves and retried, down to the single file, which then gets an error
record naming the failure instead of results.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Protocol

import dask
from distributed import Client, LocalCluster, as_completed

from pipeline.worker import BatchTask, analyze_batch


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


class BatchRunner:
    """``with BatchRunner(workers, scheduler) as r: for task, outcome in r.run(tasks, stop)``."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 in_flight_per_worker: int = 2) -> None:
        self.workers = workers or default_workers()
        self.scheduler = scheduler
        self.in_flight_per_worker = in_flight_per_worker
        self.cluster: LocalCluster | None = None
        self.client: Client | None = None

    def __enter__(self) -> BatchRunner:
        if self.scheduler:
            self.client = Client(self.scheduler, timeout="30s")
        else:
            with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
                self.cluster = LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.ERROR,
                )
                self.client = Client(self.cluster)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def describe(self) -> dict[str, Any]:
        assert self.client is not None
        info = self.client.scheduler_info()
        return {
            "scheduler": self.scheduler or "local",
            "workers": len(info.get("workers", {})),
            "threads_per_worker": sorted({w.get("nthreads", 0)
                                          for w in info.get("workers", {}).values()}),
        }

    def run(self, tasks: list[BatchTask], stop: StopFlag) -> Iterator[tuple[BatchTask, dict]]:
        """Yield (task, outcome) per original batch, in completion order."""
        client = self.client
        if client is None:
            raise RuntimeError("BatchRunner used outside its context")
        limit = self.workers * self.in_flight_per_worker
        if self.scheduler:
            limit = max(limit, 2 * len(client.scheduler_info().get("workers", {})))
        queue = list(reversed(tasks))
        pending = as_completed()
        # Pieces of a split batch are collected here until the whole batch is back.
        parts: dict[str, dict[str, Any]] = {}
        by_id = {t.batch_id: t for t in tasks}
        attempt = 0
        submitted: dict[str, BatchTask] = {}

        def submit(task: BatchTask) -> None:
            nonlocal attempt
            attempt += 1
            future = client.submit(analyze_batch, task, pure=False, retries=0,
                                   key=f"exhibit-{task.batch_id}-{attempt}")
            submitted[future.key] = task
            pending.add(future)

        while queue and pending.count() < limit and not stop.is_set():
            submit(queue.pop())
        for future in pending:
            task = submitted.pop(future.key)
            try:
                outcome = future.result()
            except Exception as exc:  # the task failed or its worker died
                collected = parts.setdefault(task.batch_id,
                                             {"records": [], "outstanding": 1, "worker": {}})
                pieces = self._split(task)
                collected["outstanding"] += len(pieces) - 1
                for piece in pieces:
                    submit(piece)
                if not pieces:
                    collected["records"].extend(_crash_records(task, exc))
            else:
                if task.batch_id not in parts:
                    yield by_id[task.batch_id], outcome
                else:
                    collected = parts[task.batch_id]
                    collected["records"].extend(outcome["records"])
                    collected["worker"] = outcome.get("worker", {})
                    collected["outstanding"] -= 1
            done = [bid for bid, c in parts.items() if c["outstanding"] <= 0]
            for bid in done:
                collected = parts.pop(bid)
                original = by_id[bid]
                order = {item[0]: i for i, item in enumerate(original.items)}
                records = sorted(collected["records"], key=lambda r: order[r["file_id"]])
                yield original, {"batch_id": bid, "records": records,
                                 "worker": collected["worker"]}
            while queue and pending.count() < limit and not stop.is_set():
                submit(queue.pop())

    @staticmethod
    def _split(task: BatchTask) -> list[BatchTask]:
        if len(task.items) <= 1:
            return []
        half = len(task.items) // 2
        return [replace(task, items=task.items[:half]), replace(task, items=task.items[half:])]


def _crash_records(task: BatchTask, exc: BaseException) -> list[dict[str, Any]]:
    from ingest.location import FileEntry

    records = []
    for file_id, key, entry_dict in task.items:
        entry = FileEntry.from_dict(entry_dict)
        records.append({
            "file_id": file_id,
            "record": {
                "entry": key,
                "location": entry.location.to_dict(),
                "analyzers": {},
                "findings": {},
                "errors": [{
                    "stage": "worker", "analyzer": None, "version": None,
                    "error": "crashed" if "KilledWorker" in type(exc).__name__
                    else type(exc).__name__,
                    "message": f"analysis of this file failed in the worker: {exc}",
                    "traceback": None,
                }],
            },
        })
    return records
