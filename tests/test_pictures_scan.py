"""Pictures inside bytes: found at their exact offsets, fakes refused, hostile input bounded.

The oracle for every find is the picture file we put in (its offset, length and MD5);
the EXIF thumbnail that must *not* be reported on its own is taken out by exiftool.
"""

from __future__ import annotations

import io
import random
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest
from conftest import require_tool
from derive_helpers import md5, picture_files

from ingest.derive import LimitExceeded
from ingest.derive.picture_ends import (
    ENDS,
    HEIF_BRANDS,
    MAX_PICTURE,
    MAX_STEPS,
    bmp_header_ok,
    jpeg_end,
    png_end,
)
from ingest.derive.pictures import (
    MAX_CANDIDATES,
    SMALL,
    WALK_BUDGET,
    EmbeddedPictureScanner,
    decodes,
    find_signatures,
    picture_at,
    picture_end,
)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return picture_files(tmp_path_factory.mktemp("pictures"))


def _scan(data: bytes, chunk: int = 4096, name: str = "blob") -> list:
    scanner = EmbeddedPictureScanner()
    candidates = []
    for offset in range(0, len(data), chunk):
        candidates += scanner.candidates(data[offset: offset + chunk], offset)
    stream = io.BytesIO(data)
    found = []
    for child in scanner.children(stream, len(data), name, candidates):
        with child.open() as fh:
            found.append((child.step.offset, child.step.length, child.step.method,
                          child.name, md5(fh.read())))
    return found


