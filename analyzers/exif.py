"""Camera, time and place from an image's EXIF: the questions an examiner asks first.

exifread is called with ``details=False``: MakerNotes (the slow, vendor-specific part)
are not decoded and we report nothing from them. Measured with exifread 3.5.1 on this
machine (median of 200 ``process_file(BytesIO(data), details=…)`` calls):

- 1600×1200 JPEG written by Pillow + exiftool 12.57, full IFD0/EXIF/GPS + an IFD1
  thumbnail, no MakerNote: details=True 0.23 ms, details=False 0.23 ms — without a
  MakerNote the flag changes nothing;
- the project's design notes measured ~280 ms vs ~0.3 ms on camera JPEGs *with*
  MakerNotes; no such camera file is available offline here to repeat it, so the
  0.3 ms figure is the one we can confirm and ~280 ms is the cost we avoid.

Policy for damaged EXIF: **raise** :class:`AnalyzerError`, never return a partial
result. exifread on its own is lenient (an IFD entry count that runs past the data reads
zeros and carries on), so it runs with ``strict=True`` over a file object that records
every short read, bounded for JPEGs to the APP1 segment that holds the EXIF. A pointer
or count that leaves the EXIF block, an unknown field type, or a rational with a zero
denominator in a reported value is an error naming what was wrong. The hashes and the
file type of the same file are unaffected (the worker isolates analyzers).

GPS values are signed decimal degrees (S and W negative); ``gps_altitude`` is metres,
negative when GPSAltitudeRef is 1 (below sea level). ``datetime_original`` keeps the raw
EXIF string; ``datetime_original_iso`` is its ISO 8601 form (no time zone: EXIF has
none) or null when the raw value is not a valid date.
"""

from __future__ import annotations

import io
import struct
from datetime import datetime
from typing import Any

import exifread
from exifread.core.exceptions import ExifError
from exifread.core.find_exif import determine_type

from analyzers.base import Analyzer, AnalyzerError, Findings
from ingest.location import FileEntry

#: Image types whose containers can carry EXIF and that exifread can find it in.
EXIF_MIMES = frozenset(
    {"image/jpeg", "image/tiff", "image/heic", "image/heif", "image/avif", "image/webp",
     "image/png", "image/jxl"}
)

#: Where a body serial number can be, best first (exifread's "IFD Tag" keys).
SERIAL_TAGS = (
    "EXIF BodySerialNumber",
    "Image BodySerialNumber",
    "EXIF SerialNumber",  # 0xFDE9, written by some raw converters
    "Image SerialNumber",
    "Image CameraSerialNumber",  # DNG 0xC62F, when exifread names it
    "Image Tag 0xC62F",
)

KEYS = (
    "make", "model", "serial", "datetime_original", "datetime_original_iso", "software",
    "orientation", "gps_latitude", "gps_longitude", "gps_altitude", "has_thumbnail",
)


def empty_findings() -> Findings:
    """Findings for an image without EXIF: every key present, every value null."""
    findings: Findings = dict.fromkeys(KEYS)
    findings["present"] = False
    findings["has_thumbnail"] = False
    return findings


class _BoundedReader(io.BytesIO):
    """A BytesIO that remembers reads cut short by the end of the data.

    exifread treats a short read as "probably corrupt" and goes on with zeros; for
    evidence we want to know, so the analyzer checks :attr:`short_reads` afterwards.
    """

    def __init__(self, data: bytes, tiff_offset: int) -> None:
        super().__init__(data)
        # exifread's format probe reads big blocks from the start of the file; only
        # reads inside the TIFF structure (at or after its header) are EXIF reads.
        self.tiff_offset = tiff_offset
        self.short_reads: list[tuple[int, int, int]] = []  # (offset, wanted, got)

    def read(self, size: int | None = -1, /) -> bytes:
        offset = self.tell()
        out = super().read(size)
        if size is not None and size > 0 and len(out) < size and offset >= self.tiff_offset:
            self.short_reads.append((offset, size, len(out)))
        return out


