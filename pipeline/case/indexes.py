"""The results' hash indexes: left out while an analysis stores its results, built at
its end or once every batch is sent (a case opened after a kill builds them on open,
``schema``).

Random hexadecimal keys make every insert into them a random page write: with them every
result row cost ~4x the driver's CPU on a large case (issue 18), so one sort builds each
when the rows are in — or when all but the batches still running are, while the workers
run those (the driver waits for results then), and the few left go in with the indexes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pipeline.case.database import CACHE_KIB, CaseDatabase
from pipeline.case.schema import RESULT_HASH_INDEX_NAMES, RESULT_HASH_INDEXES

# The sort that builds an index takes its runs' size from the page cache: with SQLite's
# default 2 MiB they stay in the CPU's caches (100,000 results: 0.40 -> 0.29 s for the
# three indexes, measured on the many-small case).
BUILD_CACHE_KIB = -2000


@dataclass
class IndexBuild:
    """The end of ``hash_indexes_deferred``: ``beside``, a read-only step for the case's
    connection while the indexes are built on another; ``result``, its value.

    ``begin`` starts the build early, on a second connection; until ``settle`` returns,
    the case's connection must not write (its writes would wait for the build's lock)."""

    db: CaseDatabase
    beside: Callable[[], Any] | None = None
    result: Any = None
    _built: Future[None] | None = field(default=None, init=False, repr=False)

    def begin(self) -> None:
        """Build the indexes now, beside whatever the caller does next (idempotent)."""
        if self._built is None:
            self._built = self.db.apart(_build)

    def settle(self) -> None:
        """Wait for a build begun (its error raised here); the case's connection may
        write again."""
        if self._built is not None:
            self._built.result()


@contextmanager
def hash_indexes_deferred(db: CaseDatabase) -> Iterator[IndexBuild]:
    """Store results without the hash indexes; build them when the block ends, on every
    path, unless ``IndexBuild.begin`` built them earlier.

    A read-only step set as the yielded ``IndexBuild.beside`` runs on the case's
    connection while a second one builds them (SQLite releases the GIL for both; a WAL
    reader does not wait for the writer): the run's summary counts, 0.24 s beside 0.38 s
    on 100,000 results. Its value is the build's ``result``."""
    for name in RESULT_HASH_INDEX_NAMES:
        db.conn.execute(f"DROP INDEX IF EXISTS {name}")
    build = IndexBuild(db)
    try:
        yield build
    finally:
        if build.beside is None or db.conn.in_transaction:  # the other would wait for it
            build.settle()  # begun only while the case's connection holds no transaction
            _build(db.conn)
            if build.beside is not None:
                build.result = build.beside()
        else:
            build.begin()
            try:
                build.result = build.beside()
            finally:
                build.settle()


def _build(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA cache_size={BUILD_CACHE_KIB}")
    try:
        conn.executescript(RESULT_HASH_INDEXES)
    finally:
        conn.execute(f"PRAGMA cache_size={CACHE_KIB}")
