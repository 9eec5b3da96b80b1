"""What the carver recognises at a block start: pictures, videos, and other headers.

Pictures are walked by :mod:`ingest.derive.picture_ends` (one walker per format for the
whole product). Videos are walked here by their container structure: ISO-BMFF/QuickTime
(MP4, MOV, 3GP, M4V) by top-level boxes, AVI by its RIFF size; a video counts when its
structure is complete (``moov`` and ``mdat`` present), as decoding video is not ours.
Other formats are only named by their headers, for the report (``--carve all``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from ingest.derive.picture_ends import HEIF_BRANDS, MAX_STEPS, ReadAt

MAX_VIDEO = 1 << 30  # bytes: a longer video is recorded as partial (the lookahead's size)

# Top-level boxes of an MP4/MOV file; any other type ends the walk.
_VIDEO_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid",
                          b"udta", b"meta", b"pdin", b"moof", b"mfra", b"sidx", b"styp",
                          b"pnot", b"junk", b"prfl", b"Xtra"})


def video_brand_ok(head: bytes) -> bool:
    """An ``ftyp`` box of a video brand (not a HEIF still, which the picture walk takes)."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return False
    size = struct.unpack_from(">I", head)[0]
    brand = head[8:12]
    return 16 <= size <= 4096 and brand not in HEIF_BRANDS and (
        brand.isalnum() or brand.rstrip(b" ").isalnum())


def mp4_end(read_at: ReadAt, offset: int, limit: int) -> int | None:
    """MP4/MOV: top-level boxes from ``ftyp`` while their types are known; needs moov+mdat."""
    limit = min(limit, offset + MAX_VIDEO)
    if not video_brand_ok(read_at(offset, 12)):
        return None
    pos = offset
    seen: set[bytes] = set()
    for _ in range(MAX_STEPS):
        box = read_at(pos, 16)
        if len(box) < 8:
            break
        size, kind = struct.unpack_from(">I4s", box)
        if kind not in _VIDEO_BOXES or (kind == b"ftyp" and pos != offset):
            break
        if size == 1:
            if len(box) < 16:
                return None
            size = struct.unpack_from(">Q", box, 8)[0]
        elif size == 0:
            size = limit - pos
        if size < 8 or pos + size > limit:
            return None  # a box cut short: truncated (or longer than MAX_VIDEO)
        seen.add(kind)
        pos += size
    if not {b"moov", b"mdat"} <= seen:
        return None
    return pos


def avi_end(read_at: ReadAt, offset: int, limit: int) -> int | None:
    """AVI: the RIFF size, when the first list is the ``hdrl`` header list."""
    head = read_at(offset, 24)
    if len(head) < 24 or head[:4] != b"RIFF" or head[8:12] != b"AVI " \
            or head[12:16] != b"LIST" or head[20:24] != b"hdrl":
        return None
    size = struct.unpack_from("<I", head, 4)[0]
    end = offset + 8 + size + (size & 1)
    if size < 16 or end > limit or end - offset > MAX_VIDEO:
        return None
    return end


VIDEO_ENDS: dict[str, Callable[[ReadAt, int, int], int | None]] = {
    "mp4": mp4_end, "avi": avi_end,
}
VIDEO_EXTENSIONS = {"mp4": "mp4", "avi": "avi"}

# Headers named in the report only (``--carve all``): (name, signature, offset in block).
OTHER_HEADERS: tuple[tuple[str, bytes, int], ...] = (
    ("pdf", b"%PDF-", 0),
    ("zip", b"PK\x03\x04", 0),
    ("ole", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0),
    ("sqlite", b"SQLite format 3\x00", 0),
    ("rar", b"Rar!\x1a\x07", 0),
    ("7z", b"7z\xbc\xaf\x27\x1c", 0),
    ("gzip", b"\x1f\x8b\x08", 0),
    ("matroska", b"\x1a\x45\xdf\xa3", 0),
    ("tiff", b"II*\x00", 0),
    ("tiff", b"MM\x00*", 0),
    ("mp3", b"ID3", 0),
    ("wav", b"WAVE", 8),
    ("pe", b"MZ", 0),
    ("elf", b"\x7fELF", 0),
    ("mbox", b"From ", 0),
    ("xml", b"<?xml", 0),
)
