"""OLE compound files (.doc, .xls, .ppt, .msg, Thumbs.db...): every stream, by olefile.

Each stream is a child (``inner`` = its storage path joined with ``/``, names as stored,
control characters such as ``\\x01`` included); storages are listed as directories. Two
kinds of stream are unwrapped because their useful content is a file with its own name:

- ``\\x01Ole10Native`` (an embedded "Package" object, MS-OLEDS 2.3.6): the child is the
  embedded file itself, named as the object's label says;
- in an Outlook ``.msg``, an attachment's data stream (``__substg1.0_37010102``) is named
  after its attachment's long file name.

olefile reads a whole stream into memory when asked; this reader follows the sector chain
itself for streams stored in the big-sector FAT, so a member is read block by block. Small
streams (below the 4 KiB mini-stream cutoff) are read through olefile.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

import olefile

from ingest.derive.base import Child, ContainerError, RangeStream
from ingest.location import Derivation
from ingest.streams import RandomAccessStream

_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_OLE10_NATIVE = "\x01Ole10Native"
_MSG_ATTACH_DATA = "__substg1.0_37010102"
_MSG_NAMES = ("__substg1.0_3707001F", "__substg1.0_3704001F")  # long, short file name
_MAX_SECTOR = 0xFFFFFFFA  # FAT values from here on are markers, not sectors
_NAME_LIMIT = 4096
# What olefile and struct raise on damaged compound files (olefile's own errors are OSError).
_ERRORS = (OSError, ValueError, struct.error, IndexError, KeyError, TypeError, OverflowError,
           AttributeError, RecursionError)


class _ChainStream(RandomAccessStream):
    """A stream's bytes along its FAT sector chain, read where asked (seekable)."""

    def __init__(self, ole: Any, start: int, size: int, what: str) -> None:
        super().__init__(size)
        self._fp = ole.fp
        self._sector = ole.sectorsize
        self._what = what
        self._chain = array("I")
        fat = ole.fat
        needed = -(-size // self._sector)
        sector = start
        while len(self._chain) < needed:
            if sector >= _MAX_SECTOR or sector >= len(fat) or len(self._chain) > len(fat):
                break  # a broken or looping chain: reads past here raise
            self._chain.append(sector)
            sector = fat[sector]

    def read_at(self, offset: int, length: int) -> bytes:
        index, within = divmod(offset, self._sector)
        if index >= len(self._chain):
            raise ContainerError(f"{self._what}: sector chain ends at byte {offset}")
        self._fp.seek((self._chain[index] + 1) * self._sector + within)
        data = self._fp.read(min(length, self._sector - within))
        if not data:
            raise ContainerError(f"{self._what}: sector beyond the end of the file")
        return data


class OleReader:
    """Streams and embedded objects of an OLE2 compound file."""

    method = "ole"
    version = "1"

    def sniff(self, head: bytes) -> bool:
        return head.startswith(_SIGNATURE)

    def children(self, stream: BinaryIO, size: int, name: str) -> Iterator[Child]:
        stream.seek(0)
        try:
            ole = olefile.OleFileIO(stream)
            paths = ole.listdir(streams=True, storages=True)
        except _ERRORS as exc:
            raise ContainerError(f"not a readable OLE compound file: {exc}") from exc
        for parts in paths:
            inner = "/".join(parts)
            try:
                yield self._child(ole, parts, inner)
            except _ERRORS as exc:
                raise ContainerError(f"ole stream {inner!r}: {exc}") from exc

    def _child(self, ole: Any, parts: list[str], inner: str) -> Child:
        step = Derivation(self.method, self.version, inner=inner)
        entry = ole.direntries[ole._find(parts)]
        try:
            mtime = _iso(ole.getmtime(parts))
        except (OverflowError, ValueError, OSError):
            mtime = None  # a FILETIME outside what datetime holds
        if entry.entry_type != olefile.STGTY_STREAM:
            return Child(step, parts[-1], None, size=0, mtime=mtime, kind="directory")
        if parts[-1] == _OLE10_NATIVE:
            native = _ole10_native(_open_stream(ole, parts, entry), entry.size)
            if native is not None:
                label, start, length = native
                return Child(step, label, _sub_opener(ole, parts, entry, start, length),
                             size=length, mtime=mtime,
                             notes=("embedded object (Ole10Native package)",))
        leaf = parts[-1]
        if leaf == _MSG_ATTACH_DATA and len(parts) >= 2:
            leaf = _msg_attachment_name(ole, parts[:-1]) or leaf
        return Child(step, leaf, _sub_opener(ole, parts, entry, 0, entry.size),
                     size=entry.size, mtime=mtime)


def _open_stream(ole: Any, parts: list[str], entry: Any) -> BinaryIO:
    if entry.size < ole.minisectorcutoff:
        return ole.openstream(parts)  # small: olefile reads it from the mini stream
    return _ChainStream(ole, entry.isectStart, entry.size,  # type: ignore[return-value]
                        "ole stream " + "/".join(parts))


def _sub_opener(ole: Any, parts: list[str], entry: Any, start: int,
                length: int) -> Callable[[], BinaryIO]:
    def open_stream() -> BinaryIO:
        try:
            whole = _open_stream(ole, parts, entry)
        except _ERRORS as exc:
            raise ContainerError(f"ole stream {'/'.join(parts)!r}: {exc}") from exc
        if start == 0 and length == entry.size:
            return whole
        return RangeStream(whole, start, length)  # type: ignore[return-value]
    return open_stream


def _ole10_native(stream: BinaryIO, size: int) -> tuple[str, int, int] | None:
    """(label, data offset, data length) of an Ole10Native package, or None if it is not one.

    Layout: u32 total size, u16 flags, label\\0, source path\\0, u32 (0x00030000),
    u32 temp path length, temp path, u32 data length, data — all ANSI.
    """
    head = stream.read(3 * _NAME_LIMIT + 32)
    try:
        pos = 6
        strings = []
        for _ in range(2):
            end = head.index(b"\0", pos, pos + _NAME_LIMIT)
            strings.append(head[pos:end].decode("cp1252", "replace"))
            pos = end + 1
        _, temp_length = struct.unpack_from("<II", head, pos)
        pos += 8 + temp_length
        (length,) = struct.unpack_from("<I", head, pos)
        pos += 4
    except (ValueError, struct.error):
        return None
    if pos + length > size or temp_length > _NAME_LIMIT:
        return None
    label = (strings[0] or strings[1]).replace("\\", "/").rsplit("/", 1)[-1] or "ole10native"
    return label, pos, length


def _msg_attachment_name(ole: Any, storage: list[str]) -> str | None:
    for stream_name in _MSG_NAMES:
        path = [*storage, stream_name]
        if ole.exists(path):
            raw = ole.openstream(path).read(_NAME_LIMIT)
            return raw.decode("utf-16-le", "replace").rstrip("\0") or None
    return None


def _iso(stamp: datetime | None) -> str | None:
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)  # OLE FILETIMEs are UTC
    return stamp.astimezone(UTC).isoformat().replace("+00:00", "Z")
