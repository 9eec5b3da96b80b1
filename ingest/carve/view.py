"""Unallocated space as one stream: runs of the image read as if they were contiguous.

``blkls`` writes a filesystem's free blocks one after another, and PhotoRec carves that
stream, so a picture whose blocks skip over an allocated block is still found whole. A
:class:`RunView` is the same stream without the copy: view offsets map to image offsets
through the runs, and every read goes to the image (read-only, as every reader here).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import Protocol

from ingest.streams import RandomAccessStream


class Readable(Protocol):
    def read_at(self, offset: int, size: int) -> bytes: ...


class RunView:
    """Image byte runs ``(offset, length)`` read as one stream, in the order given."""

    def __init__(self, image: Readable, runs: Iterable[tuple[int, int]]) -> None:
        self._image = image
        self.runs = [(int(o), int(n)) for o, n in runs if n > 0]
        self._starts: list[int] = []  # view offset where each run begins
        total = 0
        for _, length in self.runs:
            self._starts.append(total)
            total += length
        self.size = total

    def _index(self, pos: int) -> int:
        return bisect.bisect_right(self._starts, pos) - 1

    def read_at(self, pos: int, size: int) -> bytes:
        """Up to ``size`` bytes at view offset ``pos`` (fewer at the end or a short image)."""
        if pos < 0 or size <= 0 or pos >= self.size:
            return b""
        parts: list[bytes] = []
        index = self._index(pos)
        want = min(size, self.size - pos)
        while want > 0 and index < len(self.runs):
            offset, length = self.runs[index]
            inside = pos - self._starts[index]
            count = min(want, length - inside)
            data = self._image.read_at(offset + inside, count)
            parts.append(data)
            if len(data) < count:  # a truncated image: do not invent the bytes
                break
            pos += count
            want -= count
            index += 1
        return b"".join(parts)

    def image_runs(self, pos: int, length: int) -> list[tuple[int, int]]:
        """Where view bytes ``pos .. pos+length`` are in the image, as merged runs."""
        out: list[tuple[int, int]] = []
        index = self._index(pos)
        end = min(pos + length, self.size)
        while pos < end and 0 <= index < len(self.runs):
            offset, run_length = self.runs[index]
            inside = pos - self._starts[index]
            count = min(end - pos, run_length - inside)
            start = offset + inside
            if out and out[-1][0] + out[-1][1] == start:
                out[-1] = (out[-1][0], out[-1][1] + count)
            else:
                out.append((start, count))
            pos += count
            index += 1
        return out

    def pieces(self, start: int, stop: int, chunk: int) -> Iterator[tuple[int, int, bytes]]:
        """``(view offset, image offset, bytes)`` over ``start .. stop`` in reads of up to
        ``chunk`` that never cross a run (so image alignment is known in each piece)."""
        pos = max(0, start)
        stop = min(stop, self.size)
        while pos < stop:
            index = self._index(pos)
            offset, length = self.runs[index]
            inside = pos - self._starts[index]
            count = min(chunk, length - inside, stop - pos)
            data = self._image.read_at(offset + inside, count)
            if not data:
                pos = self._starts[index] + length  # unreadable tail of a run: skip it
                continue
            yield pos, offset + inside, data
            pos += len(data)


class ViewStream(RandomAccessStream):
    """View bytes ``start .. start+length`` as a read-only file object (for decoders)."""

    def __init__(self, view: RunView, start: int, length: int) -> None:
        super().__init__(length)
        self._view = view
        self._start = start

    def read_at(self, offset: int, length: int) -> bytes:
        return self._view.read_at(self._start + offset, length)
