"""vPDQ sets: one known video per file, in either of ThreatExchange's text forms.

- the reference hasher's output (``vpdq-hash-video -o``): ``frame,quality,pdq,timestamp``
  per line;
- python-threatexchange's JSON list of ``"pdq,quality,timestamp"`` strings.

The whole file is one :class:`KnownEntry` whose hashes are its frames (algorithm
``vpdq``, value ``pdq,quality,timestamp``); the entry's ``ref`` is the file's name, the
only name such a file gives its video.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from analyzers.video.vpdq import (
    VpdqFormatError,
    looks_like_json_list,
    looks_like_reference,
    parse_reference_line,
)
from pipeline.matching.known import HashSetError, KnownEntry, ParsedSet, lines, vpdq_hashes


def sniff(text: str) -> bool:
    """Whether a file's head is vPDQ in either form."""
    return looks_like_reference(text) or looks_like_json_list(text)


def read(path: Path, info: ParsedSet, strict: bool) -> Iterator[KnownEntry]:
    with path.open(encoding="utf-8-sig") as fh:
        head = fh.read(4096)
    hashes: list[tuple[str, str]] = []
    if looks_like_json_list(head):
        hashes = vpdq_hashes(path.read_text(encoding="utf-8-sig"), str(path))
    else:
        for number, line in enumerate(lines(path, strict), start=1):
            if not line.strip():
                continue
            try:
                frame = parse_reference_line(line, f"{path}: line {number}")
            except VpdqFormatError as exc:
                if strict:
                    raise HashSetError(str(exc)) from None
                info.rejected.append(number)
                continue
            hashes.append(("vpdq", frame.compact()))
    if not hashes:
        raise HashSetError(f"{path}: no vPDQ frames")
    yield KnownEntry(ref=path.name, hashes=hashes, details={"frames": len(hashes)})
