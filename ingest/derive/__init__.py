"""Evidence inside a file's content: archive members, attachments, embedded pictures.

A *container reader* (one module per family here) recognises its format from the first
bytes of a stream — never from the file name — and yields :class:`Child` records, one per
member, each able to open the member's bytes as a stream. It reads from a seekable,
read-only file object and never writes; the worker that drives it (``pipeline.run``)
copies each child out under :class:`Limits`, analyses it like any file, and offers it to
the readers again, so a zip inside a tar.gz inside a zip is found to the depth allowed.

Readers say what they could not do instead of failing silently: an encrypted member is a
child without an opener and with the note ``encrypted``; a damaged container raises
:class:`ContainerError` after yielding what it could read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import BinaryIO, Protocol

from ingest.errors import IngestError
from ingest.location import Derivation

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

    def to_dict(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


RATIO_FLOOR = 16 << 20  # below this many bytes out, no ratio is a bomb


@dataclass(frozen=True, slots=True)
class Child:
    """One member of a container, as the container describes it."""

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


@cache
def readers() -> tuple[ContainerReader, ...]:
    """Every container reader, most specific first (imported on first use)."""
    from ingest.derive.zip import ZipReader

    return (ZipReader(),)


def container_reader(head: bytes) -> ContainerReader | None:
    """The reader that recognises a stream by its first bytes, if any."""
    for reader in readers():
        if reader.sniff(head):
            return reader
    return None
