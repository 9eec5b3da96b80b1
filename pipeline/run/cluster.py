"""Running batches on Dask: a local cluster by default, an existing one on request.

The runner pulls batches lazily and keeps a bounded number in flight, so the driver's
memory does not grow with the size of the case. It yields each batch's records as soon
as the whole batch is back, and it never loses a file:

- a task that fails (an exception, or a worker process that died in native code, ran
  out of memory or was stopped by the watchdog) is split in halves and re-run, down to
  the single file;
- when a worker reported which file hung (a watchdog event), that file is taken out at
  once instead of by splitting;
- a single file that still fails is probed analyzer by analyzer (reading only, then
  the first analyzer, the first two, …) to find the one that crashes or hangs; the file
  is then analysed without it, so it keeps every other analyzer's findings, and gets an
  error record naming the culprit (``crashed`` or ``timed out``);
- a task running longer than the per-task limit has its worker restarted.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from analyzers import registry
from ingest.location import FileEntry
from ingest.remote.objects import RemoteError
from pipeline.run.watchdog import EVENT_TOPIC, START_TOPIC

DEFAULT_WORKER_MEMORY = "3GiB"
DEFAULT_FILE_TIMEOUT = 120.0
DEFAULT_TASK_TIMEOUT = 3600.0
# A worker preload (script text): the terminal sends Ctrl-C to the whole process group,
# and the driver alone decides what stops.
IGNORE_CTRL_C = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)"
WORKERLESS_GRACE = 15.0  # seconds a local cluster may have no worker before it is replaced
RESULT_WAIT = 30.0  # seconds to fetch a finished task's result before looking at the workers
UNSTARTED_RETRIES = 5  # times a task whose worker died before it began is simply sent again
# Issue 18: local workers are forked from one fork server that imported Dask once, instead
# of each being a fresh interpreter importing it (spawn): N workers for the cost of one
# import, and the fork server imports while the driver does. Dask's own preload list (every
# optional package it knows: pandas, pyarrow, …) would cost more than it saves.
FORK_SERVER_PRELOAD = ("distributed",)

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # Dask is imported when a cluster starts (≈1 s): off the start-up path
    from distributed import Client, Future, LocalCluster

    from pipeline.run.worker import BatchTask  # and the analysis stack with the worker


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass
class _Batch:
    """An original batch being collected from one or more jobs."""

    task: BatchTask
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    outstanding: int = 0
    worker: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Job:
    """One submission: a (sub)task and why it runs."""

    task: BatchTask
    purpose: str = "analyse"  # analyse | probe | final
    label: str | None = None  # for probe/final: "crashed" or "timed out"
    prefix: int = 0  # for probe: how many analyzers this probe runs
    full: tuple[str, ...] = ()  # for probe: the analyzers being probed
    culprits: tuple[tuple[str | None, str], ...] = ()  # (analyzer, label) found so far
    unstarted: int = 0  # times it was sent again because its worker died before it began


class BatchRunner:
    """``with BatchRunner(...) as r: for finished in r.run(tasks, stop): ...``."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None, *,
                 in_flight_per_worker: int = 2, worker_memory: str = DEFAULT_WORKER_MEMORY,
                 file_timeout: float = DEFAULT_FILE_TIMEOUT,
                 task_timeout: float = DEFAULT_TASK_TIMEOUT, security: Any = None) -> None:
        """``security``: a ``distributed.Security`` for a TLS scheduler
        (``pipeline.secure.tls``)."""
        self.workers = workers or default_workers()
        self.scheduler = scheduler
        self.security = security
        self.in_flight_per_worker = in_flight_per_worker
        self.worker_memory = worker_memory
        self.file_timeout = file_timeout
        self.task_timeout = task_timeout
        self.cluster: LocalCluster | None = None
        self.client: Client | None = None
        self._helper: threading.Thread | None = None  # starting or closing in the background
        self._helper_error: BaseException | None = None
        self._submitted = 0  # numbers the submissions' Dask keys
        # Batches sent before run() (prestart): batch id -> (task as given, future, job, when)
        self._early: dict[str, tuple[BatchTask, Future, _Job, float]] = {}
        self.taken_early = 0  # of those, how many were taken (by run() or during the walk)

    # -- cluster life ----------------------------------------------------------------

    def __enter__(self) -> BatchRunner:
        from distributed import Client

        if self.scheduler:
            self.client = Client(self.scheduler, timeout="30s", security=self.security)
        else:
            self._start_local()
        return self

    def start_in_background(self, warm: tuple[str, ...] = ()) -> None:
        """Start the cluster (imports, scheduler, worker processes) in a thread while the
        driver walks the image; :meth:`wait_started` before use, :meth:`shutdown` after.

        Only the main thread may ignore SIGINT for the processes it spawns, so the workers
        started here ignore it themselves (:data:`IGNORE_CTRL_C`).
        ``warm``: modules the driver will need later, imported here meanwhile."""
        def start() -> None:
            self.__enter__()  # first: the workers' start is the longest step
            for name in warm:
                importlib.import_module(name)

        self._in_background("cluster-start", start)

    def wait_started(self) -> None:
        self._join_helper()

    def started(self) -> bool:
        """Whether tasks can be sent now (without waiting for a start in the background)."""
        return self.client is not None and self._helper_error is None

    def prestart(self, task: BatchTask) -> None:
        """Send a batch before :meth:`run` (the walk still runs): ``run`` takes its result
        when given an equal task, and cancels it otherwise (issue 18: first result at
        once). Only after :meth:`started`."""
        self._early[task.batch_id] = (task, *self._submit(_Job(task)))

    def take_early_finished(self) -> list[tuple[BatchTask, dict[str, Any]]]:
        """The batches sent by :meth:`prestart` that have finished cleanly, as :meth:`run`
        yields them; taken, so ``run`` will not see them. A batch that failed stays for
        ``run``, which splits, probes and retries (issue 18: results during the walk)."""
        taken = []
        for batch_id, (task, future, _, _) in list(self._early.items()):
            if future.status != "finished":
                continue
            del self._early[batch_id]
            outcome = future.result()
            future.release()
            self.taken_early += 1
            by_id = {item["file_id"]: item for item in outcome["records"]}
            taken.append((task, _finished(task, by_id, outcome.get("worker", {}))))
        return taken

    @property
    def prestarted(self) -> int:
        """Batches sent by :meth:`prestart` and not yet taken by :meth:`run`."""
        return len(self._early)

    def cancel_early(self) -> None:
        """Cancel what :meth:`prestart` sent and :meth:`run` did not take (a shared runner
        outlives a triage that failed before its analysis)."""
        for _, future, _, _ in self._early.values():
            future.cancel()
        self._early.clear()

    def _submit(self, job: _Job) -> tuple[Future, _Job, float]:
        from pipeline.run.worker import analyze_batch

        self._submitted += 1
        key = f"exhibit-{job.task.batch_id}-{job.purpose}-{self._submitted}"
        task = replace(job.task, key=key, file_timeout=self.file_timeout,
                       timeout_grace=min(10.0, max(1.0, self.file_timeout / 2)))
        future = self._client().submit(analyze_batch, task, key=key, pure=False, retries=0)
        return future, replace(job, task=task), time.monotonic()

    def close_in_background(self) -> None:
        """Close the cluster in a thread while the driver matches and summarises."""
        self._in_background("cluster-close", self.__exit__)

    def shutdown(self) -> None:
        """Wait for a start or close running in the background, then close what is still
        open (idempotent: the conductor's last word, on every path)."""
        try:
            self._join_helper()
        finally:
            if self.client is not None or self.cluster is not None:
                self.__exit__()

    def _in_background(self, name: str, work: Callable[[], object]) -> None:
        self._join_helper()

        def run() -> None:
            try:
                work()
            except BaseException as exc:  # re-raised in the driver by _join_helper
                self._helper_error = exc

        self._helper = threading.Thread(target=run, name=name, daemon=True)
        self._helper.start()

    def _join_helper(self) -> None:
        if self._helper is not None:
            self._helper.join()
            self._helper = None
        if (error := self._helper_error) is not None:
            self._helper_error = None
            raise error

    def _start_local(self) -> None:
        start_fork_server()
        settings = {
            "distributed.worker.multiprocessing-method": "forkserver",
            # A worker that dies with a task fails that task at once; the runner splits.
            "distributed.scheduler.allowed-failures": 0,
            # One task per worker thread at a time, so a dying worker takes no bystander.
            "distributed.scheduler.worker-saturation": 1.0,
            # Never pause or spill: a runaway file is stopped by the memory limit instead.
            "distributed.worker.memory.target": False,
            "distributed.worker.memory.spill": False,
            "distributed.worker.memory.pause": False,
            "distributed.worker.memory.terminate": 0.95,
            # The in-process scheduler's batched streams keep their last N messages
            # under 1 MB for debugging, and with them every batch sent to a worker
            # (~2 KB per file): the driver's memory would grow with the image.
            "distributed.admin.low-level-log-length": 16,
            "distributed.worker.preload": [IGNORE_CTRL_C],
            # Issue 18: the statistical profiler walks each worker's stack every 10 ms,
            # ~5 % of a worker's CPU on photos; nothing here reads its profiles.
            "distributed.worker.profile.enabled": False,
            # Issue 18: every Dask server (the scheduler, the nannies and the client in the
            # driver; each worker) checks its event loop every 20 ms by default, ~4 % of a
            # core in the driver and ~1.5 % in each worker, idle or not. The check only
            # logs a loop blocked longer than admin.tick.limit (3 s), as it still does.
            "distributed.admin.tick.interval": "500ms",
        }
        import dask
        import distributed.utils
        from distributed import Client, LocalCluster

        # The first nanny to start asks for the fork server's preload list, and to make it
        # imports every package Dask may use (numpy, pandas, lz4) in this process, holding
        # the GIL the walk needs (pandas, there only for case_utils: ~0.15 s CPU). The fork
        # server already runs with exhibit's preload (start_fork_server), which no later
        # list would change anyway.
        if hasattr(distributed.utils, "_forkserver_preload_set"):
            distributed.utils._forkserver_preload_set = True

        # Workers ignore Ctrl-C (inherited across exec), so the driver alone decides to
        # stop and the batches in flight finish. (Started in a thread: the workers set it
        # themselves first thing, a preload script, also after a restart.)
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            with dask.config.set(settings):
                self.cluster = LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.CRITICAL,
                    memory_limit=self.worker_memory,
                    # A forked worker's environment is the fork server's; the driver's
                    # (e.g. a volume password given on the command line) is handed over.
                    env=dict(os.environ),
                )
                self.client = Client(self.cluster)
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)

    def _restart_local(self) -> None:
        """Replace a local cluster that lost its workers (nannies can give up after
        many crashes in a row on a loaded machine)."""
        log.warning("the local Dask cluster lost all its workers; starting a new one")
        self.__exit__()
        self.client = self.cluster = None
        self._start_local()

    def __exit__(self, *exc: object) -> None:
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        if client is not None:
            client.close()
        if cluster is not None:
            try:
                cluster.close(timeout=30)
            except Exception as error:  # a cluster that lost its workers may not close cleanly
                log.warning("closing the local Dask cluster: %s", error)

    def describe(self) -> dict[str, Any]:
        client = self._client()
        workers = client.scheduler_info().get("workers", {})
        return {
            "scheduler": self.scheduler or "local",
            "workers": len(workers),
            "threads_per_worker": sorted({w.get("nthreads", 0) for w in workers.values()}),
            "worker_memory_limit": None if self.scheduler else self.worker_memory,
            "file_timeout_s": self.file_timeout,
            "task_timeout_s": self.task_timeout,
        }

    def _client(self) -> Client:
        if self.client is None:
            raise RuntimeError("BatchRunner used outside its context")
        return self.client

    # -- running ---------------------------------------------------------------------

    def run(self, tasks: Iterable[BatchTask], stop: StopFlag
            ) -> Iterator[list[tuple[BatchTask, dict[str, Any]]]]:
        """Yield the (batch, outcome) pairs that finished together, in completion order;
        pulls ``tasks`` lazily. The more workers finish while the driver stores the last
        group, the larger the next: its durability cost is paid once (issue 17)."""
        try:
            yield from self._run(tasks, stop)
        finally:  # sent early but never planned so (or the run stopped first)
            self.cancel_early()

    def _run(self, tasks: Iterable[BatchTask], stop: StopFlag
             ) -> Iterator[list[tuple[BatchTask, dict[str, Any]]]]:
        from distributed import wait

        client = self._client()
        source = iter(tasks)
        worker_count = max(1, len(client.scheduler_info().get("workers", {})))
        limit = max(self.workers, worker_count) * self.in_flight_per_worker
        batches: dict[str, _Batch] = {}
        running: dict[Future, tuple[_Job, float]] = {}

        def submit(job: _Job) -> None:
            future, job, when = self._submit(job)
            running[future] = (job, when)

        def top_up() -> None:
            while len(running) < limit and not stop.is_set():
                task = next(source, None)
                if task is None:
                    return
                batches[task.batch_id] = _Batch(task, outstanding=1)
                early = self._early.pop(task.batch_id, None)
                if early is not None and early[0] == task:  # sent during the walk: taken
                    running[early[1]] = early[2:]
                    self.taken_early += 1
                    continue
                if early is not None:
                    early[1].cancel()
                submit(_Job(task))

        top_up()
        workerless_since: float | None = None
        stalled = False  # a finished task's result could not be fetched (see below)
        while running:
            try:
                done, _ = wait(list(running), timeout=1.0, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            self._enforce_task_timeout(running)
            if (stalled or not done) and self.cluster is not None:
                if client.nthreads():
                    workerless_since = None
                elif workerless_since is None:
                    workerless_since = time.monotonic()
                elif time.monotonic() - workerless_since > WORKERLESS_GRACE:
                    jobs = [job for job, _ in running.values()]
                    running.clear()
                    self.cancel_early()  # lost with the workers: planned ones are sent again
                    self._restart_local()
                    client = self._client()
                    workerless_since = None
                    for job in jobs:
                        submit(job)
                    continue
            finished = []
            stalled = False
            for future in done:
                job, when = running.pop(future)
                batch = batches[job.task.batch_id]
                batch.outstanding -= 1
                try:
                    outcome = future.result(timeout=RESULT_WAIT)
                except Exception as exc:  # the task failed or its worker died
                    if isinstance(exc, TimeoutError) and future.status != "error":
                        # Finished, then its worker died before the result was fetched:
                        # Dask runs it again once a worker is there. Meanwhile the loop
                        # goes on (else, every worker lost, it waits here for ever) and
                        # may replace the workers.
                        running[future] = (job, when)
                        batch.outstanding += 1
                        stalled = True
                        continue
                    for follow_up in self._after_failure(job, exc, batch):
                        batch.outstanding += 1
                        submit(follow_up)
                else:
                    follow_up = self._after_success(job, outcome, batch)
                    if follow_up is not None:
                        batch.outstanding += 1
                        submit(follow_up)
                future.release()
                if batch.outstanding == 0:
                    del batches[job.task.batch_id]
                    finished.append((batch.task, _finished(batch.task, batch.records,
                                                           batch.worker)))
            top_up()  # before the driver stores them: the workers keep busy meanwhile
            if finished:
                yield finished

    # -- what to do when a job comes back ----------------------------------------------

    def _after_success(self, job: _Job, outcome: dict[str, Any], batch: _Batch) -> _Job | None:
        batch.worker = outcome.get("worker", batch.worker)
        if job.purpose == "probe" and job.prefix < len(job.full):
            return replace(job, prefix=job.prefix + 1,
                           task=replace(job.task, analyzers=job.full[: job.prefix + 1]))
        for item in outcome["records"]:
            if job.culprits:  # the record changes: its worker-made canonical bytes go
                record = item["record"]
                record["errors"] = list(record["errors"]) + [
                    _culprit_error(analyzer, label) for analyzer, label in job.culprits]
                item.pop("canonical", None)
            batch.records[item["file_id"]] = item
        return None

    def _after_failure(self, job: _Job, exc: BaseException, batch: _Batch) -> list[_Job]:
        if isinstance(exc, RemoteError):  # the evidence store failed, not this file: stop
            raise exc  # (the batches done are kept; the same command resumes the rest)
        task = job.task
        hung = self._hung_file(task.key)
        started = self._ran_for(task.key, exc)
        if started is None and hung is None and job.unstarted < UNSTARTED_RETRIES \
                and _worker_died(exc):
            # Queued on a worker that another file's crash or hang ended before this task
            # began (Dask reports it as having died "while running it"): nothing in it
            # failed, so it is sent again as it was, not split or blamed.
            log.info("%s was waiting on a worker that died; sending it again", task.key)
            return [replace(job, unstarted=job.unstarted + 1)]
        elapsed = started or 0.0
        if job.purpose == "analyse" and hung is not None and len(task.items) > 1:
            file_id, analyzer = hung
            rest = tuple(i for i in task.items if i[0] != file_id)
            single = tuple(i for i in task.items if i[0] == file_id)
            follow = [_Job(replace(task, items=rest))] if rest else []
            return follow + self._isolate(replace(task, items=single), "timed out", analyzer,
                                          job.culprits, batch, known=analyzer is not None)
        if job.purpose == "analyse" and len(task.items) > 1:
            half = len(task.items) // 2
            return [_Job(replace(task, items=task.items[:half])),
                    _Job(replace(task, items=task.items[half:]))]
        label = "timed out" if hung is not None or elapsed >= self.file_timeout else "crashed"
        if job.purpose == "probe":
            culprit = job.full[job.prefix - 1] if job.prefix > 0 else None
            return self._isolate(replace(task, analyzers=job.full), label, culprit,
                                 job.culprits, batch, known=True)
        if hung is not None and hung[1] is not None:
            return self._isolate(task, label, hung[1], job.culprits, batch, known=True)
        # A single file failed with an unknown culprit: probe, reading only first.
        log.warning("file %s failed in a worker (%s); probing analyzers", task.items[0][0], exc)
        return [_Job(replace(task, analyzers=()), purpose="probe", label=label, prefix=0,
                     full=task.analyzers, culprits=job.culprits)]

    def _isolate(self, task: BatchTask, label: str, culprit: str | None,
                 culprits: tuple[tuple[str | None, str], ...], batch: _Batch,
                 known: bool = False) -> list[_Job]:
        """Re-run one file without the analyzer that failed, or record it unreadable."""
        if not known:
            return [_Job(replace(task, analyzers=()), purpose="probe", label=label, prefix=0,
                         full=task.analyzers, culprits=culprits)]
        found = (*culprits, (culprit, label))
        if culprit is None:  # reading the file itself fails: nothing can analyse it
            file_id, key, entry_dict = task.items[0]
            batch.records[file_id] = unreadable_record(file_id, key, entry_dict, found)
            return []
        remaining = tuple(a for a in task.analyzers if a != culprit)
        return [_Job(replace(task, analyzers=remaining), purpose="final", culprits=found)]

    def _last_event(self, topic: str, matches: Callable[[dict[str, Any]], bool]
                    ) -> tuple[float, dict[str, Any]] | None:
        """The scheduler's newest event on ``topic`` that ``matches``: (its stamp on the
        scheduler's clock, the message). Raises what ``get_events`` raises."""
        for stamp, message in reversed(list(self._client().get_events(topic))):
            if isinstance(message, dict) and matches(message):
                return float(stamp), message
        return None

    def _hung_file(self, key: str) -> tuple[int, str | None] | None:
        """The file a worker's watchdog reported hung in this submission, if any."""
        try:
            found = self._last_event(EVENT_TOPIC, lambda m: m.get("task_key") == key)
        except Exception:  # an old scheduler without events: fall back to splitting
            return None
        return None if found is None else (int(found[1]["file_id"]), found[1].get("analyzer"))

    def _ran_for(self, key: str, exc: BaseException) -> float | None:
        """Seconds this submission ran before it failed: from the start its worker
        reported to the worker's removal by the scheduler (both on the scheduler's
        clock; until now if the removal is not found). None if it never reported a start
        (it is reported before any file is read), 0 if the scheduler keeps no events.

        Until the removal, not until now: on a loaded machine the driver may learn of a
        crash seconds later, and a crash must not read as a file over its time limit."""
        try:
            start = self._last_event(START_TOPIC, lambda m: m.get("task_key") == key)
        except Exception:
            return 0.0
        if start is None:
            return None
        ended = time.time()
        address = getattr(getattr(exc, "last_worker", None), "address", None)
        if isinstance(address, str):
            with suppress(Exception):  # no such topic: keep "until now"
                removal = self._last_event(address, lambda m: m.get("action") == "remove-worker"
                                           and key in (m.get("processing-tasks") or ()))
                if removal is not None:
                    ended = removal[0]
        return max(0.0, ended - start[0])

    def _enforce_task_timeout(self, running: dict[Future, tuple[_Job, float]]) -> None:
        """Restart the worker of a task that outlived the per-task limit."""
        now = time.monotonic()
        late = {f.key for f, (_, started) in running.items()
                if now - started > self.task_timeout}
        if not late:
            return
        client = self._client()
        for address, keys in client.processing().items():
            if late & set(keys):
                log.warning("restarting worker %s: task over %s s", address, self.task_timeout)
                client.restart_workers(workers=[address], raise_for_error=False)


def _finished(task: BatchTask, records: dict[int, dict[str, Any]], worker: dict[str, Any]
              ) -> dict[str, Any]:
    """A finished batch's outcome as the driver stores it: its records in the task's order."""
    return {"batch_id": task.batch_id, "records": [records[item[0]] for item in task.items],
            "worker": worker}


def start_fork_server() -> None:
    """Start multiprocessing's fork server with :data:`FORK_SERVER_PRELOAD` imported, if it
    is not running (idempotent; cheap to call early: the import runs in that process)."""
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(list(FORK_SERVER_PRELOAD))
    forkserver.ensure_running()


def prepare_local_cluster() -> None:
    """What a local cluster's start waits for, begun as early as a command can: the fork
    server, and Dask's import in this process (a thread; the cluster's start joins it)."""
    start_fork_server()
    threading.Thread(target=importlib.import_module, args=("distributed",),
                     name="import-dask", daemon=True).start()


def _worker_died(exc: BaseException) -> bool:
    from distributed import KilledWorker

    return isinstance(exc, KilledWorker)


def _culprit_error(analyzer: str | None, label: str) -> dict[str, Any]:
    version = None
    if analyzer is not None:
        known = registry.registered().get(analyzer)
        version = None if known is None else known.version
    where = f"analyzer {analyzer!r}" if analyzer else "reading the file"
    if label == "timed out":
        message = (f"{where} did not finish within the per-file time limit; the worker process"
                   " was stopped; the other analyzers' results are kept")
    else:
        message = (f"the worker process died while {where} ran on this file (a crash in native"
                   " code, or the worker memory limit); the other analyzers' results are kept")
    return {"stage": "worker", "analyzer": analyzer, "version": version, "error": label,
            "message": message, "traceback": None}


def unreadable_record(file_id: int, key: str, entry_dict: dict[str, Any],
                      culprits: tuple[tuple[str | None, str], ...]) -> dict[str, Any]:
    entry = FileEntry.from_dict(entry_dict)
    return {"file_id": file_id, "record": {
        "entry": key, "location": entry.location.to_dict(), "analyzers": {}, "findings": {},
        "errors": [_culprit_error(a, label) for a, label in culprits]}}
