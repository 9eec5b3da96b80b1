"""Make, model and capture time from vendor blocks that are not EXIF.

Some cameras wrote their data outside any EXIF IFD, where exifread does not look:

- Canon's CIFF heap (CRW raw files, and an APP0 "HEAPJPGM" segment in JPEGs of early
  PowerShots): a tree of heaps whose table sits at the offset named by the heap's last
  four bytes. Tag 0x080a holds make and model as two NUL-terminated strings, tag 0x180e
  the capture time as Unix seconds (read as UTC, as ExifTool does).
- The APP12 "[picture info]" text block of older Olympus, Agfa and Polaroid cameras:
  ``key=value`` lines; ``TimeDate`` is the capture time in Unix seconds.

- The maker note of Reconyx HyperFire trail cameras (HC500, HC600, PC900…): a fixed
  little-endian int16 layout starting ``01 f1``, the capture time at word 0x0b as
  second, minute, hour, month, day, year (some firmware writes those words big-endian;
  ExifTool swaps them back, so do we). Trail cameras often leave EXIF DateTimeOriginal
  empty; exifread (``details=False``) does not decode maker notes.

The CIFF walk is bounded: heaps nest at most :data:`MAX_CIFF_DEPTH` deep, each heap is
visited once, and every offset is checked against the heap it belongs to.
"""

from __future__ import annotations

import re
import struct
from datetime import UTC, datetime

MAX_CIFF_DEPTH = 8
CIFF_MAKE_MODEL = 0x080A
CIFF_TIME_STAMP = 0x180E

_PICTURE_INFO_TIME = re.compile(rb"(?:^|[\s\0\]])TimeDate=([\x20-\x7e]+?)\s*(?=[\r\n\0]|$)")


class CameraBlockError(ValueError):
    """A vendor block whose structure points outside itself."""


def unix_time(seconds: int) -> str:
    """Unix seconds in EXIF form, UTC (ExifTool's ConvertUnixTime; 0 is all zeros)."""
    if seconds == 0:
        return "0000:00:00 00:00:00"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y:%m:%d %H:%M:%S")


def _ciff_heap(
    data: bytes, start: int, end: int, endian: str, depth: int, seen: set[int],
    found: dict[str, str],
) -> None:
    if depth > MAX_CIFF_DEPTH:
        raise CameraBlockError(f"CIFF heaps nest deeper than {MAX_CIFF_DEPTH}")
    if end - start < 6:
        raise CameraBlockError(f"CIFF heap at {start} is {end - start} bytes, too small")
    (table,) = struct.unpack_from(endian + "I", data, end - 4)
    table += start
    if table in seen:
        raise CameraBlockError(f"CIFF heap table at {table} is referenced twice")
    seen.add(table)
    if table + 2 > end - 4:
        raise CameraBlockError(f"CIFF heap table offset {table} is outside its heap")
    (count,) = struct.unpack_from(endian + "H", data, table)
    if table + 2 + 10 * count > end - 4:
        raise CameraBlockError(f"CIFF heap table at {table} has {count} entries, past its heap")
    for index in range(count):
        tag, size, offset = struct.unpack_from(endian + "HII", data, table + 2 + 10 * index)
        if tag & 0x8000:
            return  # ExifTool stops at such an entry too ("bad CRW directory entry")
        in_record = tag & 0x4000
        kind = (tag >> 8) & 0x38
        tag_id = tag & 0x3FFF
        if in_record:
            value = data[table + 2 + 10 * index + 2 : table + 2 + 10 * index + 10]
        else:
            value_start = start + offset
            if value_start + size > end:
                raise CameraBlockError(f"CIFF entry 0x{tag:04x} points past its heap")
            if kind in (0x28, 0x30):
                _ciff_heap(data, value_start, value_start + size, endian, depth + 1, seen,
                           found)
                continue
            value = data[value_start : value_start + size]
        if tag_id == CIFF_MAKE_MODEL and "make" not in found:
            make, _, rest = value.partition(b"\x00")
            model = rest.partition(b"\x00")[0]
            if make.strip():
                found["make"] = make.decode("latin-1").strip()
            if model.strip():
                found["model"] = model.decode("latin-1").strip()
        elif tag_id == CIFF_TIME_STAMP and "datetime_original" not in found and len(value) >= 4:
            (seconds,) = struct.unpack_from(endian + "I", value)
            found["datetime_original"] = unix_time(seconds)


def ciff_fields(block: bytes) -> dict[str, str]:
    """``make``/``model``/``datetime_original`` from a CIFF block (header at its start)."""
    if len(block) < 14 or block[:2] not in (b"II", b"MM"):
        raise CameraBlockError("CIFF block without a byte-order mark")
    endian = "<" if block[:2] == b"II" else ">"
    (header,) = struct.unpack_from(endian + "I", block, 2)
    if not 14 <= header < len(block):
        raise CameraBlockError(f"CIFF header length {header} does not fit a {len(block)}-byte"
                               " block")
    found: dict[str, str] = {}
    _ciff_heap(block, header, len(block), endian, 0, set(), found)
    return found


def picture_info_fields(block: bytes) -> dict[str, str]:
    """``datetime_original`` from an APP12 picture-info text block (if it has TimeDate)."""
    match = _PICTURE_INFO_TIME.search(block)
    if not match:
        return {}
    raw = match.group(1).decode("ascii").strip()
    return {"datetime_original": unix_time(int(raw)) if raw.isdigit() else raw}


def reconyx_fields(note: bytes, make: str | None) -> dict[str, str]:
    """``datetime_original`` from a Reconyx HyperFire maker note (ExifTool's condition)."""
    if len(note) < 0x22 or note[:2] != b"\x01\xf1":
        return {}
    if note[2:4] not in (b"\x02\x00", b"\x03\x00") and (make or "") != "RECONYX":
        return {}
    words = list(struct.unpack_from("<6H", note, 0x16))
    if words[0] & 0xFF00 and not words[0] & 0xFF:
        words = [(w >> 8) | ((w & 0xFF) << 8) for w in words]
    second, minute, hour, month, day, year = words
    return {"datetime_original":
            f"{year:04d}:{month:02d}:{day:02d} {hour:02d}:{minute:02d}:{second:02d}"}
