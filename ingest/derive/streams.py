"""Read-only streams the readers hand out as a child's bytes.

Each is a small :class:`io.RawIOBase` so callers can wrap it in a buffer or read it in
chunks; none ever holds a whole member in memory. Decoder errors inside a member (a
truncated gzip, a damaged 7z block) surface as :class:`ContainerError`, the one error
the worker expects from a container, instead of a zoo of ``zlib.error``/``EOFError``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import BinaryIO

from ingest.derive import ContainerError

# What decoders raise on damaged input (lzma.LZMAError and zlib.error are OSError/Exception
# subclasses; listed by their bases so this module needs neither import).
_DECODER_ERRORS = (OSError, EOFError, ValueError, RuntimeError)


class RangeStream(io.RawIOBase):
    """Bytes ``offset .. offset+length`` of a seekable parent, read where asked.

    The parent may be shared: every read seeks it first, so two ranges of one parent can
    be read alternately (an mbox's messages, pictures found inside one file).
    """

    def __init__(self, parent: BinaryIO, offset: int, length: int) -> None:
        super().__init__()
        if offset < 0 or length < 0:
            raise ValueError("a range needs a non-negative offset and length")
        self._parent = parent
        self._offset = offset
        self._length = length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        if base + pos < 0:
            raise ValueError("negative seek position")
        self._pos = base + pos
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self._length - self._pos)
        if want <= 0:
            return 0
        self._parent.seek(self._offset + self._pos)
        data = self._parent.read(want)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


class GuardedStream(io.RawIOBase):
    """A decoding stream whose decoder errors become :class:`ContainerError`."""

    def __init__(self, inner: BinaryIO, what: str) -> None:
        super().__init__()
        self._inner = inner
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            data = self._inner.read(len(buffer))
        except _DECODER_ERRORS as exc:
            raise ContainerError(f"{self._what}: {exc}") from exc
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


class ChunkStream(io.RawIOBase):
    """A stream over an iterator of chunks, valid only while ``alive()`` says so.

    Sequential archive libraries (libarchive) can read a member's data only until the next
    member is requested; after that the stream raises instead of returning wrong bytes.
    """

    def __init__(self, chunks: Iterator[bytes], alive: Callable[[], bool], what: str) -> None:
        super().__init__()
        self._chunks = chunks
        self._alive = alive
        self._what = what
        self._pending = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._alive():
            raise ContainerError(f"{self._what}: read after the next member was requested "
                                 "(members of this container are readable in order only)")
        while not self._pending and not self._done:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                self._done = True
            except ContainerError:
                raise
            except Exception as exc:  # libarchive.ArchiveError and decoder failures
                raise ContainerError(f"{self._what}: {exc}") from exc
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count
