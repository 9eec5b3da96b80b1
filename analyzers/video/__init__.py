"""Videos: container metadata, vPDQ hashes of sampled frames, and a contact sheet.

The analyzer is a ``"random"`` one: it gets a seekable file object over the evidence
(the worker's TSK-backed stream; in memory only where the caller has nothing else) and
hands it to PyAV (FFmpeg, from the wheel) — nothing is copied to disk or held whole in
memory — and:

1. reads the container's metadata (``container.py``: duration, size, codec, frame rate,
   bit rate, creation time, GPS, device);
2. decodes the first video stream and hashes one frame per second the way
   ThreatExchange's ``vpdq-hash-video`` does (``frames.py``), within a :class:`Budget`;
3. makes a contact sheet of evenly spaced hashed frames (a small JPEG, moved out of the
   record like a picture's thumbnail and blurred in the report by default).

Findings (``video``): the metadata fields, ``vpdq`` (python-threatexchange's JSON list
form, as a list of ``"pdq,quality,timestamp"`` strings), ``vpdq_frames`` (the frame
numbers, so the reference's per-frame file can be rebuilt), ``frames_decoded``,
``frames_hashed``, ``budget_reached`` (null, or which limit stopped decoding),
``contact_sheet`` (``sha256``, ``width``, ``height``, ``timestamps``) and
``blob_base64`` (the sheet's JPEG; the worker moves it beside the record).

A file FFmpeg cannot open or decode raises :class:`AnalyzerError` (an error record, the
run goes on); one that crashes FFmpeg costs only its batch's worker process, which the
pipeline's splitting and watchdog (``pipeline/run/``) turn into one failed file.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Mapping
from typing import Any, BinaryIO

import numpy
from PIL import Image

from analyzers.base import Analyzer, AnalyzerError, Findings
from analyzers.video.container import describe
from analyzers.video.frames import Budget, contact_sheet, sample
from ingest.location import FileEntry

VIDEO_MIMES = frozenset({
    "application/vnd.ms-asf", "application/x-matroska", "image/gif",
})


# MPEG transport streams have no magic number libmagic knows (a 0x47 sync byte every 188
# bytes): a file libmagic cannot name is tried when its name says it is one.
TRANSPORT_STREAM_EXTENSIONS = frozenset({"ts", "mts", "m2ts", "m2t", "tod"})


def is_video(mime: str, extension: str = "") -> bool:
    """Types we try: every ``video/*``, the few containers libmagic names otherwise, and
    unnamed data whose extension is a transport stream's."""
    if mime == "application/octet-stream":
        return extension in TRANSPORT_STREAM_EXTENSIONS
    return mime.startswith("video/") or mime in VIDEO_MIMES


class VideoAnalyzer(Analyzer):
    """Metadata, vPDQ and a contact sheet of every video, read by seeking in the evidence."""

    name = "video"
    version = "1.0.0"
    input = "random"
    max_size = 64 * 1024 * 1024 * 1024  # read by seeking: size costs time, not memory

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget or Budget()

    @classmethod
    def configured(cls, settings: Mapping[str, str]) -> VideoAnalyzer:
        """``--setting video.seconds_per_hash=0.5`` and the other ``Budget`` fields."""
        return cls(Budget.from_settings(settings))

    def applies_to(self, entry: FileEntry, findings: dict[str, Findings]) -> bool:
        mime = findings.get("filetype", {}).get("mime") or ""
        return entry.kind == "file" and is_video(mime, entry.extension)

    def analyze_file(self, source: BinaryIO, entry: FileEntry,
                     findings: dict[str, Findings]) -> Findings:
        return analyze_video(source, self.budget)

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        from importlib.metadata import version

        import av

        versions = {"av": av.__version__, "pdqhash": version("pdqhash"),
                    "numpy": numpy.__version__, "pillow": Image.__version__}
        for lib, ver in av.library_versions.items():
            versions[lib] = ".".join(str(v) for v in ver)
        return versions


def analyze_video(source: BinaryIO | io.BytesIO, budget: Budget) -> Findings:
    """Findings for one video read from a seekable file object."""
    import av

    container, sampled = sample(source, budget)
    try:
        info: dict[str, Any] = describe(container)
    except (av.FFmpegError, ValueError, AttributeError) as exc:
        raise AnalyzerError(f"cannot read the video's metadata: {exc}") from exc
    finally:
        container.close()
    if not sampled.frames and info.get("width") is None and sampled.budget_reached is None:
        raise AnalyzerError(f"no video stream in this {info['container']} file")
    info.update(
        vpdq=[f.compact() for f in sampled.frames],
        vpdq_frames=[f.number for f in sampled.frames],
        seconds_per_hash=budget.seconds_per_hash,
        frames_decoded=sampled.decoded,
        frames_hashed=len(sampled.frames),
        budget_reached=sampled.budget_reached,
    )
    sheet = contact_sheet(sampled.thumbs, budget.sheet_frames)
    if sheet is not None:
        jpeg, chosen = sheet
        stride = sampled.thumb_stride
        info["contact_sheet"] = {
            "sha256": hashlib.sha256(jpeg).hexdigest(),
            "bytes": len(jpeg),
            "frames": len(chosen),
            "timestamps": [sampled.frames[i * stride].timestamp for i in chosen
                           if i * stride < len(sampled.frames)],
        }
        info["blob_base64"] = base64.b64encode(jpeg).decode("ascii")
    return info


__all__ = ["Budget", "VideoAnalyzer", "analyze_video", "is_video"]
