"""Plain tar archives (ustar, pax, GNU, old v7), members by stdlib ``tarfile``.

Compressed tars arrive here as the child of the gzip/bzip2/xz reader. Headers are read
one at a time as the caller asks for the next member, and a member's data is read from
its offset in the (seekable) parent, so members may be opened in any order. Only regular
files are opened; links, devices, FIFOs are listed with a note saying what they are.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import BinaryIO

from ingest.derive.base import Child, ContainerError, GuardedStream
from ingest.location import Derivation

_BLOCK = 512


def _v7_header(block: bytes) -> bool:
    """An old-style header: a name, octal numeric fields and a matching checksum."""
    if len(block) < _BLOCK or block[0] == 0:
        return False
    field = block[148:156].replace(b"\0", b" ").strip()
    if not field or any(c not in b"01234567" for c in field):
        return False
    stated = int(field, 8)
    unsigned = sum(block[:148]) + 8 * 0x20 + sum(block[156:_BLOCK])
    signed = unsigned - sum(256 for b in block[:148] + block[156:_BLOCK] if b > 127)
    if stated not in (unsigned, signed):
        return False
    numbers = (block[100:108], block[108:116], block[116:124], block[124:136],
               block[136:148])
    return all(all(c in b"01234567 \0" for c in number) for number in numbers)


class TarReader:
    """Members of a tar archive, in archive order."""

    method = "tar"
    version = "1"

    def sniff(self, head: bytes) -> bool:
        if head[257:262] == b"ustar":
            return True
        return _v7_header(head[:_BLOCK])

    def children(self, stream: BinaryIO, size: int, name: str) -> Iterator[Child]:
        stream.seek(0)
        try:
            archive = tarfile.open(fileobj=stream, mode="r:")  # noqa: SIM115 (lives with the generator)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ContainerError(f"not a readable tar archive: {exc}") from exc
        while True:
            try:
                info = archive.next()
            except (tarfile.TarError, OSError, EOFError, UnicodeError) as exc:
                raise ContainerError(f"tar header at offset {archive.offset}: {exc}") from exc
            if info is None:
                break
            archive.members.clear()  # keep memory flat on huge archives
            yield self._child(archive, info)
        _check_end(stream, archive.offset, size)

    def _child(self, archive: tarfile.TarFile, info: tarfile.TarInfo) -> Child:
        step = Derivation(self.method, self.version, inner=info.name)
        leaf = info.name.rstrip("/").rsplit("/", 1)[-1] or info.name
        mtime = _iso(info.mtime)
        if info.isdir():
            return Child(step, leaf, None, size=0, mtime=mtime, kind="directory")
        if info.isreg():
            notes = ("sparse",) if info.issparse() else ()
            return Child(step, leaf, _opener(archive, info), size=info.size, mtime=mtime,
                         notes=notes)
        return Child(step, leaf, None, size=0, mtime=mtime, notes=_special(info))


def _special(info: tarfile.TarInfo) -> tuple[str, ...]:
    if info.issym():
        return ("symlink", f"link -> {info.linkname}")
    if info.islnk():
        return ("hardlink", f"link -> {info.linkname}")
    if info.ischr():
        return (f"character device {info.devmajor},{info.devminor}",)
    if info.isblk():
        return (f"block device {info.devmajor},{info.devminor}",)
    if info.isfifo():
        return ("fifo",)
    return (f"tar entry type {info.type!r}",)


def _opener(archive: tarfile.TarFile, info: tarfile.TarInfo) -> Callable[[], BinaryIO]:
    def open_member() -> BinaryIO:
        try:
            member = archive.extractfile(info)
        except (tarfile.TarError, OSError) as exc:
            raise ContainerError(f"cannot open tar member {info.name!r}: {exc}") from exc
        if member is None:
            raise ContainerError(f"tar member {info.name!r} has no data")
        return GuardedStream(member, f"tar member {info.name!r}")  # type: ignore[arg-type,return-value]
    return open_member


def _check_end(stream: BinaryIO, offset: int, size: int) -> None:
    """tarfile stops quietly at a damaged header past the first: say so instead."""
    if offset >= size:
        return
    stream.seek(offset)
    block = stream.read(_BLOCK)
    if block.strip(b"\0"):
        raise ContainerError(f"tar: unreadable header at offset {offset}; "
                             f"{size - offset} bytes after it were not read")


def _iso(seconds: float) -> str | None:
    try:
        stamp = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return stamp.isoformat().replace("+00:00", "Z")
