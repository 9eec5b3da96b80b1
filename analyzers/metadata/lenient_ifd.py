"""A lenient reader of the EXIF IFDs, for the files exifread (strict) refuses.

exifread runs with ``strict=True`` and rejects a whole EXIF block for one bad entry; for
evidence that is right as the primary reading. But ExifTool, the reference examiners
compare against, skips only the bad entry and keeps the rest, so a camera's make, model,
capture time and position survive a damaged Software tag. This reader follows ExifTool's
rules for the few tags we report: an IFD whose entry table does not fit in the block is
not used at all; an entry with an unknown type, a value outside the block, or a zero
denominator is skipped; everything else is read.

Pillow's reader was tried first: it stops at the first entry whose value lies outside the
block ("Truncated File Read") and loses every entry after it, including the pointers to
the EXIF and GPS IFDs, so it disagreed with ExifTool on exactly the damage this is for.
"""

from __future__ import annotations

import math
import struct
from typing import Any

#: TIFF field types → bytes per value.
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}
EXIF_IFD, GPS_IFD = 0x8769, 0x8825

Entry = tuple[int, int, bytes]  # (type, count, value bytes)


def read_ifd(block: bytes, offset: int, endian: str) -> dict[int, Entry] | None:
    """The readable entries of the IFD at ``offset``; None when its table leaves the block."""
    if offset < 8 or offset + 2 > len(block):
        return None
    (count,) = struct.unpack_from(endian + "H", block, offset)
    if offset + 2 + 12 * count > len(block):
        return None
    entries: dict[int, Entry] = {}
    for index in range(count):
        tag, kind, n, value = struct.unpack_from(endian + "HHI4s", block, offset + 2 + 12 * index)
        if kind not in TYPE_SIZES or tag in entries:
            continue
        size = n * TYPE_SIZES[kind]
        if size <= 4:
            entries[tag] = (kind, n, value[:size])
            continue
        (where,) = struct.unpack(endian + "I", value)
        if where + size <= len(block):
            entries[tag] = (kind, n, block[where : where + size])
    return entries


def _text(entries: dict[int, Entry], tag: int) -> str | None:
    entry = entries.get(tag)
    if entry is None or entry[0] not in (2, 7):
        return None
    return entry[2].split(b"\x00", 1)[0].decode("utf-8", errors="replace").strip() or None


def _unsigned(entries: dict[int, Entry], tag: int, endian: str) -> int | None:
    entry = entries.get(tag)
    if entry is None or entry[1] < 1:
        return None
    formats = {1: "B", 3: "H", 4: "I", 7: "B"}
    if entry[0] not in formats:
        return None
    return int(struct.unpack_from(endian + formats[entry[0]], entry[2])[0])


def _rationals(entries: dict[int, Entry], tag: int, endian: str) -> list[float] | None:
    entry = entries.get(tag)
    if entry is None or entry[0] not in (5, 10) or entry[1] < 1:
        return None
    kind = "I" if entry[0] == 5 else "i"
    values = struct.unpack_from(f"{endian}{2 * entry[1]}{kind}", entry[2])
    out = []
    for numerator, denominator in zip(values[::2], values[1::2], strict=True):
        if denominator == 0:
            return None
        out.append(numerator / denominator)
    return out


def _degrees(gps: dict[int, Entry], tag: int, ref_tag: int, endian: str) -> float | None:
    parts = _rationals(gps, tag, endian)
    if not parts or len(parts) > 3:
        return None
    value = sum(p / s for p, s in zip(parts, (1.0, 60.0, 3600.0), strict=False))
    ref = (_text(gps, ref_tag) or "").upper()[:1]
    return -value if ref in ("S", "W") else value


def lenient_fields(block: bytes) -> dict[str, Any]:
    """The fields exhibit reports, from a TIFF-structured EXIF block, read leniently."""
    if len(block) < 8 or block[:2] not in (b"II", b"MM"):
        return {}
    endian = "<" if block[:2] == b"II" else ">"
    ifd0 = read_ifd(block, struct.unpack_from(endian + "I", block, 4)[0], endian)
    if ifd0 is None:
        return {}
    fields: dict[str, Any] = {
        "make": _text(ifd0, 0x010F), "model": _text(ifd0, 0x0110),
        "software": _text(ifd0, 0x0131),
    }
    orientation = _unsigned(ifd0, 0x0112, endian)
    if orientation is not None and 1 <= orientation <= 8:
        fields["orientation"] = orientation
    pointer = _unsigned(ifd0, EXIF_IFD, endian)
    sub = read_ifd(block, pointer, endian) if pointer is not None else None
    serials = [(sub or {}, 0xA431), (ifd0, 0xA431), (sub or {}, 0xFDE9), (ifd0, 0xC62F)]
    fields["serial"] = next((s for s in (_text(d, t) for d, t in serials) if s), None)
    if sub is not None:
        fields["datetime_original"] = _text(sub, 0x9003)
    pointer = _unsigned(ifd0, GPS_IFD, endian)
    gps = read_ifd(block, pointer, endian) if pointer is not None else None
    if gps is not None:
        fields["gps_latitude"] = _degrees(gps, 2, 1, endian)
        fields["gps_longitude"] = _degrees(gps, 4, 3, endian)
        altitude = _rationals(gps, 6, endian)
        if altitude and math.isfinite(altitude[0]):
            below = _unsigned(gps, 5, endian) == 1
            fields["gps_altitude"] = -altitude[0] if below else altitude[0]
    return {key: value for key, value in fields.items() if value is not None}


def maker_note(block: bytes) -> bytes | None:
    """The raw MakerNote (EXIF sub-IFD tag 0x927C) of a TIFF-structured EXIF block."""
    if len(block) < 8 or block[:2] not in (b"II", b"MM"):
        return None
    endian = "<" if block[:2] == b"II" else ">"
    ifd0 = read_ifd(block, struct.unpack_from(endian + "I", block, 4)[0], endian)
    pointer = _unsigned(ifd0, EXIF_IFD, endian) if ifd0 else None
    sub = read_ifd(block, pointer, endian) if pointer is not None else None
    entry = (sub or {}).get(0x927C)
    return entry[2] if entry else None
