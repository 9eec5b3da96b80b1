"""Carving: pictures and videos at block starts of unallocated space, walked to their end.

Files start on a block boundary, so — like PhotoRec — only the first bytes of every
512-byte sector are looked at (numpy, on a strided view of each large read): the scan
costs little more than reading the bytes, and a JPEG's EXIF thumbnail (never aligned,
and inside its picture anyway) is not a separate find. Each candidate is walked to its
real end by the structure walkers (:mod:`ingest.derive.picture_ends`,
:mod:`ingest.carve.formats`) over a :class:`~ingest.carve.view.RunView`, so a picture
that skips an allocated block is still read whole. Only a picture that decodes counts;
a plausible header whose structure does not complete is recorded as partial, with the
format and dimensions its header still gives.

A scan covers view offsets ``start .. stop`` but may read past ``stop`` (the lookahead the
caller gives the view): a picture that begins in the range is found whole even when it
ends in the next one, and the next range does not report it (it did not begin there).
Bounded against hostile input: the structure walks of one range read at most
:data:`WALK_BUDGET` times the range (plus one :data:`MAX_PICTURE`); at most
:data:`MAX_PARTIALS` partial finds are listed (all are counted).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ingest.carve.formats import OTHER_HEADERS, VIDEO_ENDS, VIDEO_EXTENSIONS, video_brand_ok
from ingest.carve.view import RunView, ViewStream
from ingest.derive.picture_ends import ENDS, HEIF_BRANDS, MAX_PICTURE, bmp_header_ok
from ingest.derive.pictures import EXTENSIONS, decodes_stream
from ingest.libraries import register_heif_opener

VERSION = "1"
ALIGN = 512  # bytes: candidates are looked for at image offsets that are multiples of this
CHUNK = 8 << 20  # bytes per sequential read
HEAD = 32  # bytes of a block's start the signature checks need
WALK_BUDGET = 4
MAX_PARTIALS = 1000
HEADER_READ = 64 << 10  # bytes a partial find's header is read from
MAX_OTHER_OFFSETS = 100  # offsets listed per other-header name (all are counted)
PICTURES = frozenset(ENDS)
VIDEOS = frozenset(VIDEO_ENDS)
MODES = ("none", "pictures", "all")

_FIRST = {0xFF: "jpeg", 0x89: "png", 0x47: "gif", 0x42: "bmp", 0x52: "riff"}


@dataclass(frozen=True, slots=True)
class CarveHit:
    """One complete picture or video: where it is in the view and in the image."""

    kind: str  # jpeg, png, gif, bmp, webp, heic, mp4, avi
    family: str  # "picture" or "video"
    start: int  # view offset
    length: int
    runs: tuple[tuple[int, int], ...]  # image byte runs, in order
    extension: str


@dataclass
class CarveSummary:
    """What one range's scan saw: the record the range itself gets."""

    bytes: int = 0
    candidates: int = 0
    found: dict[str, int] = field(default_factory=dict)
    partial: list[dict[str, Any]] = field(default_factory=list)
    partial_count: int = 0
    other_headers: dict[str, dict[str, Any]] = field(default_factory=dict)
    limit: str | None = None  # why the scan stopped early, if it did

    def to_dict(self) -> dict[str, Any]:
        return {"method": f"carved {VERSION}", "align": ALIGN, "bytes": self.bytes,
                "candidates": self.candidates, "found": dict(sorted(self.found.items())),
                "partial_count": self.partial_count, "partial": self.partial,
                "other_headers": dict(sorted(self.other_headers.items())),
                "limit": self.limit}


def _decodes(stream: io.BufferedReader) -> bool:
    """Whether the picture decodes; JPEGs at 1/8 scale (every block's entropy-coded data is
    still decoded, so truncation and damage still fail; only the full IDCT is spared)."""
    return decodes_stream(stream, draft_jpeg=True)


class _BudgetSpent(Exception):
    pass


def _candidate(head: bytes, others: bool) -> list[str]:
    """The kinds a block starting with ``head`` may be (header checks included)."""
    kinds: list[str] = []
    guess = _FIRST.get(head[0]) if head else None
    if guess == "jpeg" and head[1:3] == b"\xd8\xff" and 0xC0 <= head[3] <= 0xFE:
        kinds.append("jpeg")
    elif guess == "png" and head[:16] == b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR":
        kinds.append("png")
    elif guess == "gif" and head[:6] in (b"GIF87a", b"GIF89a"):
        kinds.append("gif")
    elif guess == "bmp" and bmp_header_ok(head[:18]):
        kinds.append("bmp")
    elif guess == "riff" and head[:4] == b"RIFF":
        if head[8:16] in (b"WEBPVP8 ", b"WEBPVP8L", b"WEBPVP8X"):
            kinds.append("webp")
        elif head[8:12] == b"AVI ":
            kinds.append("avi")
    if head[4:8] == b"ftyp":
        if head[8:12] in HEIF_BRANDS and 16 <= int.from_bytes(head[:4], "big") <= 4096:
            kinds.append("heic")
        elif video_brand_ok(head):
            kinds.append("mp4")
    if others and not kinds:
        kinds.extend(f"other:{name}" for name, sig, at in OTHER_HEADERS
                     if head[at: at + len(sig)] == sig)
    return kinds


