"""What the container says: duration, size, codec, rates, and when, where and with what.

FFmpeg's demuxers (through PyAV) already read the boxes and elements that matter and
expose them as metadata tags, so we read those tags rather than parse boxes again:

- creation time: QuickTime/MP4 ``mvhd`` creation time (FFmpeg's ``creation_time``; a zero
  1904 epoch is left out by FFmpeg), ``©day`` (``date``), Matroska ``DateUTC``
  (``creation_time`` again), then the video stream's own ``creation_time``;
- GPS: Apple ``com.apple.quicktime.location.ISO6709`` (``Keys``), QuickTime ``©xyz`` and
  Android's ``location`` (both appear as ``location``), all ISO 6709 strings
  (``+48.8584+002.2945+35.000/``);
- device: ``com.apple.quicktime.make``/``model``/``software`` and ``make``/``model``
  (``©mak``/``©mod``), ``encoder``/``©swr`` as the software.

Each value names the tag it came from (``…_source``). Strings from the file are kept as
found (capped in length); numbers are checked for range, never trusted.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

MAX_TAG = 256  # characters kept of a metadata string (hostile files carry megabytes)

_TIME_TAGS = ("creation_time", "date", "com.apple.quicktime.creationdate", "DATE_RECORDED")
_GPS_TAGS = ("com.apple.quicktime.location.ISO6709", "location", "location-eng")
_DEVICE_TAGS = {
    "make": ("com.apple.quicktime.make", "make", "make-eng"),
    "model": ("com.apple.quicktime.model", "model", "model-eng"),
    "software": ("com.apple.quicktime.software", "software", "encoder"),
}
_ISO6709 = re.compile(r"^\s*([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?")


def parse_iso6709(text: str) -> tuple[float, float, float | None] | None:
    """(latitude, longitude, altitude) of a decimal-degrees ISO 6709 string, or None."""
    found = _ISO6709.match(text or "")
    if not found:
        return None
    lat, lon = float(found.group(1)), float(found.group(2))
    alt = float(found.group(3)) if found.group(3) else None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    return lat, lon, alt


def parse_time(text: str) -> str | None:
    """An ISO 8601 UTC timestamp (``…Z``) from FFmpeg's tag text, or None if unreadable."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    if stamp.year < 1971:  # zero epochs (1904, 1970) mean "not set"
        return None
    return stamp.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _tags(*dicts: dict[str, str]) -> dict[str, str]:
    """Tags by exact name and by lower-case name (Matroska tags come in upper case)."""
    out: dict[str, str] = {}
    for tags in dicts:
        for key, value in tags.items():
            for name in (key, key.lower()):
                out.setdefault(name, str(value)[:MAX_TAG])
    return out


def describe(container: Any) -> dict[str, Any]:
    """The metadata of an opened PyAV container (its first video stream)."""
    info: dict[str, Any] = {"container": container.format.name[:MAX_TAG]}
    duration = container.duration  # microseconds (AV_TIME_BASE)
    video = container.streams.video[0] if container.streams.video else None
    if (duration is None or duration <= 0) and video is not None and video.duration \
            and video.time_base:
        duration = int(video.duration * video.time_base * 1_000_000)
    info["duration"] = round(duration / 1_000_000, 3) if duration and duration > 0 else None
    info["bit_rate"] = container.bit_rate or None
    info["audio"] = bool(container.streams.audio)
    stream_tags: dict[str, str] = {}
    if video is not None:
        ctx = video.codec_context
        info.update(width=ctx.width or None, height=ctx.height or None,
                    codec=(ctx.codec.canonical_name or "")[:MAX_TAG] or None,  # as ffprobe
                    pixel_format=ctx.pix_fmt[:MAX_TAG] if ctx.pix_fmt else None)
        rate = video.average_rate or video.base_rate
        info["fps"] = round(float(rate), 3) if rate else None
        info["frames_declared"] = video.frames or None
        stream_tags = dict(video.metadata)
    tags = _tags(dict(container.metadata))
    for name in _TIME_TAGS:
        stamp = parse_time(tags.get(name) or tags.get(name.lower(), ""))
        if stamp:
            info["creation_time"], info["creation_time_source"] = stamp, name
            break
    else:
        stamp = parse_time(_tags(stream_tags).get("creation_time", ""))
        if stamp:
            info["creation_time"] = stamp
            info["creation_time_source"] = "stream creation_time"
    for name in _GPS_TAGS:
        point = parse_iso6709(tags.get(name, ""))
        if point:
            info["gps_latitude"], info["gps_longitude"], info["gps_altitude"] = point
            info["gps_source"] = name
            break
    for field, names in _DEVICE_TAGS.items():
        for name in names:
            if tags.get(name):
                info[field] = tags[name]
                break
    return info
