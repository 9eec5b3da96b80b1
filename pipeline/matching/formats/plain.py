"""Plain lists: one MD5, SHA-1 or SHA-256 per line (told by length); ``#`` comments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.matching.known import HashSetError, KnownEntry, ParsedSet, classify, lines, show


def read(path: Path, info: ParsedSet, strict: bool) -> Iterator[KnownEntry]:
    for number, line in enumerate(lines(path, strict), start=1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        algo = classify(value)
        if algo is None:
            if strict:
                raise HashSetError(f"{path}: line {number}: {show(value)} is not an MD5,"
                                   " SHA-1 or SHA-256 value")
            info.rejected.append(number)
            continue
        yield KnownEntry(ref=f"line {number}", hashes=[(algo, value.lower())])
