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

The interface (:class:`Child`, :class:`Limits`, the errors, the member streams) lives in
``base.py`` and is re-exported here; readers import it from ``base`` so that this registry,
which imports them, is no import cycle. Read each child's bytes before taking the next
child: the libarchive readers (7z, RAR, cpio, ISO 9660) serve a member only until then.
``pictures.py`` is not in the registry: it finds pictures at any offset of any stream
(:class:`~ingest.derive.pictures.EmbeddedPictureScanner`) and is driven separately, on the
chunks the worker already reads.
"""

from __future__ import annotations

from functools import cache

from ingest.derive.base import (
    RATIO_FLOOR,
    SNIFF_BYTES,
    Child,
    ChunkStream,
    ContainerError,
    ContainerReader,
    GuardedStream,
    LimitExceeded,
    Limits,
    RangeStream,
)

__all__ = ["RATIO_FLOOR", "SNIFF_BYTES", "Child", "ChunkStream", "ContainerError",
           "ContainerReader", "GuardedStream", "LimitExceeded", "Limits", "RangeStream",
           "container_reader", "readers"]


@cache
def readers() -> tuple[ContainerReader, ...]:
    """Every container reader, most specific first (imported on first use)."""
    from ingest.derive.archive import CpioReader, IsoReader, RarReader, SevenZipReader
    from ingest.derive.compressed import Bzip2Reader, GzipReader, LzmaReader, XzReader
    from ingest.derive.mail import EmailReader, MboxReader
    from ingest.derive.ole import OleReader
    from ingest.derive.pdf import PdfImageReader
    from ingest.derive.tar import TarReader
    from ingest.derive.zip import ZipReader

    # Fixed magic numbers at offset 0 first; then tar (a checksum at 148, or "ustar" at
    # 257), ISO 9660 (32 KiB in), PDF (%PDF- within 1 KiB), the text formats (mbox, e-mail
    # headers) and raw LZMA (no magic at all) last, so a stronger claim always wins.
    return (ZipReader(), SevenZipReader(), RarReader(), OleReader(), GzipReader(),
            Bzip2Reader(), XzReader(), CpioReader(), TarReader(), IsoReader(), PdfImageReader(),
            MboxReader(), EmailReader(), LzmaReader())


def container_reader(head: bytes) -> ContainerReader | None:
    """The reader that recognises a stream by its first bytes, if any."""
    for reader in readers():
        if reader.sniff(head):
            return reader
    return None