def _jpeg_segment_end(data: bytes, offset: int) -> int | None:
    """End of the JPEG marker segment that contains ``offset`` (the TIFF header)."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):
            pos += 2
            continue
        if marker == 0xDA:  # start of scan: no more metadata segments
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if pos < offset < end:
            return end
        pos = end
    return None


def _rational(value: Any, what: str) -> float:
    """A TIFF rational as float; a zero denominator is an error, not ``inf``/a crash."""
    numerator = getattr(value, "numerator", value)
    denominator = getattr(value, "denominator", 1)
    if denominator == 0:
        raise AnalyzerError(f"malformed EXIF: {what} has a zero denominator ({numerator}/0)")
    return float(numerator) / float(denominator)


def _text(tags: dict[str, Any], key: str) -> str | None:
    tag = tags.get(key)
    if tag is None:
        return None
    values = tag.values
    if isinstance(values, bytes):
        values = values.decode("utf-8", errors="replace")
    if not isinstance(values, str):
        values = str(tag.printable)
    values = values.strip().rstrip("\x00").strip()
    return values or None


def _degrees(tags: dict[str, Any], axis: str) -> float | None:
    tag = tags.get(f"GPS GPS{axis}")
    if tag is None:
        return None
    parts = list(tag.values)
    if not 1 <= len(parts) <= 3:
        raise AnalyzerError(f"malformed EXIF: GPS{axis} has {len(parts)} values, expected 3")
    value = 0.0
    for part, scale in zip(parts, (1.0, 60.0, 3600.0), strict=False):
        value += _rational(part, f"GPS{axis}") / scale
    ref = (_text(tags, f"GPS GPS{axis}Ref") or "").upper()[:1]
    if ref in ("S", "W"):
        value = -value
    elif ref not in ("N", "E", ""):
        raise AnalyzerError(f"malformed EXIF: GPS{axis}Ref is {ref!r}")
    return value


def _altitude(tags: dict[str, Any]) -> float | None:
    tag = tags.get("GPS GPSAltitude")
    if tag is None or not tag.values:
        return None
    metres = _rational(tag.values[0], "GPSAltitude")
    ref = tags.get("GPS GPSAltitudeRef")
    if ref is not None and ref.values and ref.values[0] == 1:
        metres = -metres
    return metres


def _orientation(tags: dict[str, Any]) -> int | None:
    tag = tags.get("Image Orientation")
    if tag is None or not tag.values:
        return None
    value = tag.values[0]
    if not isinstance(value, int) or not 1 <= value <= 8:
        raise AnalyzerError(f"malformed EXIF: Orientation is {value!r}, expected 1..8")
    return value


def _iso(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        return datetime.strptime(raw[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def read_tags(data: bytes) -> dict[str, Any]:
    """exifread's tag dict for ``data``, or ``{}`` without EXIF; AnalyzerError if damaged."""
    probe = io.BytesIO(data)
    try:
        offset, _endian, _fake = determine_type(probe)
    except ExifError:
        return {}  # no EXIF (or a format exifread does not look into): not damage
    except (ValueError, IndexError, struct.error) as exc:
        raise AnalyzerError(f"malformed EXIF container: {exc}") from exc
    bound = len(data)
    if data[:2] == b"\xff\xd8":
        end = _jpeg_segment_end(data, offset)
        if end is not None:
            bound = min(bound, end)
    reader = _BoundedReader(data[:bound], offset)
    try:
        tags = exifread.process_file(reader, details=False, strict=True)
    except AnalyzerError:
        raise
    except Exception as exc:  # exifread raises ValueError, KeyError, struct.error…
        raise AnalyzerError(f"malformed EXIF: {type(exc).__name__}: {exc}") from exc
    if reader.short_reads:
        where, wanted, got = reader.short_reads[0]
        raise AnalyzerError(
            f"malformed EXIF: a pointer or count runs past the EXIF block "
            f"(read of {wanted} bytes at offset {where} got {got}; block ends at {bound}; "
            f"{len(reader.short_reads)} such reads)"
        )
    return tags


class ExifAnalyzer(Analyzer):
    """Who made the picture, with what, when and where (EXIF, without MakerNotes)."""

    name = "exif"
    version = "1.0.0"
    input = "content"
    max_size = 64 * 1024 * 1024

    def applies_to(self, entry: FileEntry, findings: dict[str, Findings]) -> bool:
        mime = findings.get("filetype", {}).get("mime")
        return entry.kind == "file" and mime in EXIF_MIMES

    def analyze(self, data: bytes, entry: FileEntry, findings: dict[str, Findings]) -> Findings:
        tags = read_tags(data)
        result = empty_findings()
        if not tags:
            return result
        raw_time = _text(tags, "EXIF DateTimeOriginal")
        thumbnail = tags.get("JPEGThumbnail")
        result.update(
            present=True,
            make=_text(tags, "Image Make"),
            model=_text(tags, "Image Model"),
            serial=next((s for s in (_text(tags, k) for k in SERIAL_TAGS) if s), None),
            datetime_original=raw_time,
            datetime_original_iso=_iso(raw_time),
            software=_text(tags, "Image Software"),
            orientation=_orientation(tags),
            gps_latitude=_degrees(tags, "Latitude"),
            gps_longitude=_degrees(tags, "Longitude"),
            gps_altitude=_altitude(tags),
            has_thumbnail=isinstance(thumbnail, bytes) and len(thumbnail) > 0,
        )
        return result

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        return {"exifread": exifread.__version__}
