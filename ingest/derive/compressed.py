"""Single-stream compressors: gzip, bzip2, xz and raw LZMA ("alone"), by stdlib.

Each yields exactly one child, the decompressed stream; a tar inside arrives as that
child and is found by the tar reader on the next round. The child's size is unknown
until read (gzip's ISIZE is modulo 4 GiB and describes only the last member), so it is
``None``; ``packed_size`` is the parent's size. The child's ``inner`` is ``None``: the
method alone says how its bytes are derived, whatever name the header stores.

Raw LZMA has only a 13-byte header and no magic, so it is sniffed strictly: properties
byte 0x5D (the ``lzma``/7-Zip default lc=3 lp=0 pb=2), a dictionary size of 2^n or
2^n + 2^(n-1) between 4 KiB and 1.5 GiB, a stated size that is "unknown" or below 2^48,
and the head must decompress without error. Files written with other properties are not
recognised (a reader that guessed on any 13 bytes would claim random data).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import BinaryIO

from ingest.derive.base import Child, GuardedStream
from ingest.location import Derivation

_GZIP_FNAME = 0x08
_GZIP_RESERVED = 0xE0
_NAME_LIMIT = 1024  # bytes of a gzip FNAME we read before giving up on it


def _stem(name: str, suffixes: tuple[str, ...]) -> str:
    lower = name.lower()
    for suffix in suffixes:
        if lower.endswith(suffix) and len(name) > len(suffix):
            stem = name[: -len(suffix)]
            return stem + ".tar" if suffix.startswith(".t") and suffix != ".tar" else stem
    return "decompressed"


class _SingleStream:
    """Shared shape: one child whose ``open`` decompresses the whole parent."""

    method = ""
    version = "1"
    suffixes: tuple[str, ...] = ()

    def _decoder(self, stream: BinaryIO) -> BinaryIO:
        raise NotImplementedError

    def _header(self, stream: BinaryIO) -> tuple[str | None, str | None]:
        """The stored name and mtime, where the format keeps them."""
        return None, None

    def children(self, stream: BinaryIO, size: int, name: str) -> Iterator[Child]:
        stored_name, mtime = self._header(stream)
        leaf = stored_name or _stem(name, self.suffixes)
        notes = ("name from the gzip header",) if stored_name else ()
        yield Child(Derivation(self.method, self.version), leaf, self._opener(stream),
                    size=None, packed_size=size, mtime=mtime, notes=notes)

    def _opener(self, stream: BinaryIO) -> Callable[[], BinaryIO]:
        def open_decompressed() -> BinaryIO:
            stream.seek(0)
            return GuardedStream(self._decoder(stream), self.method)  # type: ignore[return-value]
        return open_decompressed


class GzipReader(_SingleStream):
    """gzip (RFC 1952), several members concatenated included."""

    method = "gzip"
    suffixes = (".tgz", ".gz", ".z")

    def sniff(self, head: bytes) -> bool:
        return (len(head) >= 10 and head[:3] == b"\x1f\x8b\x08"
                and not head[3] & _GZIP_RESERVED)

    def _decoder(self, stream: BinaryIO) -> BinaryIO:
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]

    def _header(self, stream: BinaryIO) -> tuple[str | None, str | None]:
        stream.seek(0)
        head = stream.read(10 + 2 + 65535 + _NAME_LIMIT)
        flags, stamp = head[3], struct.unpack_from("<I", head, 4)[0]
        mtime = (datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")
                 if stamp else None)
        if not flags & _GZIP_FNAME:
            return None, mtime
        pos = 10
        if flags & 0x04:  # FEXTRA precedes FNAME
            if len(head) < 12:
                return None, mtime
            pos += 2 + struct.unpack_from("<H", head, 10)[0]
        end = head.find(b"\0", pos, pos + _NAME_LIMIT)
        if end <= pos:
            return None, mtime
        raw = head[pos:end].decode("latin-1")  # RFC 1952: ISO 8859-1
        leaf = raw.replace("\\", "/").rsplit("/", 1)[-1]
        return leaf or None, mtime


class Bzip2Reader(_SingleStream):
    """bzip2, several streams concatenated included."""

    method = "bzip2"
    suffixes = (".tbz2", ".tbz", ".bz2")

    def sniff(self, head: bytes) -> bool:
        return (len(head) >= 10 and head[:3] == b"BZh" and 0x31 <= head[3] <= 0x39
                and head[4:10] in (b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90"))

    def _decoder(self, stream: BinaryIO) -> BinaryIO:
        return bz2.BZ2File(stream, mode="rb")  # type: ignore[return-value]


class XzReader(_SingleStream):
    """xz (the .xz container of LZMA2)."""

    method = "xz"
    suffixes = (".txz", ".xz")

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"\xfd7zXZ\x00")

    def _decoder(self, stream: BinaryIO) -> BinaryIO:
        return lzma.LZMAFile(stream, mode="rb", format=lzma.FORMAT_XZ)  # type: ignore[return-value]


class LzmaReader(_SingleStream):
    """Raw LZMA ("lzma alone", ``.lzma``), recognised strictly (see the module docstring)."""

    method = "lzma"
    suffixes = (".tlz", ".lzma")

    def sniff(self, head: bytes) -> bool:
        if len(head) < 14 or head[0] != 0x5D:
            return False
        dictionary, stated = struct.unpack_from("<IQ", head, 1)
        if not any(dictionary in (1 << n, (1 << n) + (1 << (n - 1))) for n in range(12, 31)):
            return False
        if stated != 0xFFFF_FFFF_FFFF_FFFF and stated >= 1 << 48:
            return False
        try:
            lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(head, max_length=4096)
        except lzma.LZMAError:
            return False
        return True

    def _decoder(self, stream: BinaryIO) -> BinaryIO:
        return lzma.LZMAFile(stream, mode="rb", format=lzma.FORMAT_ALONE)  # type: ignore[return-value]
