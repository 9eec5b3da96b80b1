"""Raw/dd images, whole or split into segment files (.001/.000/.aa …), read with pread."""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path

from ingest.errors import IngestError, UnsupportedImageError
from ingest.remote.objects import RemoteFile, RemotePath


class RawReader:
    """Reads a raw image spread over one or more segment files, strictly read-only.

    A segment is a file descriptor (``pread``) or, for an object in a store, a
    ``RemoteFile`` (ranged GETs).
    """

    def __init__(self, paths: Sequence[Path | RemotePath]) -> None:
        self._fds: list[int | RemoteFile] = []
        self._paths = [str(p) for p in paths]
        self._starts: list[int] = []
        offset = 0
        try:
            for path in paths:
                self._starts.append(offset)
                if isinstance(path, RemotePath):
                    remote = path.open("rb")
                    self._fds.append(remote)
                    offset += remote.size
                    continue
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                self._fds.append(fd)
                offset += os.fstat(fd).st_size
        except IngestError:  # an object in a store that cannot be read
            self.close()
            raise
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
            source = self._fds[seg]
            data = (source.read_at(seg_off, want) if isinstance(source, RemoteFile)
                    else os.pread(source, want, seg_off))
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
            source = self._fds.pop()
            if isinstance(source, RemoteFile):
                source.close()
            else:
                os.close(source)
