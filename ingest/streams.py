"""Read-only, seekable byte streams served from an offset-addressed source.

Containers (zip, OLE, pictures inside files) need random access to a file's content;
the content comes from TSK's ``read_random``, from a parent stream's byte range or from
an OLE sector chain. One base class gives them the file-object protocol — and no write
method, so nothing handed one of these can write to the evidence.
"""

from __future__ import annotations

import io
from typing import Any


class RandomAccessStream(io.RawIOBase):
    """``size`` bytes read where asked through :meth:`read_at` (a subclass's one method)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size
        self._pos = 0

    def read_at(self, offset: int, length: int) -> bytes:
        """At least one and at most ``length`` bytes from ``offset`` (never past the end)."""
        raise NotImplementedError

    def get_size(self) -> int:
        """The libyal libraries' file-object protocol asks for the size this way."""
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        data = self.read_at(self._pos, want)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)
