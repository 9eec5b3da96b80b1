"""Raw/dd images, whole or split into segment files (.001/.000/.aa …), read with pread."""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path

from ingest.errors import IngestError, UnsupportedImageError


class RawReader:
    """Reads a raw image spread over one or more segment files, strictly read-only."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._fds: list[int] = []
        self._paths = [str(p) for p in paths]
        self._starts: list[int] = []
        offset = 0
        try:
            for path in paths:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                self._fds.append(fd)
                self._starts.append(offset)
                offset += os.fstat(fd).st_size
        except OSError as exc:
            self.close()
            raise UnsupportedImageError(f"cannot open image segment {exc.filename}: {exc}") from exc
        ends = [*self._starts[1:], offset]
        self._sizes = [end - start for start, end in zip(self._starts, ends, strict=True)]
        self.size = offset

    def read_at(self, offset: int, size: int) -> bytes:
        if offset < 0 or size < 0:
            raise ValueError(f"negative offset/size: {offset}, {size}")
        end = min(offset + size, self.size)
        parts: list[bytes] = []
        pos = offset
        while pos < end:
            seg = bisect_right(self._starts, pos) - 1
            seg_off = pos - self._starts[seg]
            want = min(end - pos, self._sizes[seg] - seg_off)
            data = os.pread(self._fds[seg], want, seg_off)
            if not data:
                raise IngestError(f"short read in {self._paths[seg]} at image offset {pos}")
            parts.append(data)
            pos += len(data)
        return b"".join(parts)

    def stored_hashes(self) -> dict[str, str]:
        return {}  # a raw file stores none

    def metadata(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())
