"""Known-hash set formats, one module each, told apart by content (never by file name).

A new format is a module here with a ``read(path, info, ...)`` generator of
:class:`~pipeline.matching.known.KnownEntry`, a test in :func:`detect_format`, and a line
in :func:`iter_set`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.matching.formats import csv_list, nsrl, plain, vics, vpdq
from pipeline.matching.known import HashSetError, KnownEntry, ParsedSet


def detect_format(path: Path) -> str:
    """plain | csv | vics | nsrl | vpdq, from the content."""
    with path.open("rb") as fh:
        head = fh.read(65536)
    if head.startswith(nsrl.SQLITE_MAGIC):
        return "nsrl"
    text = head.decode("utf-8-sig", errors="replace")
    stripped = text.lstrip()
    if vpdq.sniff(text):
        return "vpdq"
    if stripped.startswith("{"):
        return "vics"
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
    columns = {c.strip().strip('"').lower() for c in first.split(",")}
    if "," in first and columns & set(csv_list.COLUMNS):
        return "csv"
    return "plain"


def iter_set(path: Path, *, strict: bool = True) -> tuple[ParsedSet, Iterator[KnownEntry]]:
    """The set's description and a lazy iterator over its entries (errors raise on the way)."""
    if not path.is_file():
        raise HashSetError(f"{path}: not a file")
    fmt = detect_format(path)
    info = ParsedSet(format=fmt)
    if fmt == "nsrl":
        info.kind = "known-good"
        return info, nsrl.read(path, info)
    if fmt == "vics":
        return info, vics.read(path, info)
    if fmt == "csv":
        return info, csv_list.read(path, info, strict)
    if fmt == "vpdq":
        return info, vpdq.read(path, info, strict)
    return info, plain.read(path, info, strict)
