"""ZIP archives (also zip64, and OOXML/ODF/JAR/APK, which are zips): members by stdlib.

Member names are kept as the archive states them (``../`` included: nothing is ever
written to disk under a member's name). Encrypted members are listed, not opened.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import BinaryIO

from ingest.derive.base import Child, ContainerError
from ingest.location import Derivation

_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_EXTENDED_TIMESTAMP = 0x5455


class ZipReader:
    """Members of a ZIP file, in central-directory order."""

    method = "zip"
    version = "1"

    def sniff(self, head: bytes) -> bool:
        return head.startswith(_SIGNATURES)

    def children(self, stream: BinaryIO, size: int, name: str) -> Iterator[Child]:
        try:
            archive = zipfile.ZipFile(stream)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError,
                EOFError) as exc:
            raise ContainerError(f"not a readable zip archive: {exc}") from exc
        for info in archive.infolist():
            step = Derivation(self.method, self.version, inner=info.filename)
            leaf = info.filename.rstrip("/").rsplit("/", 1)[-1] or info.filename
            mtime, note = _mtime(info)
            notes = (note,) if note else ()
            if info.is_dir():
                yield Child(step, leaf, None, size=0, mtime=mtime, kind="directory",
                            notes=notes)
                continue
            encrypted = bool(info.flag_bits & 0x1)
            if encrypted:
                notes = (*notes, "encrypted")
            yield Child(step, leaf, None if encrypted else _opener(archive, info),
                        size=info.file_size, packed_size=info.compress_size, mtime=mtime,
                        notes=notes)


def _opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], BinaryIO]:
    def open_member() -> BinaryIO:
        try:
            return archive.open(info)  # type: ignore[return-value]
        except (zipfile.BadZipFile, NotImplementedError, OSError, ValueError) as exc:
            raise ContainerError(f"cannot open zip member {info.filename!r}: {exc}") from exc
    return open_member


def _mtime(info: zipfile.ZipInfo) -> tuple[str | None, str | None]:
    """UTC from the extended-timestamp field if present, else the DOS time (zone unknown)."""
    extra = info.extra
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4: pos + 4 + length]
        if tag == _EXTENDED_TIMESTAMP and len(body) >= 5 and body[0] & 1:
            seconds = struct.unpack_from("<i", body, 1)[0]
            stamp = datetime.fromtimestamp(seconds, UTC)
            return stamp.isoformat().replace("+00:00", "Z"), None
        pos += 4 + length
    try:
        stamp = datetime(*info.date_time, tzinfo=UTC)
    except ValueError:
        return None, None
    return (stamp.isoformat().replace("+00:00", "Z"),
            "mtime: zip DOS time, the zipping machine's local time (zone unknown)")