def _block_heads(data: bytes, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets in ``data`` of the aligned blocks from ``first`` on, and their first bytes."""
    array = np.frombuffer(data, dtype=np.uint8)
    offsets = np.arange(first, len(data), ALIGN)
    return offsets, array[offsets]


class Carver:
    """Carve one range of a view; iterate :meth:`scan`, then read :attr:`summary`."""

    def __init__(self, view: RunView, kinds: frozenset[str], others: bool = False,
                 decodes: Callable[[io.BufferedReader], bool] | None = None) -> None:
        unknown = kinds - PICTURES - VIDEOS
        if unknown:
            raise ValueError(f"cannot carve {sorted(unknown)}")
        self.view = view
        self.kinds = kinds
        self.others = others
        self.summary = CarveSummary()
        self._decodes = decodes or _decodes
        self._budget = 0

    def scan(self, start: int, stop: int) -> Iterator[CarveHit]:
        """Complete pictures and videos beginning at view offsets ``start .. stop``."""
        self._budget = WALK_BUDGET * max(0, stop - start) + MAX_PICTURE
        wanted = np.array(sorted(_FIRST), dtype=np.uint8)
        skip_until = start
        for pos, image_offset, data in self.view.pieces(start, stop, CHUNK):
            self.summary.bytes += len(data)
            offsets, firsts = _block_heads(data, (-image_offset) % ALIGN)
            if self.others:
                picked = offsets
            else:
                array = np.frombuffer(data, dtype=np.uint8)
                fourth = offsets + 4
                ftyp = np.zeros(len(offsets), dtype=bool)
                inside = fourth < len(data)
                ftyp[inside] = array[fourth[inside]] == ord("f")
                picked = offsets[np.isin(firsts, wanted) | ftyp]
            for at in picked.tolist():
                where = pos + at
                if where < skip_until:
                    continue
                head = data[at: at + HEAD]
                if len(head) < HEAD:
                    head = self.view.read_at(where, HEAD)
                kinds = _candidate(head, self.others)
                if not kinds:
                    continue
                try:
                    hit = self._walk(where, kinds)
                except _BudgetSpent:
                    self.summary.limit = (f"structure walks read {WALK_BUDGET} × the range's"
                                          f" size; candidates from view offset {where} on"
                                          " were not checked")
                    return
                if hit is not None:
                    skip_until = hit.start + hit.length
                    self.summary.found[hit.kind] = self.summary.found.get(hit.kind, 0) + 1
                    yield hit

    def _read(self, pos: int, size: int) -> bytes:
        if self._budget <= 0:
            raise _BudgetSpent
        data = self.view.read_at(pos, size)
        self._budget -= len(data)
        return data

    def _walk(self, where: int, kinds: list[str]) -> CarveHit | None:
        for kind in kinds:
            if kind.startswith("other:"):
                self._other(kind[6:], where)
                continue
            if kind not in self.kinds:
                continue
            self.summary.candidates += 1
            video = kind in VIDEO_ENDS
            end = (VIDEO_ENDS if video else ENDS)[kind](self._read, where, self.view.size)
            length = 0 if end is None else end - where
            if end is not None and not video and not self._decodes(
                    io.BufferedReader(ViewStream(self.view, where, length))):
                end = None
            if end is None:
                self._partial(kind, where)
                continue
            extension = VIDEO_EXTENSIONS[kind] if video else EXTENSIONS[kind]
            if kind == "heic" and self.view.read_at(where + 8, 4) == b"avif":
                extension = "avif"
            return CarveHit(kind, "video" if video else "picture", where, length,
                            tuple(self.view.image_runs(where, length)), extension)
        return None

    def _partial(self, kind: str, where: int) -> None:
        self.summary.partial_count += 1
        if len(self.summary.partial) < MAX_PARTIALS:
            runs = self.view.image_runs(where, 1)
            found = {"kind": kind, "offset": runs[0][0] if runs else None,
                     "reason": "structure incomplete or does not decode (truncated,"
                               " fragmented or damaged)"}
            self.summary.partial.append(found | _header(self.view, where))


    def _other(self, name: str, where: int) -> None:
        found = self.summary.other_headers.setdefault(name, {"count": 0, "offsets": []})
        found["count"] += 1
        if len(found["offsets"]) < MAX_OTHER_OFFSETS:
            runs = self.view.image_runs(where, 1)
            if runs:
                found["offsets"].append(runs[0][0])


def kinds_for(mode: str) -> frozenset[str]:
    """The formats carved in a ``--carve`` mode (``all`` also names other headers)."""
    if mode not in MODES:
        raise ValueError(f"--carve must be one of {', '.join(MODES)}, not {mode!r}")
    return frozenset() if mode == "none" else PICTURES | VIDEOS


def _header(view: RunView, where: int) -> dict[str, Any]:
    """What a partial picture's header still says (format and dimensions), if Pillow reads it."""
    head = view.read_at(where, HEADER_READ)
    register_heif_opener()  # a partial HEIC's header too, whatever ran before in this process
    try:
        with Image.open(io.BytesIO(head)) as image:
            return {"format": image.format, "width": image.width, "height": image.height}
    except Exception:  # a header Pillow cannot parse either: the offset is what is known
        return {}
