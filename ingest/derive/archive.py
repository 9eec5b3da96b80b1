"""7z, RAR (v4 and v5), cpio (all variants) and ISO 9660, through libarchive.

libarchive reads an archive front to back: **a member's bytes can be read only until the
next member is asked for.** So ``children`` is a generator holding the archive open, and
each child's ``open`` returns a stream that is valid only until the caller takes the next
child from the generator; a read after that raises :class:`ContainerError` (never returns
wrong bytes). Consume each child before asking for the next (the worker does).

libarchive gets the parent through read and seek callbacks, so an archive is never
loaded into memory and a member's data is decoded block by block as it is read. A member
whose data is encrypted is listed with the note ``encrypted`` and no opener; an archive
whose headers are encrypted (7z ``-mhe``) cannot be listed and raises ContainerError.

libarchive does not state a member's packed size. For the compressing formats (7z, RAR)
``packed_size`` is therefore the whole archive's size — an upper bound that still lets the
worker's ratio limit catch a bomb (a member a hundred times larger than its archive);
cpio and ISO 9660 store members as they are and leave it ``None``.
"""

from __future__ import annotations

import ctypes
import logging
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, BinaryIO

import libarchive
import libarchive.ffi
from libarchive.exception import ArchiveError

from ingest.derive.base import Child, ChunkStream, ContainerError
from ingest.location import Derivation

_BLOCK = 64 * 1024
_FATAL = -30  # ARCHIVE_FATAL: what a read callback returns when the parent fails
_ISO_SECTOR = 2048


class _Warnings(logging.Handler):
    """libarchive-c logs libarchive's ARCHIVE_WARN results (a bad CRC, skipped bytes) instead
    of raising them — and after a warning from ``read_data`` its block iterator even yields
    a wrong slice of its buffer. So warnings are collected, per thread, around each call
    into libarchive and turned into notes (headers) or ContainerError (data)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        bucket = getattr(self._local, "bucket", None)
        if bucket is not None:
            bucket.append(record.getMessage())

    def call(self, function: Callable[[], Any]) -> tuple[Any, list[str]]:
        """``function()`` and the warnings libarchive logged while it ran."""
        self._local.bucket = bucket = []
        try:
            return function(), bucket
        finally:
            self._local.bucket = None


_WARNINGS = _Warnings()
_LOGGER = logging.getLogger("libarchive")
_LOGGER.addHandler(_WARNINGS)
_LOGGER.propagate = False  # surfaced as notes and errors instead of stray log lines


def _checked(blocks: Iterator[bytes], what: str) -> Iterator[bytes]:
    """A member's blocks; a warning while reading one (e.g. a bad CRC) is an error."""
    while True:
        try:
            block, warnings = _WARNINGS.call(lambda: next(blocks))
        except StopIteration:
            return
        if warnings:
            raise ContainerError(f"{what}: {'; '.join(warnings)}")
        yield block


def _entry_flag(name: str) -> Callable[[Any], bool]:
    """An ``archive_entry_is_*_encrypted`` check (libarchive ≥ 3.2), else always False."""
    function = getattr(libarchive.ffi.libarchive, name, None)
    if function is None:
        return lambda entry: False
    function.argtypes = [ctypes.c_void_p]
    function.restype = ctypes.c_int
    return lambda entry: function(entry._entry_p) > 0


_data_encrypted = _entry_flag("archive_entry_is_data_encrypted")


