"""Where a picture that starts at an offset really ends, by walking its structure.

One ``end_of(read_at, offset, limit)`` per kind: ``read_at(position, size)`` returns the
parent's bytes there (fewer at its end), ``offset`` is where the picture's signature
starts, ``limit`` is the parent's size. The result is the absolute offset just past the
picture, or ``None`` if the bytes are not a complete picture of that kind (truncated,
damaged, or a signature that occurred by chance).

Every walk is bounded, so hostile input ends in bounded time and memory: a picture is at
most :data:`MAX_PICTURE` bytes, a walk takes at most :data:`MAX_STEPS` segments, chunks
or blocks (GIF data sub-blocks: :data:`MAX_SUBBLOCKS`), and reads at most a window of
:data:`WINDOW` bytes at a time (a walk's first read is :data:`FIRST_READ`).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

ReadAt = Callable[[int, int], bytes]

MAX_PICTURE = 256 << 20  # bytes: larger "pictures" are not walked to the end
MAX_STEPS = 100_000  # segments / chunks / blocks / boxes in one picture
MAX_SUBBLOCKS = 2_000_000  # GIF data sub-blocks (≤ 255 bytes each) in one picture
WINDOW = 1 << 20  # bytes read at a time, at most
FIRST_READ = 4096  # bytes a walk reads first

BMP_DIB_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})
_DIB_SIZES = np.array(sorted(BMP_DIB_SIZES), dtype=np.int64)
HEIF_BRANDS = {b"heic": "heic", b"heix": "heic", b"mif1": "heic", b"msf1": "heic",
               b"avif": "avif"}
# Top-level ISO-BMFF boxes a still image (HEIF/AVIF) may have; anything else ends it.
_BMFF_BOXES = frozenset({b"ftyp", b"meta", b"mdat", b"moov", b"free", b"skip", b"uuid",
                         b"wide", b"pdin", b"idat", b"styp", b"sidx", b"moof", b"mfra"})


class _Window:
    """A read cache over ``read_at`` that never reads past ``limit``."""

    def __init__(self, read_at: ReadAt, limit: int) -> None:
        self._read_at = read_at
        self.limit = limit
        self._start = 0
        self._data = b""
        self._chunk = FIRST_READ  # doubles with every refill: fakes cost little to refuse

    def get(self, pos: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``pos`` (fewer only at the limit)."""
        end = min(pos + size, self.limit)
        if pos >= end:
            return b""
        if pos < self._start or end > self._start + len(self._data):
            self._start = pos
            self._data = self._read_at(pos, min(max(size, self._chunk), self.limit - pos))
            self._chunk = min(2 * self._chunk, WINDOW)
        return self._data[pos - self._start: end - self._start]


def _bound(offset: int, limit: int) -> int:
    return min(limit, offset + MAX_PICTURE)


