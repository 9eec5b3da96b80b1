"""Decode a video from a file-like object and hash the sampled frames as vPDQ does.

The reference hasher (``vpdq-hash-video``, ThreatExchange) decodes every frame in order,
numbers them from 0 as the decoder returns them, and hashes frame ``n`` when
``n % int(seconds_per_hash × fps) == 0``, where fps is the stream's average frame rate
(its real frame rate when that is unknown). Each hashed frame is converted to RGB24 at
its full size (libswscale) and given to PDQ's float-luma hasher without a 512 px resize;
its timestamp is ``n / fps``. We do the same through PyAV and the ``pdqhash`` binding
of the same C++ code, so hashes agree with the reference bit for bit on the clips the
tests make (``tests/test_video.py``). Seeking to keyframes would decode less, but the
frames it lands on are not the reference's: hashes then differ by more than the match
threshold on moving scenes, so every frame is decoded (cheap next to hashing).

Limits, checked before and during decoding so that a hostile file costs bounded time
and memory: :class:`Budget` (pixels per frame, frames decoded, frames hashed, seconds).
When one is reached decoding stops and the findings say which (``budget_reached``);
what was hashed until then is kept.

The contact sheet: up to ``sheet_frames`` of the hashed frames, evenly spaced, each
reduced to ``sheet_height`` pixels high, side by side in one JPEG without metadata.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import IO, TYPE_CHECKING, Any

import numpy
import pdqhash
from PIL import Image

from analyzers.base import AnalyzerError
from analyzers.video.vpdq import Frame

if TYPE_CHECKING:
    import av

MIN_HASHABLE_SIDE = 5  # the reference's MIN_HASHABLE_DIM
MAX_THUMBS = 64  # thumbnails kept for the contact sheet while decoding


@dataclass(frozen=True)
class Budget:
    """How much one video may cost."""

    seconds_per_hash: float = 1.0  # sampling interval, as the reference's -r
    max_pixels: int = 8192 * 4352  # per frame (8K DCI); larger frames are refused
    max_decoded: int = 200_000  # frames decoded (an endless stream stops here)
    max_hashed: int = 3_600  # frames hashed: one hour at 1 fps
    max_seconds: float = 90.0  # wall time decoding and hashing
    sheet_frames: int = 8
    sheet_height: int = 90

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> Budget:
        """A budget from the examiner's text settings, each checked against its field."""
        kinds = {f.name: (float if f.type in ("float", float) else int) for f in fields(cls)}
        unknown = sorted(set(settings) - set(kinds))
        if unknown:
            raise ValueError(f"unknown video setting(s) {', '.join(unknown)};"
                             f" known: {', '.join(kinds)}")
        values: dict[str, float | int] = {}
        for key, text in settings.items():
            try:
                values[key] = kinds[key](text)
            except ValueError:
                raise ValueError(f"video setting {key} must be a number, got {text!r}") from None
        return cls(**values)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if self.seconds_per_hash < 0:
            raise ValueError(f"seconds_per_hash must be ≥ 0, got {self.seconds_per_hash}")
        if min(self.max_pixels, self.max_decoded, self.max_hashed, self.sheet_height) < 1:
            raise ValueError("video budget limits must be positive")


@dataclass
class Sampled:
    """What decoding gave: the hashes, the sheet's raw material and the costs."""

    frames: list[Frame] = field(default_factory=list)
    thumbs: list[Image.Image] = field(default_factory=list)
    decoded: int = 0
    fps: float = 0.0
    thumb_stride: int = 1  # keep every n-th hashed frame's thumbnail (bounded memory)
    budget_reached: str | None = None
    decode_errors: int = 0
    seconds: float = 0.0


def frame_rate(stream: Any) -> float:
    """The reference's choice: average frame rate, else the real (base) frame rate."""
    for rate in (stream.average_rate, stream.base_rate, stream.guessed_rate):
        if rate is not None and rate.numerator and rate.denominator:
            return float(rate)
    return 0.0


