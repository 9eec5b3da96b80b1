"""The results' hash indexes: left out while an analysis stores its results, built at
its end (a case opened after a kill builds them on open, ``schema``).

Random hexadecimal keys make every insert into them a random page write: with them every
result row cost ~4x the driver's CPU on a large case (issue 18), so one sort builds each
when the rows are in.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
    connection while the indexes are built on another; ``result``, its value."""

    beside: Callable[[], Any] | None = None
    result: Any = None


@contextmanager
def hash_indexes_deferred(db: CaseDatabase) -> Iterator[IndexBuild]:
    """Store results without the hash indexes; build them when the block ends, on every
    path.

    A read-only step set as the yielded ``IndexBuild.beside`` runs on the case's
    connection while a second one builds them (SQLite releases the GIL for both; a WAL
    reader does not wait for the writer): the run's summary counts, 0.24 s beside 0.38 s
    on 100,000 results. Its value is the build's ``result``."""
    for name in RESULT_HASH_INDEX_NAMES:
        db.conn.execute(f"DROP INDEX IF EXISTS {name}")
    build = IndexBuild()
    try:
        yield build
    finally:
        if build.beside is None or db.conn.in_transaction:  # the other would wait for it
            _build(db.conn)
            if build.beside is not None:
                build.result = build.beside()
        else:
            build.result = _beside_build(db, build.beside)


def _beside_build(db: CaseDatabase, step: Callable[[], Any]) -> Any:
    failed: list[BaseException] = []

    def build() -> None:
        conn = sqlite3.connect(db.path, isolation_level=None, timeout=600)
        try:
            _build(conn)
        except BaseException as exc:  # raised in the caller's thread below
            failed.append(exc)
        finally:
            conn.close()

    thread = threading.Thread(target=build, name="hash-indexes")
    thread.start()
    try:
        result = step()
    finally:
        thread.join()
    if failed:
        raise failed[0]
    return result


def _build(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA cache_size={BUILD_CACHE_KIB}")
    try:
        conn.executescript(RESULT_HASH_INDEXES)
    finally:
        conn.execute(f"PRAGMA cache_size={CACHE_KIB}")
