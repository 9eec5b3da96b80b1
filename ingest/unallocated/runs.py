"""Byte runs: free bits of an allocation bitmap turned into merged (offset, length) runs.

Bitmaps are turned into runs with numpy a slice at a time, so a terabyte volume's bitmap
(tens of millions of bits) costs milliseconds and never a per-block Python loop.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from typing import Literal, NamedTuple, Protocol

import numpy as np

DEFAULT_CHUNK = 8 << 20


class ByteRun(NamedTuple):
    """A run of bytes in the image: where it starts and how long it is."""

    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


class _Readable(Protocol):
    def read_at(self, offset: int, size: int) -> bytes: ...


class RunList:
    """Block runs appended in ascending order, adjacent ones merged as they come."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def add(self, start: int, count: int) -> None:
        if count <= 0:
            return
        if self._ends and start < self._ends[-1]:
            raise ValueError(f"runs must come in ascending order ({start} < {self._ends[-1]})")
        if self._ends and start == self._ends[-1]:
            self._ends[-1] = start + count
        else:
            self._starts.append(start)
            self._ends.append(start + count)

    def add_free_bits(self, bitmap: bytes, first_block: int, nbits: int,
                      bitorder: Literal["little", "big"] = "little") -> None:
        """Add the blocks whose bit is clear; bit ``i`` is block ``first_block + i``."""
        nbits = min(nbits, len(bitmap) * 8)
        if nbits <= 0:
            return
        used = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), count=nbits,
                             bitorder=bitorder)
        self.add_free_mask(used == 0, first_block)

    def add_free_mask(self, free: np.ndarray, first_block: int) -> None:
        """Add the blocks where ``free`` is true; index ``i`` is block ``first_block + i``."""
        if not free.size:
            return
        edges = np.diff(np.concatenate(([0], free.astype(np.int8), [0])))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            self.add(first_block + start, end - start)

    def any_free(self, start: int, count: int) -> bool:
        """Whether any block of ``start`` .. ``start + count - 1`` lies in a run."""
        i = bisect_right(self._starts, start + count - 1) - 1
        return count > 0 and i >= 0 and self._ends[i] > start

    def to_bytes(self, base: int, block_size: int) -> list[ByteRun]:
        """The runs in image bytes, for blocks of ``block_size`` starting at ``base``."""
        return [ByteRun(base + s * block_size, (e - s) * block_size)
                for s, e in zip(self._starts, self._ends, strict=True)]


def merge_runs(runs: Iterable[ByteRun | tuple[int, int]]) -> list[ByteRun]:
    """Sort runs and merge those that touch or overlap; empty runs are dropped."""
    merged: list[ByteRun] = []
    for offset, length in sorted((int(o), int(n)) for o, n in runs if n > 0):
        if merged and offset <= merged[-1].end:
            last = merged[-1]
            merged[-1] = ByteRun(last.offset, max(last.end, offset + length) - last.offset)
        else:
            merged.append(ByteRun(offset, length))
    return merged


def subtract_runs(runs: Iterable[ByteRun], holes: Iterable[ByteRun]) -> list[ByteRun]:
    """``runs`` without any byte of ``holes`` (both in image bytes)."""
    out: list[ByteRun] = []
    cut = merge_runs(holes)
    for run in merge_runs(runs):
        pos = run.offset
        for hole in cut:
            if hole.end <= pos or hole.offset >= run.end:
                continue
            if hole.offset > pos:
                out.append(ByteRun(pos, hole.offset - pos))
            pos = max(pos, hole.end)
        if pos < run.end:
            out.append(ByteRun(pos, run.end - pos))
    return out


def iter_unallocated(image: _Readable, runs: Iterable[ByteRun | tuple[int, int]],
                     chunk: int = DEFAULT_CHUNK) -> Iterator[tuple[int, bytes]]:
    """Yield (image offset, bytes) over ``runs`` in sequential reads of up to ``chunk``.

    Large reads keep a disk (or an E01's chunk cache) streaming; a run is never read
    past its end, and a short read (a truncated image) ends that run rather than
    inventing bytes.
    """
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, not {chunk}")
    for offset, length in runs:
        pos, end = int(offset), int(offset) + int(length)
        while pos < end:
            data = image.read_at(pos, min(chunk, end - pos))
            if not data:
                break
            yield pos, data
            pos += len(data)
