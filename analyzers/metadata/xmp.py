"""Camera, time and place from an XMP packet, read the way ExifTool reads them.

Edited photos often keep their capture data only in XMP (the editor rewrote or dropped
the EXIF). The packet is parsed by a real XML parser, through defusedxml with DTDs
forbidden: an XMP packet never needs one, and refusing it refuses entity expansion
("billion laughs") and external entities outright. Values are converted as ExifTool does
(``-n``): dates ``2024-05-01T09:15:02+02:00`` → ``2024:05:01 09:15:02+02:00``, GPS
coordinates ``52,22.38N`` → signed decimal degrees, altitude rationals → metres.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element, ParseError

NS = {
    "exif": "http://ns.adobe.com/exif/1.0/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
}
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"

#: Properties read, as "prefix:Name"; capture time in ExifTool's order of preference.
PROPERTIES = (
    "tiff:Make", "tiff:Model", "exif:DateTimeOriginal", "xmp:CreateDate",
    "photoshop:DateCreated", "exif:GPSLatitude", "exif:GPSLongitude", "exif:GPSAltitude",
    "exif:GPSAltitudeRef",
)
TIME_PROPERTIES = ("exif:DateTimeOriginal", "xmp:CreateDate", "photoshop:DateCreated")

_CLARK = {f"{{{NS[p.split(':')[0]]}}}{p.split(':')[1]}": p for p in PROPERTIES}
_XMP_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}:\d{2})(:\d{2})?\s*(\S*)$")
_XMP_DATE_PART = re.compile(r"^(\d{4})(-\d{2}){0,2}")
_COORDINATE = re.compile(r"^\s*(\d+(?:\.\d*)?)(?:,(\d+(?:\.\d*)?))?(?:,(\d+(?:\.\d*)?))?"
                         r"\s*([NSEW])\s*$", re.IGNORECASE)
_RATIONAL = re.compile(r"^\s*(-?\d+)\s*/\s*(-?\d+)\s*$")


class XmpError(ValueError):
    """An XMP packet that is not well-formed XML, or that declares a DTD or entities."""


def _value(element: Element) -> str | None:
    """A simple property's text, or the first item of an rdf:Alt/Seq/Bag."""
    for item in element.iter(f"{{{RDF}}}li"):
        return (item.text or "").strip() or None
    return (element.text or "").strip() or None


def parse_properties(packet: bytes) -> dict[str, str]:
    """The :data:`PROPERTIES` a packet holds (first occurrence of each), by "prefix:Name"."""
    from defusedxml import DefusedXmlException  # on first use: see analyzers/perceptual.py
    from defusedxml.ElementTree import fromstring

    text = packet.strip(b"\x00 \t\r\n")
    try:
        root = fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise XmpError(f"XMP refused: {type(exc).__name__}: {exc}") from exc
    except (ParseError, ValueError, LookupError) as exc:  # LookupError: unknown encoding
        raise XmpError(f"XMP is not well-formed XML: {exc}") from exc
    found: dict[str, str] = {}
    for description in root.iter(f"{{{RDF}}}Description"):
        for key, value in description.attrib.items():
            name = _CLARK.get(key)
            if name and name not in found and value.strip():
                found[name] = value.strip()
        for child in description:
            name = _CLARK.get(child.tag)
            if name and name not in found:
                value = _value(child)
                if value:
                    found[name] = value
    return found


def exif_date(value: str) -> str:
    """An XMP date in EXIF form, as ExifTool's ConvertXMPDate writes it."""
    match = _XMP_DATE.match(value)
    if match:
        year, month, day, hour_minute, seconds, zone = match.groups()
        return f"{year}:{month}:{day} {hour_minute}{seconds or ''}{zone}"
    if _XMP_DATE_PART.match(value):
        return value.replace("-", ":")
    return value


def coordinate(value: str, what: str) -> float:
    """``DDD,MM,SSk`` or ``DDD,MM.mmk`` (XMP's GPSCoordinate) as signed decimal degrees."""
    match = _COORDINATE.match(value)
    if not match:
        raise XmpError(f"XMP {what} is not a GPS coordinate: {value!r}")
    degrees, minutes, seconds, ref = match.groups()
    result = float(degrees) + float(minutes or 0) / 60 + float(seconds or 0) / 3600
    return -result if ref.upper() in ("S", "W") else result


def rational(value: str, what: str) -> float:
    """An XMP rational ``n/d`` (or a plain number)."""
    match = _RATIONAL.match(value)
    try:
        if match:
            numerator, denominator = int(match.group(1)), int(match.group(2))
            if denominator == 0:
                raise XmpError(f"XMP {what} has a zero denominator ({value!r})")
            return numerator / denominator
        return float(value)
    except ValueError as exc:
        raise XmpError(f"XMP {what} is not a number: {value!r}") from exc