class _LibarchiveReader:
    """Shared walk; subclasses say which signature they recognise and what they record."""

    method = ""
    version = "1"
    compresses = False  # whether packed_size is given (as the archive's size, see above)

    def sniff(self, head: bytes) -> bool:
        raise NotImplementedError

    def children(self, stream: BinaryIO, size: int, name: str) -> Iterator[Child]:
        buffer = ctypes.create_string_buffer(_BLOCK)
        address = ctypes.cast(buffer, ctypes.c_void_p).value

        # An exception must not escape a ctypes callback (it would be printed and read as
        # "end of data"): any failure of the parent stream is libarchive's ARCHIVE_FATAL,
        # and the failure itself is kept to name the cause in the ContainerError.
        failures: list[BaseException] = []

        def read(archive_p: int, context: int, pointer: int) -> int:
            try:
                data = stream.read(_BLOCK)
            except Exception as exc:
                failures.append(exc)
                return _FATAL
            ctypes.memmove(buffer, data, len(data))
            ctypes.cast(pointer, ctypes.POINTER(ctypes.c_void_p))[0] = address
            return len(data)

        def seek(archive_p: int, context: int, offset: int, whence: int) -> int:
            try:
                return stream.seek(offset, whence)
            except Exception as exc:
                failures.append(exc)
                return _FATAL

        stream.seek(0)
        live = [0]  # the index of the child whose stream may still be read
        try:
            yield from self._walk(read, seek, live, size)
        except ContainerError as exc:
            if failures:
                raise ContainerError(f"{exc} (reading the container: {failures[0]})") from \
                    failures[0]
            raise
        finally:
            live[0] = -1  # the archive is freed: no member stream may touch it (use after free)

    def _walk(self, read: Callable[..., int], seek: Callable[..., int], live: list[int],
              size: int) -> Iterator[Child]:
        try:
            with libarchive.custom_reader(read, seek_func=seek, block_size=_BLOCK) as archive:
                entries = iter(archive)
                index = 0
                while True:
                    live[0] = 0
                    try:
                        entry, warnings = _WARNINGS.call(lambda: next(entries))
                    except StopIteration:
                        break
                    index += 1
                    live[0] = index
                    child = self._child(entry, index, live, size if self.compresses else None)
                    if warnings:
                        child = replace(child, notes=(*child.notes, *(
                            f"libarchive: {message}" for message in warnings)))
                    yield child
        except ArchiveError as exc:
            raise ContainerError(f"{self.method}: {exc.msg}") from exc

    def _child(self, entry: Any, index: int, live: list[int], packed: int | None) -> Child:
        path = _text(entry.pathname or f"member-{index}")
        step = Derivation(self.method, self.version, inner=path)
        leaf = path.rstrip("/").rsplit("/", 1)[-1] or path
        mtime = _iso(entry.mtime)
        if entry.isdir:
            return Child(step, leaf, None, size=0, mtime=mtime, kind="directory")
        if entry.issym:
            return Child(step, leaf, None, size=0, mtime=mtime,
                         notes=("symlink", f"link -> {_text(entry.linkpath)}"))
        if entry.islnk:
            return Child(step, leaf, None, size=0, mtime=mtime,
                         notes=("hardlink", f"link -> {_text(entry.linkpath)}"))
        if not entry.isreg:
            return Child(step, leaf, None, size=0, mtime=mtime,
                         notes=(f"special file, mode {_text(entry.strmode)}",))
        if _data_encrypted(entry):
            return Child(step, leaf, None, size=entry.size, packed_size=packed, mtime=mtime,
                         notes=("encrypted",))

        def open_member() -> BinaryIO:
            if live[0] != index:
                raise ContainerError(f"{self.method} member {path!r}: opened after the next "
                                     "member was requested (sequential archive)")
            what = f"{self.method} member {path!r}"
            return ChunkStream(_checked(entry.get_blocks(_BLOCK), what),  # type: ignore[return-value]
                               lambda: live[0] == index, what)

        return Child(step, leaf, open_member, size=entry.size, packed_size=packed, mtime=mtime)


def _text(value: str | bytes | None) -> str:
    """libarchive-c gives bytes where a name is not valid in the header's codec."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value or ""


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    try:
        value = datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return value.isoformat().replace("+00:00", "Z")


class SevenZipReader(_LibarchiveReader):
    """7-Zip archives."""

    method = "7z"
    compresses = True

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"7z\xbc\xaf\x27\x1c")


class RarReader(_LibarchiveReader):
    """RAR archives, format 4 (``Rar!\\x1a\\x07\\x00``) and 5 (``Rar!\\x1a\\x07\\x01\\x00``)."""

    method = "rar"
    compresses = True

    def sniff(self, head: bytes) -> bool:
        return head.startswith((b"Rar!\x1a\x07\x00", b"Rar!\x1a\x07\x01\x00"))


class CpioReader(_LibarchiveReader):
    """cpio archives: binary (either byte order), odc (070707), newc (070701), crc (070702)."""

    method = "cpio"

    def sniff(self, head: bytes) -> bool:
        if head.startswith((b"070707", b"070701", b"070702")):
            return True
        for order, magic in (("<", b"\xc7\x71"), (">", b"\x71\xc7")):
            if head.startswith(magic) and len(head) >= 28:
                # old binary header: 13 shorts; the name (namesize bytes) ends with NUL
                namesize = struct.unpack_from(order + "H", head, 20)[0]
                if 1 < namesize <= 4096 and head[26 + namesize - 1: 26 + namesize] == b"\0":
                    return True
        return False


class IsoReader(_LibarchiveReader):
    """ISO 9660 images (with Rock Ridge and Joliet names where present)."""

    method = "iso9660"

    def sniff(self, head: bytes) -> bool:
        # A volume descriptor ("\x01CD001" primary, or another type) in sector 16 onwards.
        start = 16 * _ISO_SECTOR
        return head[start + 1: start + 6] == b"CD001"

