"""The container-reader interface (what a reader yields and raises) and its streams.

Kept apart from the package's ``__init__`` so readers import it without importing the
registry that imports them (no import cycle). ``ingest.derive`` re-exports every name.

The streams are small :class:`io.RawIOBase` classes the readers hand out as a child's
bytes; none holds a whole member in memory. Decoder errors inside a member (a truncated
gzip, a damaged 7z block) surface as :class:`ContainerError`, the one error the worker
expects from a container, instead of a zoo of ``zlib.error``/``EOFError``.
"""

from __future__ import annotations

import io
import lzma
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from ingest.errors import IngestError
from ingest.location import Derivation
from ingest.streams import RandomAccessStream

SNIFF_BYTES = 64 * 1024  # how much of a stream's head the readers' ``sniff`` gets


class ContainerError(IngestError):
    """A container that cannot be read (further); what was read before still counts."""


class LimitExceeded(ContainerError):
    """A configured limit stopped the expansion; ``limit`` names it (e.g. ``depth``)."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Limits:
    """What one expansion may cost; every limit hit is recorded on the container.

    Defaults suit a seized laptop: deep enough for backup-in-archive-in-mail, wide enough
    for a photo archive, and small enough that a zip bomb costs seconds, not the disk.
    """

    depth: int = 8  # derivation steps below a filesystem entry
    members: int = 10_000  # children taken from one container
    container_bytes: int = 4 << 30  # bytes copied out of one container, all members
    member_bytes: int = 2 << 30  # bytes of one member (a larger one is cut and noted)
    ratio: float = 100.0  # bytes out per byte in, past RATIO_FLOOR (decompression bombs)
    seconds: float = 120.0  # time for one container's members, analysis included
    case_bytes: int = 64 << 30  # bytes copied out of all containers of one case
    scan_bytes: int = 256 << 20  # bytes of one stream searched for pictures inside (0: off)

    def to_dict(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


RATIO_FLOOR = 16 << 20  # below this many bytes out, no ratio is a bomb


@dataclass(frozen=True, slots=True)
class Child:
    """One member of a container, as the container describes it.

    Read a child's bytes before asking the reader's generator for the next child: the
    libarchive readers (7z, RAR, cpio, ISO 9660) can serve ``open`` only until then (a
    later read raises :class:`ContainerError`); the other readers allow any order.
    """

    step: Derivation  # how it is derived from its parent (method, version, inner/range)
    name: str  # last component of its name in the container (for display and extension)
    open: Callable[[], BinaryIO] | None  # its bytes as a stream; None: cannot be read
    size: int | None = None  # as the container states it (None: unknown until read)
    packed_size: int | None = None  # its compressed size, where the container says
    mtime: str | None = None  # ISO 8601 UTC, as the container records it
    kind: str = "file"  # "file" or "directory" (directories are listed, not opened)
    notes: tuple[str, ...] = field(default=())  # e.g. "encrypted", "truncated"


class ContainerReader(Protocol):
    """One container family: recognise it, list its members."""

    method: str  # the derivation method it records (e.g. "zip")
    version: str  # bump when what it yields for the same bytes changes

    def sniff(self, head: bytes) -> bool:
        """Whether a stream starting with ``head`` is this reader's container."""

    def children(self, stream: BinaryIO, size: int, name: str) -> Iterator[Child]:
        """The members, in the container's order; ``stream`` is seekable and read-only."""

# What decoders raise on damaged input (gzip, bz2, lzma, zlib, tarfile's member streams).
_DECODER_ERRORS = (OSError, EOFError, ValueError, RuntimeError, lzma.LZMAError, zlib.error,
                   tarfile.TarError)


class RangeStream(RandomAccessStream):
    """Bytes ``offset .. offset+length`` of a seekable parent, read where asked.

    The parent may be shared: every read seeks it first, so two ranges of one parent can
    be read alternately (an mbox's messages, pictures found inside one file).
    """

    def __init__(self, parent: BinaryIO, offset: int, length: int) -> None:
        if offset < 0 or length < 0:
            raise ValueError("a range needs a non-negative offset and length")
        super().__init__(length)
        self._parent = parent
        self._offset = offset

    def read_at(self, offset: int, length: int) -> bytes:
        self._parent.seek(self._offset + offset)
        return self._parent.read(length)


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
                                 "or the archive was closed "
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