class _Counting:
    """read_at over bytes that counts its calls and bytes: the bound on hostile input."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls = 0
        self.bytes = 0

    def __call__(self, offset: int, size: int) -> bytes:
        self.calls += 1
        part = self.data[offset: offset + size]
        self.bytes += len(part)
        return part


def test_every_kind_found_at_its_exact_offset_in_random_data(pictures: dict[str, Path]):
    rng = random.Random(1)
    data = bytearray(rng.randbytes(777))
    expected = []
    for kind, path in pictures.items():
        content = path.read_bytes()
        method = "embedded-" + kind.split("-")[0]
        expected.append((len(data), len(content), method, md5(content)))
        data += content + rng.randbytes(rng.randrange(1, 3000))
    for chunk in (4096, 1000, 333):  # signatures split across chunk boundaries
        found = _scan(bytes(data), chunk)
        assert [(o, n, m, h) for o, n, m, _, h in found] == expected
    names = [name for _, _, _, name, _ in found]
    assert names[0] == "blob@777.jpg" and names[-1].endswith(".heic")


def test_exif_thumbnail_is_a_candidate_but_not_a_separate_find(pictures: dict[str, Path]):
    jpeg = pictures["jpeg"].read_bytes()
    thumb = subprocess.run([require_tool("exiftool"), "-b", "-ThumbnailImage",
                            str(pictures["jpeg"])], capture_output=True, check=True).stdout
    assert len(thumb) > 1000 and decodes(thumb)
    at = jpeg.find(thumb)
    assert at > 0
    data = random.Random(2).randbytes(500) + jpeg
    assert (500 + at, "jpeg") in find_signatures(data)
    assert [(o, n) for o, n, *_ in _scan(data)] == [(500, len(jpeg))]


def test_whole_file_picture_is_skipped_and_what_follows_is_found(pictures: dict[str, Path]):
    first = pictures["jpeg"].read_bytes()
    second = pictures["png"].read_bytes()
    third = pictures["jpeg-progressive"].read_bytes()
    data = first + second + third  # `copy /b a.jpg + b.png + c.jpg`
    assert picture_at(_Counting(data), 0, len(data)) == ("jpeg", len(first))
    assert picture_at(_Counting(first), 0, len(first)) == ("jpeg", len(first))
    assert picture_end(io.BytesIO(data), len(data)) == ("jpeg", len(first))
    found = _scan(data)
    assert [(o, n, h) for o, n, _, _, h in found] == [
        (len(first), len(second), md5(second)),
        (len(first) + len(second), len(third), md5(third))]


def test_skip_ranges_are_not_reported(pictures: dict[str, Path]):
    png = pictures["png"].read_bytes()
    data = b"\0" * 100 + png + b"\0" * 100
    scanner = EmbeddedPictureScanner()
    assert list(scanner.children(io.BytesIO(data), len(data), "x", skip=[(50, 200)])) == []
    assert len(list(scanner.children(io.BytesIO(data), len(data), "x"))) == 1


@pytest.mark.parametrize("fake", ["random", "ffd8-start", "ffd8ff-inside"])
def test_fakes_are_not_pictures(fake: str):
    rng = random.Random(3)
    data = bytearray(rng.randbytes(200_000))
    if fake == "ffd8-start":
        data[0:2] = b"\xff\xd8"
    if fake == "ffd8ff-inside":
        for offset in (0, 1000, 50_000, 123_456, 199_000):
            data[offset: offset + 4] = b"\xff\xd8\xff\xe0"
    data = bytes(data)
    if fake == "ffd8ff-inside":
        assert len([c for c in find_signatures(data) if c[1] == "jpeg"]) == 5
    assert _scan(data) == []
    assert picture_at(_Counting(data), 0, len(data)) is None


def test_truncated_pictures_are_not_pictures(pictures: dict[str, Path]):
    rng = random.Random(4)
    thumb = subprocess.run([require_tool("exiftool"), "-b", "-ThumbnailImage",
                            str(pictures["jpeg"])], capture_output=True, check=True).stdout
    for kind in ("jpeg", "png", "gif", "webp", "heic", "bmp"):
        content = pictures[kind].read_bytes()
        cut = content[: len(content) * 2 // 3]
        assert not decodes(cut)
        data = rng.randbytes(300) + cut + rng.randbytes(300)
        assert ENDS[kind](_Counting(cut), 0, len(cut)) is None, kind
        found = [(o, n) for o, n, *_ in _scan(data)]
        if kind == "jpeg":  # the cut photo is no picture; its intact EXIF thumbnail is one
            assert found == [(300 + content.find(thumb), len(thumb))]
        else:
            assert found == [], kind


def test_endless_jpeg_segment_chain_stops_at_the_step_bound():
    data = b"\xff\xd8" + b"\xff\xe1\x00\x02" * (MAX_STEPS + 50_000)
    counting = _Counting(data)
    assert jpeg_end(counting, 0, len(data)) is None
    assert counting.calls <= 10  # windowed reads, one per MiB
    assert _scan(data, chunk=1 << 20) == []


def test_png_with_a_4_gb_chunk_length_is_refused_without_reading_it():
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr
           + struct.pack(">I", zlib.crc32(ihdr)) + struct.pack(">I", 0xFFFF_FFF0) + b"IDAT")
    data = png + random.Random(5).randbytes(100_000)
    counting = _Counting(data)
    assert png_end(counting, 0, len(data)) is None
    assert counting.bytes <= len(data)


def test_thousands_of_jpeg_signatures_are_capped_and_said():
    data = b"\xff\xd8\xff\xe0" * (MAX_CANDIDATES + 2000)
    scanner = EmbeddedPictureScanner()
    candidates = []
    for offset in range(0, len(data), 4096):
        candidates += scanner.candidates(data[offset: offset + 4096], offset)
    assert len(candidates) == MAX_CANDIDATES
    assert scanner.stopped_at == 4 * MAX_CANDIDATES
    children = scanner.children(io.BytesIO(data), len(data), "x", candidates)
    with pytest.raises(LimitExceeded) as raised:
        list(children)
    assert raised.value.limit == "picture-candidates"


def test_bmp_whose_pixels_do_not_fit_its_stated_size_is_refused(pictures: dict[str, Path]):
    bmp = bytearray(pictures["bmp"].read_bytes())
    assert ENDS["bmp"](_Counting(bytes(bmp)), 0, len(bmp)) == len(bmp)
    bmp[2:6] = struct.pack("<I", 200)  # a stated size smaller than its pixel data
    assert ENDS["bmp"](_Counting(bytes(bmp)), 0, len(bmp)) is None


class _CountingStream(io.BytesIO):
    """A stream that counts the bytes read from it."""

    read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data


def test_overlapping_fake_headers_cannot_make_the_scan_quadratic():
    # 3,000 PNG headers, each claiming a first chunk that runs to near the end of the
    # file: without the budget every walk would CRC ~2 MB (6 GB in all).
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(
        ">I", zlib.crc32(ihdr))
    fakes = b"".join(head + struct.pack(">I", 2_000_000 - 41 * n) + b"IDAT"
                     for n in range(3000))
    data = fakes + random.Random(6).randbytes(2_000_000 - len(fakes) + 3000 * 41)
    stream = _CountingStream(data)
    scanner = EmbeddedPictureScanner()
    candidates = scanner.candidates(data, 0)
    assert len(candidates) == 3000
    with pytest.raises(LimitExceeded) as raised:
        list(scanner.children(stream, len(data), "x", candidates))
    assert raised.value.limit == "picture-scan-bytes"
    assert stream.read_bytes <= WALK_BUDGET * len(data) + MAX_PICTURE + (1 << 20)


def _signatures_one_by_one(data: bytes) -> list[tuple[int, str]]:
    """The candidate rule read plainly: every occurrence of each signature, its header
    checks on the bytes, nothing past the end (the vectorised search must agree)."""
    found = []
    rules = (
        (b"\xff\xd8\xff", "jpeg", 0, 4, lambda h: 0xC0 <= h[3] <= 0xFE),
        (b"\x89PNG\r\n\x1a\n", "png", 0, 16, lambda h: h[8:16] == b"\0\0\0\x0dIHDR"),
        (b"GIF8", "gif", 0, 6, lambda h: h[4:6] in (b"7a", b"9a")),
        (b"BM", "bmp", 0, 18, bmp_header_ok),
        (b"RIFF", "webp", 0, 16, lambda h: h[8:16] in (b"WEBPVP8 ", b"WEBPVP8L", b"WEBPVP8X")),
        (b"ftyp", "heic", -4, 12, lambda h: 16 <= int.from_bytes(h[:4], "big") <= 4096
         and h[8:12] in HEIF_BRANDS),
    )
    for signature, kind, shift, needed, ok in rules:
        at = data.find(signature)
        while at >= 0:
            begin = at + shift
            if begin >= 0 and begin + needed <= len(data) and ok(data[begin:begin + needed]):
                found.append((begin, kind))
            at = data.find(signature, at + 1)
    return sorted(found)


def test_the_signature_search_finds_what_the_rule_read_plainly_finds():
    rng = random.Random(13)
    headers = [b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xbf", b"GIF89a", b"GIF8xa",
               b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDX",
               b"BM" + struct.pack("<IIII", 9000, 0, 54, 40),
               b"BM" + struct.pack("<IIII", 50, 0, 54, 40),  # pixels past the stated size
               b"BM" + struct.pack("<IIII", 2**32 - 1, 0, 2**32 - 16, 124),
               b"RIFF\0\0\0\0WEBPVP8L", b"RIFF\0\0\0\0WEBPVP9 ",
               b"\0\0\0\x18ftypavif", b"\0\0\x10\x01ftypheic", b"ftypmif1"]
    compared = 0
    for _ in range(1500):
        # both searches for the pairs: a regular expression below SMALL, numpy above;
        # both checks: a few pairs one by one first, many (a "BM" fill) in numpy at once
        size = rng.choice([0, 1, 2, 5, 17, 30, 300, 5000, SMALL - 1, SMALL, 20_000])
        fill = rng.choice([b"", b"\0", b"\xff", b"B", b"f", b"BM"])
        data = bytearray((fill * size)[:size] if fill else rng.randbytes(size))
        for _ in range(rng.randrange(7)):  # some cut by either end of the buffer
            header = rng.choice(headers)
            at = rng.randrange(-len(header) + 1, size + 1)
            for i, byte in enumerate(header):
                if 0 <= at + i < size:
                    data[at + i] = byte
        base = rng.randrange(10**9)
        expected = [(base + at, kind) for at, kind in _signatures_one_by_one(bytes(data))]
        assert find_signatures(bytes(data), base) == expected
        compared += len(expected)
    assert compared > 500


def test_a_stream_of_near_signatures_is_searched_without_a_step_per_pair():
    # 64 KiB of "BMBM…" is 65,535 byte pairs that start a BMP signature, none a real
    # header; random bytes hold a few. The search must cost array passes, not a Python
    # step per pair (2.6 s per MiB before: a large such file ran into the file timeout).
    def calls(data: bytes) -> int:
        count = 0

        def profile(frame: object, event: str, arg: object) -> None:
            nonlocal count
            count += 1

        sys.setprofile(profile)
        try:
            assert find_signatures(data) == []
        finally:
            sys.setprofile(None)
        return count

    hostile = b"BM" * 32768
    plain = bytes(random.Random(14).randbytes(65536).replace(b"\x89PNG", b"...."))
    assert calls(hostile) < 2 * calls(plain)


def test_a_chunk_of_near_signatures_is_checked_in_bounded_memory():
    # 1 MiB of "BMBM…" is 524,288 pairs to check; checked all at once their windows'
    # indices alone would take 92 MB, per chunk, in every worker. Two real headers, one
    # near each end, must still be found (the pairs are checked in blocks).
    header = b"BM" + struct.pack("<IIII", 9000, 0, 54, 40)
    data = bytearray(b"BM" * (1 << 19))
    data[100:100 + len(header)] = header
    data[(1 << 20) - 1000:(1 << 20) - 1000 + len(header)] = header
    tracemalloc.start()
    try:
        found = find_signatures(bytes(data))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found == [(100, "bmp"), ((1 << 20) - 1000, "bmp")]
    assert peak < 40 << 20


def test_a_signature_split_at_any_byte_between_chunks_is_found_once(pictures: dict[str, Path]):
    for kind, path in pictures.items():
        content = path.read_bytes()
        data = random.Random(12).randbytes(1000) + content
        kind_name = kind.split("-")[0]
        for split in range(1000 - 30, 1000 + 30):
            scanner = EmbeddedPictureScanner()
            found = scanner.candidates(data[:split], 0) + scanner.candidates(data[split:], split)
            starts = [offset for offset, name in found if name == kind_name]
            assert starts.count(1000) == 1, (kind, split)


def test_pictures_over_the_full_decode_cap(pictures: dict[str, Path],
                                           monkeypatch: pytest.MonkeyPatch):
    # The cap lowered to 5,000 pixels stands in for a 100-megapixel photo: a JPEG is then
    # decoded at 1/8 scale (all its entropy-coded data still read: a cut one fails), other
    # kinds are not decoded at all.
    import ingest.derive.pictures as scan

    monkeypatch.setattr(scan, "MAX_FULL_PIXELS", 5_000)  # the PNG has 96 × 64 = 6,144
    jpeg = pictures["jpeg"].read_bytes()
    assert decodes(jpeg)
    assert not decodes(jpeg[: len(jpeg) - 2000])
    assert not decodes(pictures["png"].read_bytes())
