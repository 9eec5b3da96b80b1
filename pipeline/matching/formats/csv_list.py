"""CSV sets: a header naming hash columns (md5, sha1, sha256, hash, phash, dhash, pdq) and
optional category, category_label, series, media_id, description/name columns."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from pipeline.matching.known import (
    HashSetError,
    KnownEntry,
    ParsedSet,
    classify,
    lines,
    normalise,
    vpdq_hashes,
)

COLUMNS = {
    "md5": "md5", "sha1": "sha1", "sha-1": "sha1", "sha256": "sha256", "sha-256": "sha256",
    "hash": "hash", "phash": "phash", "dhash": "dhash", "pdq": "pdq",
    "vpdq": "vpdq",  # a video: the JSON list of "pdq,quality,timestamp" in one cell
}


def read(path: Path, info: ParsedSet, strict: bool) -> Iterator[KnownEntry]:
    skipped = [0]  # comment lines consumed so far: physical line = reader.line_num + this

    def uncommented() -> Iterator[str]:
        for line in lines(path, strict):
            if line.startswith("#"):
                skipped[0] += 1
                continue
            yield line

    reader = csv.reader(uncommented())
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise HashSetError(f"{path}: empty CSV") from None
    hash_cols = [(i, COLUMNS[h]) for i, h in enumerate(header) if h in COLUMNS]
    if not hash_cols:
        raise HashSetError(f"{path}: line {reader.line_num + skipped[0]}: no hash column in"
                           f" the header (expected one of {', '.join(sorted(COLUMNS))})")
    col = {h: i for i, h in enumerate(header)}
    extra = [h for h in ("description", "name", "size", "series") if h in col]
    for row in reader:
        number = reader.line_num + skipped[0]
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}: line {number}"
        if len(row) > len(header):
            if strict:
                raise HashSetError(f"{where}: {len(row)} fields, the header has {len(header)}")
            info.rejected.append(number)
            continue
        row = row + [""] * (len(header) - len(row))
        hashes: list[tuple[str, str]] = []
        try:
            for i, algo in hash_cols:
                cell = row[i].strip()
                if not cell:
                    continue
                if algo == "vpdq":
                    hashes.extend(vpdq_hashes(cell, f"{where}: vpdq"))
                    continue
                value = normalise(algo, cell, where)
                hashes.append((classify(value) if algo == "hash" else algo, value))  # type: ignore[arg-type]
            if not hashes:
                raise HashSetError(f"{where}: no hash value in this row")
        except HashSetError:
            if strict:
                raise
            info.rejected.append(number)
            continue

        category = _cell(row, col, "category")
        label = _cell(row, col, "category_label")
        if category is not None and label is not None:
            info.labels.setdefault(category, label)
        media_id = _cell(row, col, "media_id") or _cell(row, col, "mediaid")
        details = {h: row[col[h]] for h in extra if row[col[h]].strip()}
        yield KnownEntry(ref=f"line {number}", hashes=hashes, category=category,
                         media_id=media_id, series=_cell(row, col, "series"),
                         details=details or None)


def _cell(row: list[str], col: dict[str, int], name: str) -> str | None:
    value = row[col[name]].strip() if name in col else ""
    return value or None
