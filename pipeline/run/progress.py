"""Progress bars on stderr (hashing, walking, analysis with files/s and MB/s).

Kept apart from the conductor so tests and library use can switch them off; output
goes to stderr so that stdout carries only the summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class Reporter:
    """Creates the progress displays; a disabled reporter shows nothing."""

    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(stderr=True)

    def _progress(self, *columns: object) -> Progress:
        return Progress(*columns, console=self.console, disable=not self.enabled,
                        transient=False)

    @contextmanager
    def bytes_task(self, label: str, total: int) -> Iterator[Callable[[int], None]]:
        """Yields ``report(bytes_done_so_far)``."""
        with self._progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                            TransferSpeedColumn(), TimeRemainingColumn()) as progress:
            task = progress.add_task(label, total=total)
            yield lambda done: progress.update(task, completed=done)

    @contextmanager
    def count_task(self, label: str) -> Iterator[Callable[[int], None]]:
        with self._progress(TextColumn("{task.description}"),
                            TextColumn("{task.completed} entries"),
                            TimeElapsedColumn()) as progress:
            task = progress.add_task(label, total=None)
            yield lambda n: progress.advance(task, n)

    @contextmanager
    def analysis_task(self, files: int, nbytes: int, aside: Callable[[], str] = str
                      ) -> Iterator[Callable[[int, int], None]]:
        """Advance with (files, bytes); shows files/s and MB/s since the start, and what
        ``aside()`` says about work running beside the analysis (the image hash)."""
        started = time.monotonic()
        done_bytes = 0
        with self._progress(TextColumn("Analysing"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                            TimeRemainingColumn()) as progress:
            task = progress.add_task("analyse", total=files, rate="")

            def advance(nfiles: int, nb: int) -> None:
                nonlocal done_bytes
                done_bytes += nb
                elapsed = max(time.monotonic() - started, 1e-6)
                completed = progress.tasks[0].completed + nfiles
                rate = f"{completed / elapsed:,.0f} files/s  {done_bytes / 1e6 / elapsed:,.1f} MB/s"
                if extra := aside():
                    rate += f"  {extra}"
                progress.update(task, advance=nfiles, rate=rate)

            yield advance