def jpeg_end(read_at: ReadAt, offset: int, limit: int) -> int | None:
    """JPEG: segments to each SOS, through entropy-coded data, on to EOI."""
    window = _Window(read_at, _bound(offset, limit))
    if window.get(offset, 3) != b"\xff\xd8\xff":
        return None
    pos = offset + 2
    for _ in range(MAX_STEPS):
        head = window.get(pos, 4)
        if len(head) < 2 or head[0] != 0xFF:
            return None
        marker = head[1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xD9:
            return pos + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # stand-alone markers
            pos += 2
            continue
        if marker in (0x00, 0xD8) or len(head) < 4:
            return None
        length = struct.unpack_from(">H", head, 2)[0]
        if length < 2:
            return None
        pos += 2 + length
        if marker == 0xDA:
            found = _entropy_end(window, pos)
            if found is None:
                return None
            pos = found
    return None


def _entropy_end(window: _Window, pos: int) -> int | None:
    """The offset of the first marker after entropy-coded data (not FF00, RSTn or fill)."""
    while pos < window.limit:
        data = window.get(pos, WINDOW)
        if len(data) < 2:
            return None
        index = data.find(b"\xff")
        while index != -1 and index + 1 < len(data):
            following = data[index + 1]
            if following == 0x00 or 0xD0 <= following <= 0xD7:
                index = data.find(b"\xff", index + 2)
            elif following == 0xFF:
                index += 1
            else:
                return pos + index
        # no marker in this window; resume at a trailing FF so its pair is seen whole
        pos += index if index != -1 else len(data)
    return None


def png_end(read_at: ReadAt, offset: int, limit: int) -> int | None:
    """PNG: chunks (CRC checked) from IHDR to IEND."""
    window = _Window(read_at, _bound(offset, limit))
    if window.get(offset, 16) != b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR":
        return None
    pos = offset + 8
    for _ in range(MAX_STEPS):
        head = window.get(pos, 8)
        if len(head) < 8:
            return None
        length, kind = struct.unpack(">I4s", head)
        if length > 0x7FFF_FFFF or not kind.isalpha() or pos + 12 + length > window.limit:
            return None
        crc = zlib.crc32(kind)
        done = 0
        while done < length:
            part = window.get(pos + 8 + done, min(WINDOW, length - done))
            if not part:
                return None
            crc = zlib.crc32(part, crc)
            done += len(part)
        stated = window.get(pos + 8 + length, 4)
        if len(stated) < 4 or struct.unpack(">I", stated)[0] != crc:
            return None
        pos += 12 + length
        if kind == b"IEND":
            return pos
    return None


def gif_end(read_at: ReadAt, offset: int, limit: int) -> int | None:
    """GIF: header, colour tables, images and extensions by their sub-blocks, to 0x3B."""
    window = _Window(read_at, _bound(offset, limit))
    head = window.get(offset, 13)
    if len(head) < 13 or head[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    pos = offset + 13
    if head[10] & 0x80:
        pos += 3 << ((head[10] & 0x07) + 1)
    subblocks = 0
    for _ in range(MAX_STEPS):
        block = window.get(pos, 10)
        if not block:
            return None
        if block[0] == 0x3B:
            return pos + 1
        if block[0] == 0x21 and len(block) >= 2:  # extension: label, then sub-blocks
            pos += 2
        elif block[0] == 0x2C and len(block) == 10:  # image descriptor, table, LZW size
            pos += 10
            if block[9] & 0x80:
                pos += 3 << ((block[9] & 0x07) + 1)
            pos += 1
        else:
            return None
        while True:
            subblocks += 1
            if subblocks > MAX_SUBBLOCKS:
                return None
            size = window.get(pos, 1)
            if not size:
                return None
            pos += 1 + size[0]
            if size[0] == 0:
                break
    return None


def bmp_end(read_at: ReadAt, offset: int, limit: int) -> int | None:
    """BMP: the file size its header states, if the pixel data fits inside it."""
    head = read_at(offset, 54)
    if not bmp_header_ok(head):
        return None
    file_size, _, pixels, dib = struct.unpack_from("<IIII", head, 2)
    if dib == 12:
        width, height, planes, bits = struct.unpack_from("<HHHH", head, 18)
        compression = 0
        image_size = 0
    elif len(head) >= 54:
        width, height, planes, bits, compression, image_size = struct.unpack_from(
            "<iiHHII", head, 18)
    else:
        return None
    if planes != 1 or bits not in (1, 2, 4, 8, 16, 24, 32, 64) or width <= 0 or height == 0:
        return None
    if compression in (0, 3, 6):  # uncompressed (BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS)
        needed = ((width * bits + 31) // 32) * 4 * abs(height)
    elif compression in (1, 2, 4, 5):  # RLE8, RLE4, embedded JPEG/PNG: the stated size
        needed = image_size
    else:
        return None
    if needed <= 0 or pixels + needed > file_size or offset + file_size > limit:
        return None
    if file_size > MAX_PICTURE:
        return None
    return offset + file_size


def bmp_header_ok(head: bytes) -> bool:
    """The cheap BMP checks: size field, zero reserved words, pixel offset, DIB size."""
    if len(head) < 18 or head[:2] != b"BM":
        return False
    return bool(bmp_fields_ok(*struct.unpack_from("<IIII", head, 2)))


def bmp_fields_ok(file_size: Any, reserved: Any, pixels: Any, dib: Any) -> Any:
    """:func:`bmp_header_ok` on the four header fields after ``BM``: ints, or numpy arrays
    of them (one answer per row; the embedded-picture search checks thousands at once)."""
    return ((reserved == 0) & np.equal.outer(dib, _DIB_SIZES).any(axis=-1)
            & (14 + dib <= pixels) & (pixels < file_size))


def webp_end(read_at: ReadAt, offset: int, limit: int) -> int | None:
    """WebP: the RIFF container's stated size (plus its pad byte)."""
    head = read_at(offset, 16)
    if len(head) < 16 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return None
    if head[12:16] not in (b"VP8 ", b"VP8L", b"VP8X"):
        return None
    size = struct.unpack_from("<I", head, 4)[0]
    end = offset + 8 + size + (size & 1)
    if size < 12 or end > limit or size > MAX_PICTURE:
        return None
    return end


def heif_end(read_at: ReadAt, offset: int, limit: int) -> int | None:
    """HEIF/AVIF: top-level boxes from ``ftyp`` until one of a type a still image lacks.

    A known box whose stated size runs past the parent's end means a truncated picture.
    """
    window = _Window(read_at, _bound(offset, limit))
    head = window.get(offset, 12)
    if len(head) < 12 or head[4:8] != b"ftyp" or head[8:12] not in HEIF_BRANDS:
        return None
    pos = offset
    seen: set[bytes] = set()
    for _ in range(MAX_STEPS):
        box = window.get(pos, 16)
        if len(box) < 8:
            break
        size, kind = struct.unpack_from(">I4s", box)
        if kind not in _BMFF_BOXES or (kind == b"ftyp" and pos != offset):
            break
        if size == 1:
            if len(box) < 16:
                break
            size = struct.unpack_from(">Q", box, 8)[0]
        elif size == 0:  # "to the end of the file"
            size = window.limit - pos
        if size < 8 or pos + size > window.limit:
            return None  # a known box cut short: the picture is truncated
        seen.add(kind)
        pos += size
    if b"meta" not in seen:
        return None
    return pos


ENDS: dict[str, Callable[[ReadAt, int, int], int | None]] = {
    "jpeg": jpeg_end, "png": png_end, "gif": gif_end, "bmp": bmp_end, "webp": webp_end,
    "heic": heif_end,
}
