"""Per-file time limits inside a worker process.

Hostile or damaged files can make parsers loop forever. Three layers, from gentle to
final, each documented in the README:

1. At the limit, a watchdog thread raises ``AnalysisTimeout`` asynchronously in the
   thread analysing the file. Pure-Python loops (exifread on a looping IFD chain) stop
   there; the analyzer that was running gets an error record and the others go on.
2. If the thread is stuck in native code that released the GIL (a hung libmagic or
   libjpeg call), the exception cannot land. After a grace period the watchdog tells the
   scheduler which file and analyzer hung (a Dask worker event) and ends the process;
   the driver reads the event, records the file as timed out and re-runs the rest.
3. If native code holds the GIL, no Python thread can run at all; ``faulthandler``'s
   C-level timer then dumps the stacks and exits the process. The driver finds the file
   by splitting the batch. Re-arming that timer costs ~0.1 ms, as much as hashing a
   small file, so it is armed with some slack and re-armed only when a file could
   otherwise outlive it (at most once per :data:`REARM_SLACK` seconds); it fires between
   ``limit + grace + 5`` and that plus the slack after the hung file began, and is
   cancelled when the batch ends (``disarm``) so an idle worker is never shot.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from analyzers.base import Analyzer

EVENT_TOPIC = "exhibit-timeout"
START_TOPIC = "exhibit-start"
REARM_SLACK = 2.0  # seconds the last-resort timer may fire late, to re-arm it rarely
EVENT_WAIT = 10.0  # seconds an event may take to leave a worker (long only when it is starved)


class AnalysisTimeout(Exception):
    """The per-file time limit passed while this file was being analysed."""


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )


def _current_analyzer(thread_id: int) -> str | None:
    """The analyzer on the hung thread's stack (innermost), if any."""
    frame = sys._current_frames().get(thread_id)
    while frame is not None:
        candidate = frame.f_locals.get("analyzer")
        if isinstance(candidate, Analyzer):
            return candidate.name
        frame = frame.f_back
    return None


class FileWatchdog:
    """One per worker process; ``with watchdog.watch(...)`` around each file."""

    def __init__(self, poll: float = 0.05) -> None:
        self._poll = poll
        self._lock = threading.Lock()
        self._current: dict[str, Any] | None = None
        self._armed_until: float | None = None  # faulthandler's deadline (monotonic)
        self._thread = threading.Thread(target=self._run, name="exhibit-watchdog", daemon=True)
        self._thread.start()

    def _arm(self, needed: float) -> None:
        """Make sure the last-resort timer fires no earlier than ``needed`` seconds from now."""
        now = time.monotonic()
        if self._armed_until is not None and self._armed_until >= now + needed:
            return
        faulthandler.dump_traceback_later(needed + REARM_SLACK, exit=True)
        self._armed_until = now + needed + REARM_SLACK

    def disarm(self) -> None:
        """Cancel the last-resort timer (end of a batch: an idle process must live)."""
        if self._armed_until is not None:
            faulthandler.cancel_dump_traceback_later()
            self._armed_until = None

    @contextlib.contextmanager
    def watch(self, *, task_key: str, file_id: int, limit: float, grace: float) -> Iterator[None]:
        if limit <= 0:
            self.disarm()
            yield
            return
        thread_id = threading.get_ident()
        self._arm(limit + grace + 5.0)
        with self._lock:
            self._current = {"thread": thread_id, "task_key": task_key, "file_id": file_id,
                             "started": time.monotonic(), "limit": limit, "grace": grace,
                             "raised_at": None}
        try:
            yield
        finally:
            with self._lock:
                raised = self._current is not None and self._current["raised_at"] is not None
                self._current = None
            if raised:  # clear an exception that may not have been delivered yet
                _raise_in(thread_id, None)

    def _run(self) -> None:
        while True:
            time.sleep(self._poll)
            with self._lock:
                current = self._current
                if current is None:
                    continue
                elapsed = time.monotonic() - current["started"]
                if current["raised_at"] is None and elapsed > current["limit"]:
                    current["raised_at"] = time.monotonic()
                    current["analyzer"] = _current_analyzer(current["thread"])
                    _raise_in(current["thread"], AnalysisTimeout)
                    continue
                if current["raised_at"] is None:
                    continue
                if time.monotonic() - current["raised_at"] < current["grace"]:
                    continue
            self._give_up(current)

    def _give_up(self, current: dict[str, Any]) -> None:
        """Native code ignored the timeout: report it, then end this process."""
        message = {"task_key": current["task_key"], "file_id": current["file_id"],
                   "analyzer": current.get("analyzer"), "limit": current["limit"],
                   "pid": os.getpid()}
        send_event(EVENT_TOPIC, message, wait=EVENT_WAIT)
        time.sleep(0.2)  # for the scheduler to read it before the nanny reports the exit
        os._exit(70)


def announce_start(task_key: str) -> None:
    """Tell the scheduler when a task began, so the driver can time a worker's death.

    Returns once the event has left the worker: code that then holds the GIL for ever
    would otherwise starve the event loop, the start would never be known, and a file
    that hung would be reported as a crash.
    """
    send_event(START_TOPIC, {"task_key": task_key}, wait=EVENT_WAIT)


def send_event(topic: str, message: dict[str, Any], wait: float) -> None:
    """Log ``message`` to the scheduler from this worker and wait, at most ``wait``
    seconds, until it has been written to the scheduler's connection.

    The worker's event loop writes it; a fixed pause was not enough on a loaded machine
    (the start of a file that then held the GIL was lost, and the file reported as a
    crash instead of a timeout). Written means: the batch holding it is in the
    connection's log of messages sent (Dask appends it once the write has returned).
    Outside a Dask worker this does nothing.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not inside a Dask worker
        return
    queued = threading.Event()

    def send() -> None:
        worker.log_event(topic, message)
        queued.set()

    worker.loop.add_callback(send)
    stream = getattr(worker, "batched_stream", None)
    sent = getattr(stream, "recent_message_log", None)
    deadline = time.monotonic() + wait
    queued.wait(wait)  # in the stream's buffer from here on
    while time.monotonic() < deadline:
        if sent is None:  # not Dask's usual stream: its buffer emptied is the best sign
            if stream is None or not stream.buffer:
                time.sleep(0.01)
                return
        elif any(isinstance(item, dict) and item.get("msg") is message
                 for payload in list(sent) if isinstance(payload, list) for item in payload):
            return
        time.sleep(0.002)


_WATCHDOG: FileWatchdog | None = None
_WATCHDOG_LOCK = threading.Lock()


def watchdog() -> FileWatchdog:
    """This process's watchdog, started on first use."""
    global _WATCHDOG
    with _WATCHDOG_LOCK:
        if _WATCHDOG is None:
            faulthandler.enable()
            _WATCHDOG = FileWatchdog()
        return _WATCHDOG
