"""Carving unallocated space: pictures and videos whose names are gone.

``view`` reads unallocated runs as one stream, ``scan`` finds what begins at block
starts and walks it to its end, ``formats`` knows videos and other headers, ``known``
gives the runs of the deleted files the walk found (carving leaves them out). The
pipeline side (ranges as Dask tasks, derived entries, custody) is ``pipeline.carving``.
"""

from __future__ import annotations

from ingest.carve.known import file_runs, files_runs
from ingest.carve.scan import (
    ALIGN,
    MODES,
    VERSION,
    CarveHit,
    Carver,
    CarveSummary,
    kinds_for,
)
from ingest.carve.view import RunView, ViewStream

__all__ = ["ALIGN", "MODES", "VERSION", "CarveHit", "CarveSummary", "Carver", "RunView",
           "ViewStream", "file_runs", "files_runs", "kinds_for"]