def pdq_of_rgb(rgb: numpy.ndarray) -> tuple[str, int]:
    """PDQ hex and quality of a full-size RGB24 frame (no resize, as vpdq)."""
    bits, quality = pdqhash.compute(numpy.ascontiguousarray(rgb))
    return numpy.packbits(bits.astype(numpy.uint8)).tobytes().hex(), int(quality)


def sample(source: IO[bytes], budget: Budget) -> tuple[av.container.InputContainer, Sampled]:
    """Open ``source`` and hash its first video stream's sampled frames."""
    import av  # here, not at import: FFmpeg's libraries load only where a video is read

    try:
        container = av.open(source, mode="r", metadata_errors="replace")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise AnalyzerError(f"cannot open as a video: {exc}") from exc
    try:
        return container, _sample(container, budget)
    except BaseException:
        container.close()
        raise


def _sample(container: av.container.InputContainer, budget: Budget) -> Sampled:
    import av

    out = Sampled()
    if not container.streams.video:
        return out
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > budget.max_pixels:
        out.budget_reached = (f"frame size {width}x{height} exceeds {budget.max_pixels} pixels;"
                              " not decoded")
        return out
    out.fps = frame_rate(stream)
    if out.fps <= 0:
        out.budget_reached = "frame rate unknown; not decoded"
        return out
    modulo = max(1, int(budget.seconds_per_hash * out.fps))
    started = time.monotonic()
    try:
        for index, frame in enumerate(container.decode(stream)):
            out.decoded = index + 1
            if index % modulo == 0:
                if frame.width * frame.height > budget.max_pixels:
                    out.budget_reached = f"a frame of {frame.width}x{frame.height} exceeds" \
                                         f" {budget.max_pixels} pixels"
                    break
                _hash(frame, index, out, budget)
                if len(out.frames) >= budget.max_hashed:
                    out.budget_reached = f"{budget.max_hashed} frames hashed"
                    break
            if out.decoded >= budget.max_decoded:
                out.budget_reached = f"{budget.max_decoded} frames decoded"
                break
            if time.monotonic() - started > budget.max_seconds:
                out.budget_reached = f"{budget.max_seconds:g} s of decoding"
                break
    except av.FFmpegError as exc:
        # A damaged stream: keep what was decoded, say where it broke.
        out.decode_errors += 1
        if out.decoded == 0:
            raise AnalyzerError(f"cannot decode the video stream: {exc}") from exc
        out.budget_reached = f"decoding stopped after frame {out.decoded}: {exc}"
    out.seconds = time.monotonic() - started
    return out


def _hash(frame: av.VideoFrame, index: int, out: Sampled, budget: Budget) -> None:
    if frame.width < MIN_HASHABLE_SIDE or frame.height < MIN_HASHABLE_SIDE:
        return
    rgb = frame.to_ndarray(format="rgb24")
    pdq, quality = pdq_of_rgb(rgb)
    out.frames.append(Frame(pdq, quality, round(index / out.fps, 6), index))
    if (len(out.frames) - 1) % out.thumb_stride:
        return
    if len(out.thumbs) >= MAX_THUMBS:  # halve, keep even spacing
        out.thumbs = out.thumbs[::2]
        out.thumb_stride *= 2
        if (len(out.frames) - 1) % out.thumb_stride:
            return
    side = budget.sheet_height
    image = Image.fromarray(rgb)
    width = max(1, round(image.width * side / image.height))
    image.thumbnail((width, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    out.thumbs.append(image)


def contact_sheet(thumbs: list[Image.Image], count: int) -> tuple[bytes, list[int]] | None:
    """JPEG strip of ``count`` evenly spaced thumbnails, and which ones (indices)."""
    if not thumbs or count < 1:
        return None
    n = min(count, len(thumbs))
    chosen = sorted({round(i * (len(thumbs) - 1) / max(1, n - 1)) for i in range(n)})
    tiles = [thumbs[i] for i in chosen]
    sheet = Image.new("RGB", (sum(t.width for t in tiles), max(t.height for t in tiles)))
    x = 0
    for tile in tiles:
        sheet.paste(tile.convert("RGB"), (x, 0))
        x += tile.width
    buf = io.BytesIO()
    sheet.save(buf, format="JPEG", quality=75, optimize=False, progressive=False)
    return buf.getvalue(), chosen
