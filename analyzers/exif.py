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

Where exifread leaves make, model, capture time or GPS position empty, they are filled
from the other places cameras and editors put them (:mod:`analyzers.metadata.containers` finds the
blocks, without scanning the file): a lenient IFD reader that skips bad entries as ExifTool
does when exifread's strict walk failed (:mod:`analyzers.metadata.lenient_ifd`), the XMP packet
(:mod:`analyzers.metadata.xmp`), then Canon CIFF, APP12 picture-info blocks and Reconyx maker notes
(:mod:`analyzers.metadata.camera_blocks`). ``make_source``, ``model_source``,
``datetime_original_source`` and ``gps_source`` (position and altitude together) say where
each value was read: ``exif`` (the EXIF IFDs, read by ``exif_reader``: ``exifread`` or
``lenient``), ``xmp:<prefix>:<Name>``, ``ciff``, ``app12-picture-info`` or
``makernote:reconyx`` (a Reconyx trail camera's maker note). ``problems``
lists blocks that were there but could not be used (first the exifread error when the
lenient reader took over, a malformed or refused XMP packet, a bad CIFF heap). Damaged EXIF with
nothing recoverable elsewhere is still an :class:`AnalyzerError`. The fallbacks run only
when a field is still empty, so a camera JPEG with complete EXIF costs what it did.
Measured here (exifread 3.5.1, defusedxml 0.7.1, best of 7 runs, a loaded 2-core machine):
finding the blocks of a JPEG ~12–17 µs (its marker segments up to the scan), of a 758 KiB
PNG ~12 µs (its chunks); parsing a 7 KiB XMP packet ~0.25–0.33 ms; libheif opening a
320 KiB HEIC for its Exif item ~0.1–0.16 ms (done only when exifread's HEIF parser fails).
"""

from __future__ import annotations

import io
import math
import struct
from datetime import datetime
from typing import Any

from analyzers.base import Analyzer, AnalyzerError, Findings
from analyzers.metadata import xmp
from analyzers.metadata.camera_blocks import (
    CameraBlockError,
    ciff_fields,
    picture_info_fields,
    reconyx_fields,
)
from analyzers.metadata.containers import (
    MetadataBlocks,
    heif_exif,
    is_heif,
    jpeg_segments,
    locate_blocks,
    riff_chunks,
)
from analyzers.metadata.lenient_ifd import lenient_fields, maker_note
from ingest.location import FileEntry

#: Image types whose containers can carry EXIF and that exifread can find it in.
EXIF_MIMES = frozenset(
    {"image/jpeg", "image/tiff", "image/heic", "image/heif", "image/avif", "image/webp",
     "image/png", "image/jxl", "image/x-canon-crw"}
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
    "make_source", "model_source", "datetime_original_source", "gps_source", "exif_reader",
    "problems",
)

#: The fields the fallbacks fill, each with the key that names its source.
SOURCE_KEYS = {
    "make": "make_source", "model": "model_source",
    "datetime_original": "datetime_original_source", "gps_latitude": "gps_source",
}


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
    for _marker, start, end in jpeg_segments(data):
        if start - 4 < offset < end:
            return end
    return None


def _rational(value: Any, what: str) -> float:
    """A TIFF rational as float; a zero denominator is an error, not ``inf``/a crash."""
    numerator = getattr(value, "numerator", value)
    denominator = getattr(value, "denominator", 1)
    if denominator == 0:
        raise AnalyzerError(f"malformed EXIF: {what} has a zero denominator ({numerator}/0)")
    try:
        return float(numerator) / float(denominator)
    except (TypeError, ValueError) as exc:
        raise AnalyzerError(f"malformed EXIF: {what} is not a rational ({value!r})") from exc


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


def _webp_exif(data: bytes) -> bytes | None:
    """A WebP's EXIF chunk as a TIFF block (exifread 3.5 misreads chunks without "Exif")."""
    for kind, start, end in riff_chunks(data):
        if kind == b"EXIF":
            block = data[start:end]
            return block[6:] if block.startswith(b"Exif\x00\x00") else block
    return None


def read_tags(data: bytes) -> dict[str, Any]:
    """exifread's tag dict for ``data``, or ``{}`` without EXIF; AnalyzerError if damaged."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        block = _webp_exif(data)
        return {} if block is None else _exifread_tags(block)
    try:
        return _exifread_tags(data)
    except AnalyzerError:
        if not is_heif(data):
            raise
        # exifread 3.5 asserts on HEIF Exif items without an "Exif" prefix (pillow-heif
        # writes them so); libheif finds the item, ~1 ms, so only when exifread failed
        try:
            block = heif_exif(data)
        except ValueError:
            block = None
        if block is None:
            raise
    return _exifread_tags(block)


def _exifread_tags(data: bytes) -> dict[str, Any]:
    import exifread  # on first use, not with this module: see analyzers/perceptual.py
    from exifread.core.exceptions import ExifError
    from exifread.core.find_exif import determine_type

    probe = io.BytesIO(data)
    try:
        offset, _endian, _fake = determine_type(probe)
    except ExifError:
        return {}  # no EXIF (or a format exifread does not look into): not damage
    except (ValueError, IndexError, struct.error) as exc:
        raise AnalyzerError(f"malformed EXIF container: {exc}") from exc
    except Exception as exc:  # exifread's HEIF parser: AssertionError, KeyError, EOFError…
        raise AnalyzerError(f"malformed EXIF container: {type(exc).__name__}: {exc}") from exc
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


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _valid_position(lat: float | None, lon: float | None) -> bool:
    return (lat is not None and lon is not None and math.isfinite(lat) and math.isfinite(lon)
            and abs(lat) <= 90 and abs(lon) <= 180)


def xmp_fields(packet: bytes, problems: list[str]) -> dict[str, tuple[Any, str]]:
    """Fields from an XMP packet, each with its source ("xmp:exif:DateTimeOriginal").

    A GPS value that is not a coordinate drops the position (listed in ``problems``), not
    the packet's make, model or time.
    """
    props = xmp.parse_properties(packet)
    fields: dict[str, tuple[Any, str]] = {}
    for key, prop in (("make", "tiff:Make"), ("model", "tiff:Model")):
        if prop in props:
            fields[key] = (props[prop], f"xmp:{prop}")
    for prop in xmp.TIME_PROPERTIES:
        if prop in props:
            fields["datetime_original"] = (xmp.exif_date(props[prop]), f"xmp:{prop}")
            break
    if "exif:GPSLatitude" in props and "exif:GPSLongitude" in props:
        source = "xmp:exif:GPSLatitude"
        try:
            position = {
                "gps_latitude": (xmp.coordinate(props["exif:GPSLatitude"], "GPSLatitude"),
                                 source),
                "gps_longitude": (xmp.coordinate(props["exif:GPSLongitude"], "GPSLongitude"),
                                  source),
            }
            if "exif:GPSAltitude" in props:
                metres = xmp.rational(props["exif:GPSAltitude"], "GPSAltitude")
                if props.get("exif:GPSAltitudeRef", "0").strip() == "1":
                    metres = -metres
                position["gps_altitude"] = (metres, source)
        except xmp.XmpError as exc:
            problems.append(str(exc))
        else:
            fields.update(position)
    return fields


class ExifAnalyzer(Analyzer):
    """Who made the picture, with what, when and where (EXIF, then XMP and vendor blocks)."""

    name = "exif"
    version = "1.1.0"
    input = "content"
    max_size = 64 * 1024 * 1024

    def applies_to(self, entry: FileEntry, findings: dict[str, Findings]) -> bool:
        mime = findings.get("filetype", {}).get("mime")
        return entry.kind == "file" and mime in EXIF_MIMES

    def analyze(self, data: bytes, entry: FileEntry, findings: dict[str, Findings]) -> Findings:
        result = empty_findings()
        problems: list[str] = []
        exif_failure: AnalyzerError | None = None
        try:
            tags = read_tags(data)
        except AnalyzerError as exc:
            tags, exif_failure = {}, exc
        if tags:
            self._from_exifread(tags, result)
        if exif_failure is not None or any(result[key] is None for key in SOURCE_KEYS):
            blocks = locate_blocks(data)
            problems.extend(blocks.problems)
            if not tags and exif_failure is None and blocks.exif is not None:
                # EXIF where exifread does not look (an ImageMagick PNG raw profile)
                try:
                    tags = read_tags(blocks.exif)
                except AnalyzerError as exc:
                    exif_failure = exc
                if tags:
                    self._from_exifread(tags, result)
            if exif_failure is not None and blocks.exif is not None:
                self._from_lenient(blocks.exif, result)
            self._from_other_blocks(blocks, result, problems)
        found = any(result[key] is not None for key in (*SOURCE_KEYS, "serial", "software",
                                                        "orientation"))
        if exif_failure is not None:
            if not found:
                if problems:
                    raise AnalyzerError(f"{exif_failure}; also: {'; '.join(problems)}") \
                        from exif_failure
                raise exif_failure
            problems.insert(0, f"exifread: {exif_failure}")
        result["present"] = bool(tags) or found or bool(result["has_thumbnail"])
        result["datetime_original_iso"] = _iso(result["datetime_original"])
        result["problems"] = problems or None
        return result

    @staticmethod
    def _from_exifread(tags: dict[str, Any], result: Findings) -> None:
        thumbnail = tags.get("JPEGThumbnail")
        result.update(
            make=_text(tags, "Image Make"),
            model=_text(tags, "Image Model"),
            serial=next((s for s in (_text(tags, k) for k in SERIAL_TAGS) if s), None),
            datetime_original=_text(tags, "EXIF DateTimeOriginal"),
            software=_text(tags, "Image Software"),
            orientation=_orientation(tags),
            gps_latitude=_degrees(tags, "Latitude"),
            gps_longitude=_degrees(tags, "Longitude"),
            gps_altitude=_altitude(tags),
            has_thumbnail=isinstance(thumbnail, bytes) and len(thumbnail) > 0,
            exif_reader="exifread",
        )
        for key, source_key in SOURCE_KEYS.items():
            if result[key] is not None:
                result[source_key] = "exif"
        if result["gps_latitude"] is None and result["gps_altitude"] is not None:
            result["gps_source"] = "exif"

    @staticmethod
    def _from_lenient(block: bytes, result: Findings) -> None:
        fields = lenient_fields(block)
        if not _valid_position(fields.get("gps_latitude"), fields.get("gps_longitude")):
            for key in ("gps_latitude", "gps_longitude"):
                fields.pop(key, None)
        if not fields:
            return
        result.update(fields)
        result["exif_reader"] = "lenient"
        for key, source_key in SOURCE_KEYS.items():
            if result[key] is not None:
                result[source_key] = "exif"
        if "gps_altitude" in fields and result["gps_source"] is None:
            result["gps_source"] = "exif"

    @staticmethod
    def _fill(result: Findings, fields: dict[str, tuple[Any, str]]) -> None:
        """Fill empty fields; the GPS position (with its altitude) only as a whole."""
        for key in ("make", "model", "datetime_original"):
            if result[key] is None and key in fields:
                result[key], result[SOURCE_KEYS[key]] = fields[key]
        if result["gps_latitude"] is None and result["gps_longitude"] is None:
            lat, lon = fields.get("gps_latitude"), fields.get("gps_longitude")
            if lat and lon and _valid_position(lat[0], lon[0]):
                result["gps_latitude"], result["gps_longitude"] = lat[0], lon[0]
                result["gps_source"] = lat[1]
                altitude = fields.get("gps_altitude")
                result["gps_altitude"] = _finite(altitude[0]) if altitude else None

    def _from_other_blocks(
        self, blocks: MetadataBlocks, result: Findings, problems: list[str]
    ) -> None:
        if blocks.xmp is not None:
            try:
                self._fill(result, xmp_fields(blocks.xmp, problems))
            except xmp.XmpError as exc:
                problems.append(str(exc))
        if blocks.ciff is not None:
            try:
                ciff = ciff_fields(blocks.ciff)
            except (CameraBlockError, struct.error) as exc:
                problems.append(f"CIFF: {exc}")
            else:
                self._fill(result, {k: (v, "ciff") for k, v in ciff.items()})
        for block in blocks.picture_info:
            info = picture_info_fields(block)
            self._fill(result, {k: (v, "app12-picture-info") for k, v in info.items()})
        if result["datetime_original"] is None and blocks.exif is not None:
            note = maker_note(blocks.exif)
            if note is not None:
                found = reconyx_fields(note, result["make"])
                self._fill(result, {k: (v, "makernote:reconyx") for k, v in found.items()})

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        import defusedxml
        import exifread
        import pillow_heif

        return {"exifread": exifread.__version__,
                "defusedxml": defusedxml.__version__, "pillow-heif": pillow_heif.__version__}
