"""Pictures inside any byte stream: JPEG, PNG, GIF, BMP, WebP and HEIF/AVIF at an offset.

Three steps, cheapest first, so a worker can run the first on the chunks it already reads:

1. **candidates** — signature search (each signature's first two bytes, then the rest)
   plus the few header checks a signature allows (a JPEG marker after FF D8 FF, PNG's
   IHDR, a sane BMP header, a RIFF/WEBP chunk, an ``ftyp`` box with a HEIF brand), in
   numpy over all candidates at once, so hostile bytes cannot make it a Python loop;
2. **structure** — :mod:`ingest.derive.picture_ends` walks the picture to its real end,
   bounded against hostile input;
3. **decode** — Pillow (pillow-heif for HEIC) decodes the whole picture; a picture counts
   only if it decodes, so chance signatures and truncated pictures are not reported
   (memory is bounded: see :func:`decodes_stream` for the pixel caps).

A picture found inside another found picture (an EXIF thumbnail inside a JPEG) is not
reported again; when the stream itself is a picture starting at offset 0, only the bytes
after its end are searched (``copy /b pic.jpg + other.jpg``). At most
:data:`MAX_CANDIDATES` candidates are taken from one stream; past that the scan stops and
:class:`LimitExceeded` (limit ``picture-candidates``) says where.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

import numpy as np
from PIL import Image

from ingest.derive.base import Child, LimitExceeded, RangeStream
from ingest.derive.picture_ends import ENDS, HEIF_BRANDS, MAX_PICTURE, ReadAt, bmp_fields_ok
from ingest.libraries import register_heif_opener
from ingest.location import Derivation

VERSION = "1"
MAX_CANDIDATES = 10_000  # per stream
WALK_BUDGET = 4  # structure walks may read this many times the stream's size in all
MAX_PIXELS = 178_000_000  # Pillow refuses more (twice its MAX_IMAGE_PIXELS) as a bomb
MAX_FULL_PIXELS = 64_000_000  # decoded at full size up to this (≤ 256 MB as RGBA)
OVERLAP = 24  # bytes kept between chunks: ≥ the longest signature check (18) + the ftyp shift
EXTENSIONS = {"jpeg": "jpg", "png": "png", "gif": "gif", "bmp": "bmp", "webp": "webp",
              "heic": "heic"}

# signature → (kind, where the picture starts relative to the signature, bytes needed)
_SIGNATURES: tuple[tuple[bytes, str, int, int], ...] = (
    (b"\xff\xd8\xff", "jpeg", 0, 4),
    (b"\x89PNG\r\n\x1a\n", "png", 0, 16),
    (b"GIF8", "gif", 0, 6),
    (b"BM", "bmp", 0, 18),
    (b"RIFF", "webp", 0, 16),
    (b"ftyp", "heic", -4, 12),
)


_PAIRS = tuple(np.uint16(int.from_bytes(sig[:2], "little")) for sig, *_ in _SIGNATURES)
_BEFORE, _AFTER = 4, 18  # the checks read from 4 bytes before a signature to 18 after it
_COLUMNS = np.arange(-_BEFORE, _AFTER)
SMALL = 8 << 10  # bytes: below this a regular expression finds the pairs faster than numpy
HITS_AT_ONCE = 1 << 16  # pairs checked together (their windows' indices: 11.5 MB at most)
# Up to this many pairs are first matched to their whole signature one by one: in most
# files none is one, and numpy's per-call cost for the checks (~0.1 ms) was most of the
# scan of a small file (issue 18: ~7 % of a worker's time on the many-small image).
FEW_HITS = 64
_BY_PAIR = {sig[:2]: sig for sig, *_ in _SIGNATURES}
# No signature's second byte starts a signature, so pairs never overlap one another and
# the expression's non-overlapping matches are every pair.
assert not {sig[1] for sig, *_ in _SIGNATURES} & {sig[0] for sig, *_ in _SIGNATURES}
_PAIR_SEARCH = re.compile(b"|".join(re.escape(sig[:2]) for sig, *_ in _SIGNATURES))


def _pair_hits(data: bytes, array: np.ndarray) -> np.ndarray:
    """Offsets where any signature's first two bytes are, in order.

    In a large buffer every byte pair is read as one little-endian 16-bit word, at even
    and at odd offsets: twelve comparisons of half the bytes each, instead of one pass
    per signature over every byte and a position list for each signature's first byte
    (0xFF alone is 1 in 256 of random data, and far more of machine code). A small one
    (most files) costs more in numpy's per-call overhead than in bytes.
    """
    if len(data) < SMALL:
        return np.array([m.start() for m in _PAIR_SEARCH.finditer(data)], dtype=np.intp)
    parts = []
    for start in (0, 1):
        words = (len(array) - start) // 2
        pairs = array[start: start + 2 * words].view("<u2")
        mask = pairs == _PAIRS[0]
        scratch = np.empty(words, dtype=bool)
        for pair in _PAIRS[1:]:
            np.equal(pairs, pair, out=scratch)
            mask |= scratch
        parts.append(np.flatnonzero(mask) * 2 + start)
    return np.sort(np.concatenate(parts))


def _whole_signatures(data: bytes, hits: np.ndarray) -> np.ndarray:
    """The pairs among a few ``hits`` that begin their whole signature (a subset of what
    :func:`_checked` keeps, which checks the whole signature too)."""
    return np.array([at for at in hits.tolist()
                     if data.startswith(_BY_PAIR[data[at:at + 2]], at)], dtype=np.intp)


def _u32(window: np.ndarray, column: int, order: str = "<", count: int = 1) -> np.ndarray:
    """The ``count`` 32-bit integers from ``column`` (relative to the signature) of each
    window row: a column of them, or ``count`` columns."""
    at = column + _BEFORE
    words = np.ascontiguousarray(window[:, at: at + 4 * count]).view(order + "u4")
    return (words[:, 0] if count == 1 else words).astype(np.int64)


def _among(window: np.ndarray, column: int, values: Iterable[bytes]) -> np.ndarray:
    """Rows whose bytes at ``column`` are one of ``values`` (all of one length)."""
    choices = list(values)
    at = column + _BEFORE
    part = window[:, at: at + len(choices[0])]
    ok = np.zeros(len(window), dtype=bool)
    for value in choices:
        ok |= (part == np.frombuffer(value, dtype=np.uint8)).all(axis=1)
    return ok


def _plausible(kind: str, window: np.ndarray) -> np.ndarray:
    """The header checks a signature allows, for each row (the signature at column 0)."""
    if kind == "jpeg":
        marker = window[:, 3 + _BEFORE]
        return (marker >= 0xC0) & (marker <= 0xFE)
    if kind == "png":
        return _among(window, 8, [b"\x00\x00\x00\x0dIHDR"])
    if kind == "gif":
        return _among(window, 4, [b"7a", b"9a"])
    if kind == "bmp":
        fields = _u32(window, 2, count=4)
        return bmp_fields_ok(*fields.T)
    if kind == "webp":
        return _among(window, 8, [b"WEBPVP8 ", b"WEBPVP8L", b"WEBPVP8X"])
    box = _u32(window, -4, ">")
    return (box >= 16) & (box <= 4096) & _among(window, 4, HEIF_BRANDS)


def _checked(array: np.ndarray, hits: np.ndarray, base: int) -> list[tuple[int, str]]:
    """The candidates among ``hits`` (pair offsets in ``array``): each signature whole and
    its header checks, on a window of bytes around every pair."""
    size = len(array)
    pairs = array[hits].astype(np.uint16) | (array[hits + 1].astype(np.uint16) << 8)
    present = set(pairs.tolist())
    # Bytes outside the buffer read as its edge bytes; a signature that needs them is
    # dropped by the bounds check.
    windows = array[np.clip(hits[:, None] + _COLUMNS, 0, size - 1)]
    found: list[tuple[int, str]] = []
    for (signature, kind, shift, needed), pair in zip(_SIGNATURES, _PAIRS, strict=True):
        if int(pair) not in present:
            continue
        rows = pairs == pair
        at, window = hits[rows], windows[rows]
        ok = (at + shift >= 0) & (at + shift + needed <= size)
        ok &= (window[:, _BEFORE: _BEFORE + len(signature)]
               == np.frombuffer(signature, dtype=np.uint8)).all(axis=1)
        ok &= _plausible(kind, window)
        found.extend((base + offset + shift, kind) for offset in at[ok].tolist())
    return found


def find_signatures(data: bytes, base: int = 0) -> list[tuple[int, str]]:
    """Candidates ``(base + offset, kind)`` in ``data``, sorted by offset.

    A signature whose header checks would need bytes past the end of ``data`` is left out
    (an incremental caller keeps :data:`OVERLAP` bytes and sees it again). The byte pairs
    that start a signature (:func:`_pair_hits`), then, in numpy, each signature and its
    header checks on a small window around every such pair: a stream made of nothing but
    near-signatures (``BMBMBM…``) costs array passes, not a Python step per pair.
    """
    size = len(data)
    if size < 2:
        return []
    array = np.frombuffer(data, dtype=np.uint8)
    if data[0] == 0 == data[-1] and not array.any():  # zeroed space, common in images
        return []
    hits = _pair_hits(data, array)
    if hits.size <= FEW_HITS:
        hits = _whole_signatures(data, hits)
    if not hits.size:
        return []
    found: list[tuple[int, str]] = []
    for first in range(0, hits.size, HITS_AT_ONCE):
        found.extend(_checked(array, hits[first: first + HITS_AT_ONCE], base))
    found.sort()
    return found


def picture_at(read_at: ReadAt, offset: int, limit: int) -> tuple[str, int] | None:
    """``(kind, end)`` if a complete picture's structure starts at ``offset``, else None.

    Structure only, no decode: "is this whole file a picture, and where does it end?"
    (``end < limit`` means data follows the picture).
    """
    head = read_at(offset, OVERLAP)
    hits = find_signatures(head, offset)
    for at, kind in hits:
        if at == offset:
            end = ENDS[kind](read_at, offset, limit)
            if end is not None:
                return kind, end
    return None


def picture_end(stream: BinaryIO, size: int) -> tuple[str, int] | None:
    """:func:`picture_at` offset 0 of a seekable stream: is this file a picture, and where
    does it end (``end < size``: something is appended)?"""
    def read_at(offset: int, length: int) -> bytes:
        stream.seek(offset)
        return stream.read(length)

    return picture_at(read_at, 0, size)


class _BudgetSpent(Exception):
    """The structure walks of one stream read their allowance."""


def decodes(data: bytes) -> bool:
    """Whether Pillow decodes every pixel of ``data`` (a truncated picture does not)."""
    return decodes_stream(io.BytesIO(data))


def decodes_stream(stream: BinaryIO, draft_jpeg: bool = False) -> bool:
    """As :func:`decodes`, reading from a stream (Pillow reads it as it decodes).

    Every pixel's data is decoded, within bounded memory: up to :data:`MAX_FULL_PIXELS`
    at full size; a larger JPEG at 1/8 scale (libjpeg still decodes all its entropy-coded
    data, so truncation and damage still fail); a larger picture of another kind, or any
    picture over :data:`MAX_PIXELS`, does not count as decodable.
    """
    register_heif_opener()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # damaged EXIF, bomb warnings: the caps decide
            with Image.open(stream) as image:
                pixels = image.width * image.height
                if pixels > MAX_PIXELS:
                    return False
                if pixels > MAX_FULL_PIXELS or (draft_jpeg and image.format == "JPEG"):
                    if image.format != "JPEG":
                        return False
                    image.draft(image.mode, (image.width // 8, image.height // 8))
                image.load()
                frames = getattr(image, "n_frames", 1)
                for frame in range(1, min(frames, 16)):  # animated: a few frames suffice
                    image.seek(frame)
                    image.load()
    except Exception:  # Pillow raises many types on damaged data: all mean "no"
        return False
    return True


def _ext(kind: str, read_at: ReadAt, offset: int) -> str:
    if kind == "heic" and read_at(offset + 8, 4) == b"avif":
        return "avif"
    return EXTENSIONS[kind]


class EmbeddedPictureScanner:
    """Pictures at any offset of a stream (see the module docstring).

    ``candidates`` keeps state between chunks (the overlap and the count): use one scanner
    per stream for it. ``children`` itself is stateless.
    """

    method_prefix = "embedded-"
    version = VERSION

    def __init__(self) -> None:
        self._tail = b""
        self._tail_offset = 0
        self.count = 0
        self.stopped_at: int | None = None  # where MAX_CANDIDATES stopped the search

    def candidates(self, chunk: bytes, chunk_offset: int) -> list[tuple[int, str]]:
        """Candidates in the next chunk of a stream read front to back; ``(offset, kind)``.

        Signatures split across chunk boundaries are found: the last :data:`OVERLAP` bytes
        are searched with the next chunk (a picture cannot fit in them). A chunk that does
        not follow the previous one starts a new search.
        """
        if self.stopped_at is not None:
            return []
        if chunk_offset != self._tail_offset + len(self._tail):
            self._tail, self._tail_offset = b"", chunk_offset
        data = self._tail + chunk
        base = self._tail_offset
        cut = max(len(data) - OVERLAP, 0)
        found = [hit for hit in find_signatures(data, base) if hit[0] - base < cut]
        if self.count + len(found) > MAX_CANDIDATES:
            self.stopped_at = found[MAX_CANDIDATES - self.count][0]
            found = found[: MAX_CANDIDATES - self.count]
        self.count += len(found)
        self._tail, self._tail_offset = data[cut:], base + cut
        return found

    def children(self, stream: BinaryIO, size: int, name: str,
                 candidates: Iterable[tuple[int, str]] | None = None,
                 skip: Iterable[tuple[int, int]] = ()) -> Iterator[Child]:
        """Each real picture among ``candidates`` (all of the stream's if None), in order.

        ``skip`` lists ``(start, end)`` ranges not to report from (already known content).
        A candidate at offset 0 is the stream itself, never its own child: if its structure
        is complete, everything up to its end is skipped. The walks together read at most
        :data:`WALK_BUDGET` times the stream's size (plus one :data:`MAX_PICTURE`), so
        thousands of overlapping fake headers cannot make the scan quadratic.
        """
        budget = [WALK_BUDGET * size + MAX_PICTURE]

        def read_at(offset: int, length: int) -> bytes:
            if budget[0] <= 0:
                raise _BudgetSpent
            stream.seek(offset)
            data = stream.read(length)
            budget[0] -= len(data)
            return data

        if candidates is None:
            candidates = self._scan(read_at, size)
        ordered = sorted(set(candidates))
        covered = [(int(a), int(b)) for a, b in skip]
        reported_end = offset = 0
        try:
            if ordered and ordered[0][0] == 0:
                whole = ENDS[ordered[0][1]](read_at, 0, size)
                reported_end = whole or 0
            for offset, kind in ordered:
                if offset == 0 or offset < reported_end or any(
                        a <= offset < b for a, b in covered):
                    continue
                end = ENDS[kind](read_at, offset, size)
                if end is None or end - offset > MAX_PICTURE:
                    continue
                if not decodes_stream(io.BufferedReader(RangeStream(stream, offset,
                                                                    end - offset))):
                    continue
                reported_end = end
                length = end - offset
                step = Derivation(self.method_prefix + kind, self.version, offset=offset,
                                  length=length)
                yield Child(step, f"{name}@{offset}.{_ext(kind, read_at, offset)}",
                            _range_opener(stream, offset, length), size=length)
        except _BudgetSpent:
            raise LimitExceeded("picture-scan-bytes",
                                f"picture structure walks read {WALK_BUDGET} × the stream's "
                                f"size; candidates from offset {offset} on were not checked"
                                ) from None
        if self.stopped_at is not None:
            raise LimitExceeded("picture-candidates",
                                f"more than {MAX_CANDIDATES} picture signatures: the "
                                f"search stopped at offset {self.stopped_at}")

    def _scan(self, read_at: ReadAt, size: int) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        chunk = 1 << 20
        for offset in range(0, size, chunk):
            found.extend(self.candidates(read_at(offset, chunk), offset))
            if self.stopped_at is not None:
                break
        return found


def _range_opener(stream: BinaryIO, offset: int, length: int) -> Callable[[], BinaryIO]:
    def open_range() -> BinaryIO:
        return RangeStream(stream, offset, length)  # type: ignore[return-value]
    return open_range
