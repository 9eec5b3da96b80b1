"""The four built-in analyzers and the one-pass runner, checked against real tools.

Oracles: ``md5sum``/``sha1sum``/``sha256sum`` for digests, ``file`` for MIME types,
``exiftool -n -j`` for EXIF values. Test images are generated here from fixed seeds with
Pillow and tagged with the real exiftool; pinned perceptual hashes come from one
lossless PNG so they only change when Pillow/imagehash change how they hash.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import exifread
import imagehash
import numpy
import pytest
from conftest import require_tool
from exifread.core.find_exif import determine_type
from PIL import Image

from analyzers.base import Analyzer, AnalyzerError, Findings, StreamSession
from analyzers.exif import ExifAnalyzer
from analyzers.perceptual import (
    DEFAULT_ALGORITHMS,
    MAX_PIXELS,
    HashAlgorithm,
    PerceptualHashAnalyzer,
    decode,
)
from analyzers.registry import create
from analyzers.run import CHUNK_SIZE, AnalysisResult, analyze_bytes, analyze_chunks, iter_chunks
from ingest.location import EvidenceLocation, FileEntry

# --------------------------------------------------------------------------- helpers


def entry(name: str = "file.bin", size: int = 0, kind: str = "file") -> FileEntry:
    """A FileEntry as the walk would give it, for a file named ``name``."""
    location = EvidenceLocation("ab" * 32, 0, 0, "raw", 42, f"/{name}")
    return FileEntry(location, name, size, kind, True)  # type: ignore[arg-type]


def run(data: bytes, name: str = "file.bin", names: list[str] | None = None) -> AnalysisResult:
    """Run the registered analyzers (all, or ``names``) the way a worker would."""
    return analyze_bytes(data, entry(name, len(data)), create(names))


def procedural(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A deterministic picture with structure at low frequencies (what pHash sees)."""
    rng = numpy.random.default_rng(seed)
    width, height = size
    y, x = numpy.mgrid[0:height, 0:width].astype(numpy.float64)
    channels = []
    for _ in range(3):
        value = numpy.zeros((height, width))
        for _ in range(6):
            fx, fy = rng.uniform(0.5, 4.0, 2) * 2 * numpy.pi
            phase = rng.uniform(0, 2 * numpy.pi)
            value += rng.uniform(0.3, 1.0) * numpy.sin(fx * x / width + fy * y / height + phase)
        for _ in range(4):  # a few blobs
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            radius = rng.uniform(0.05, 0.25) * width
            value += 1.5 * (((x - cx) ** 2 + (y - cy) ** 2) < radius**2)
        value -= value.min()
        channels.append(value / value.max() * 255)
    array = numpy.stack(channels, axis=-1).round().astype(numpy.uint8)
    return Image.fromarray(array, "RGB")


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def exiftool_write(path: Path, *args: str) -> None:
    """Write tags with the real exiftool (in place)."""
    tool = require_tool("exiftool")
    subprocess.run([tool, "-q", "-overwrite_original", *args, str(path)], check=True)


def exiftool_read(path: Path) -> dict[str, Any]:
    """``exiftool -n -j`` of one file: the oracle for EXIF values."""
    tool = require_tool("exiftool")
    out = subprocess.run([tool, "-n", "-j", str(path)], check=True, capture_output=True)
    return json.loads(out.stdout)[0]


def tagged_jpeg(tmp_path: Path, *tags: str, thumbnail: bool = True, seed: int = 7) -> Path:
    """A 1600×1200 JPEG with the given exiftool assignments (and an IFD1 thumbnail)."""
    img = procedural(seed, (1600, 1200))
    path = tmp_path / f"photo{seed}.jpg"
    path.write_bytes(encode(img, "JPEG", quality=90))
    args = list(tags)
    if thumbnail:
        thumb = tmp_path / "thumb.jpg"
        thumb.write_bytes(encode(img.resize((160, 120)), "JPEG", quality=80))
        args.append(f"-ThumbnailImage<={thumb}")
    if args:
        exiftool_write(path, *args)
    return path


def errors_by_analyzer(result: AnalysisResult) -> dict[str, dict[str, Any]]:
    return {err["analyzer"]: err for err in result.errors}


# --------------------------------------------------------------------------- hashes


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, (1 << 20) * 3 // 2 + 7])
def test_hashes_match_coreutils(tmp_path: Path, size: int) -> None:
    data = numpy.random.default_rng(size).bytes(size)
    path = tmp_path / "blob"
    path.write_bytes(data)
    findings, errors = run(data, names=["hashes"])
    assert errors == []
    got = findings["hashes"]
    for algo in ("md5", "sha1", "sha256"):
        tool = require_tool(f"{algo}sum")
        out = subprocess.run([tool, str(path)], check=True, capture_output=True, text=True)
        assert got[algo] == out.stdout.split()[0]
    assert got["size"] == size


def test_hashes_do_not_depend_on_chunking() -> None:
    data = numpy.random.default_rng(3).bytes(300_001)
    analyzers = create(["hashes"])
    reference = analyze_bytes(data, entry(), analyzers).findings
    for chunk_size in (1, 7, 4096, 1 << 20):
        if chunk_size == 1:
            chunks: Iterator[bytes] = iter_chunks(data[:5000], 1)
            small = analyze_chunks(chunks, entry(), analyzers).findings
            assert small == analyze_bytes(data[:5000], entry(), analyzers).findings
            continue
        assert analyze_bytes(data, entry(), analyzers, chunk_size).findings == reference


# --------------------------------------------------------------------------- filetype


def _pdf() -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
        b"trailer << /Root 1 0 R >>\n%%EOF\n"
    )


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("hello.txt", "hello " * 100)
    return out.getvalue()


def _buffers() -> dict[str, bytes]:
    img = procedural(1, (64, 48))
    return {
        "jpeg": encode(img, "JPEG"),
        "png": encode(img, "PNG"),
        "gif": encode(img, "GIF"),
        "pdf": _pdf(),
        "zip": _zip(),
        "text": b"just some plain words\nand another line\n" * 20,
        "html": b"<!DOCTYPE html>\n<html><head><title>x</title></head><body>hi</body></html>\n",
        "empty": b"",
        "random": numpy.random.default_rng(9).bytes(5000),
        "elf": Path("/bin/ls").read_bytes()[: 2 << 20],
    }


@pytest.mark.parametrize("kind", sorted(_buffers()))
def test_mime_matches_file_on_stdin(kind: str) -> None:
    data = _buffers()[kind]
    tool = require_tool("file")
    mime = subprocess.run([tool, "--mime-type", "-b", "-"], input=data, capture_output=True)
    desc = subprocess.run([tool, "-b", "-"], input=data, capture_output=True)
    findings, errors = run(data, names=["filetype"])
    assert errors == []
    assert findings["filetype"]["mime"] == mime.stdout.decode().strip()
    assert findings["filetype"]["magic"] == desc.stdout.decode().strip()


@pytest.mark.parametrize(
    ("kind", "name", "mismatch"),
    [
        ("jpeg", "evidence.txt", True),
        ("jpeg", "evidence.dll", True),
        ("jpeg", "IMG_0001.JPG", False),
        ("jpeg", "photo.jpeg", False),
        ("jpeg", "photo.jpe", False),
        ("jpeg", "photo", False),  # no extension never flags
        ("jpeg", "photo.jpg.bak", False),  # neutral suffix
        ("png", "image.png", False),
        ("png", "image.gif", True),
        ("text", "notes.txt", False),
        ("text", "notes.md", False),
        ("text", "data.csv", False),
        ("text", "server.log", False),
        ("text", "notes.xyz123", False),  # unknown extension holding text
        ("text", "holiday.jpg", True),  # text pretending to be a picture
        ("html", "index.html", False),
        ("zip", "report.docx", False),
        ("zip", "tool.jar", False),
        ("zip", "app.apk", False),
        ("zip", "archive.zip", False),
        ("pdf", "paper.pdf", False),
        ("pdf", "paper.doc", True),
        ("random", "blob.jpg", False),  # octet-stream: libmagic does not know
        ("empty", "empty.jpg", False),
        ("elf", "libc.so.6", False),
        ("elf", "program.exe", True),
    ],
)
def test_extension_mismatch(kind: str, name: str, mismatch: bool) -> None:
    data = _buffers()[kind]
    findings = run(data, name=name, names=["filetype"]).findings["filetype"]
    assert findings["extension_mismatch"] is mismatch, findings
    assert findings["extension"] == entry(name).extension


def test_filetype_findings_shape() -> None:
    findings = run(_buffers()["jpeg"], name="x.jpg", names=["filetype"]).findings["filetype"]
    assert set(findings) == {"mime", "magic", "extension", "extension_mismatch",
                             "expected_extensions"}
    assert {"jpg", "jpeg", "jpe"} <= set(findings["expected_extensions"])


# --------------------------------------------------------------------------- exif

HEMISPHERES = [
    ("N", "E", 52.373056, 4.892222, 2.5, 0),
    ("N", "W", 40.689247, 74.044502, 93.0, 0),
    ("S", "E", 33.856784, 151.215297, 12.25, 1),
    ("S", "W", 22.951916, 43.210487, 0.0, 1),
]


@pytest.mark.parametrize(("lat_ref", "lon_ref", "lat", "lon", "alt", "alt_ref"), HEMISPHERES)
def test_exif_matches_exiftool(
    tmp_path: Path, lat_ref: str, lon_ref: str, lat: float, lon: float, alt: float, alt_ref: int
) -> None:
    path = tagged_jpeg(
        tmp_path,
        "-Make=Canon",
        "-Model=Canon EOS 80D",
        "-SerialNumber=183025001234",
        "-DateTimeOriginal=2024:05:01 09:15:02",
        "-Software=Firmware Version 1.0.3",
        "-Orientation#=6",
        f"-GPSLatitude={lat}",
        f"-GPSLatitudeRef={lat_ref}",
        f"-GPSLongitude={lon}",
        f"-GPSLongitudeRef={lon_ref}",
        f"-GPSAltitude={alt}",
        f"-GPSAltitudeRef#={alt_ref}",
    )
    oracle = exiftool_read(path)
    findings, errors = run(path.read_bytes(), name=path.name)
    assert errors == []
    exif = findings["exif"]
    assert exif["present"] is True
    assert exif["make"] == oracle["Make"]
    assert exif["model"] == oracle["Model"]
    assert exif["serial"] == str(oracle["SerialNumber"])
    assert exif["datetime_original"] == oracle["DateTimeOriginal"]
    assert exif["datetime_original_iso"] == "2024-05-01T09:15:02"
    assert exif["software"] == oracle["Software"]
    assert exif["orientation"] == oracle["Orientation"] == 6
    assert exif["gps_latitude"] == pytest.approx(oracle["GPSLatitude"], abs=1e-6)
    assert exif["gps_longitude"] == pytest.approx(oracle["GPSLongitude"], abs=1e-6)
    assert exif["gps_altitude"] == pytest.approx(oracle["GPSAltitude"], abs=0.01)
    # the signs are ours to get right: exiftool -n reports signed composite values
    assert (exif["gps_latitude"] < 0) == (lat_ref == "S")
    assert (exif["gps_longitude"] < 0) == (lon_ref == "W")
    assert exif["has_thumbnail"] is ("ThumbnailImage" in oracle) is True


def test_exif_without_thumbnail_and_missing_values(tmp_path: Path) -> None:
    path = tagged_jpeg(tmp_path, "-Make=Apple", thumbnail=False)
    oracle = exiftool_read(path)
    assert "ThumbnailImage" not in oracle
    exif = run(path.read_bytes(), name=path.name).findings["exif"]
    assert exif["present"] is True
    assert exif["make"] == "Apple"
    assert exif["has_thumbnail"] is False
    for key in ("model", "serial", "datetime_original", "datetime_original_iso", "software",
                "orientation", "gps_latitude", "gps_longitude", "gps_altitude"):
        assert exif[key] is None, key


def test_no_exif_means_present_false() -> None:
    data = encode(procedural(2), "JPEG")
    findings, errors = run(data, name="plain.jpg")
    assert errors == []
    assert findings["exif"] == {
        "present": False, "make": None, "model": None, "serial": None,
        "datetime_original": None, "datetime_original_iso": None, "software": None,
        "orientation": None, "gps_latitude": None, "gps_longitude": None,
        "gps_altitude": None, "has_thumbnail": False, "make_source": None,
        "model_source": None, "datetime_original_source": None, "gps_source": None,
        "exif_reader": None, "problems": None,
    }


def test_exif_only_on_exif_capable_images() -> None:
    assert "exif" not in run(_buffers()["gif"], name="a.gif").findings
    assert "exif" not in run(_buffers()["pdf"], name="a.pdf").findings
    assert "exif" not in run(_buffers()["text"], name="a.txt").findings


def _tiff_offset(data: bytes) -> int:
    offset, _endian, _fake = determine_type(io.BytesIO(data))
    return offset


def test_corrupt_ifd_count_is_an_error_and_hashes_survive(tmp_path: Path) -> None:
    path = tagged_jpeg(tmp_path, "-Make=Canon", "-Model=X", "-SerialNumber=1")
    data = bytearray(path.read_bytes())
    tiff = _tiff_offset(bytes(data))
    endian = "<" if data[tiff : tiff + 2] == b"II" else ">"
    (ifd0,) = struct.unpack(endian + "I", data[tiff + 4 : tiff + 8])
    data[tiff + ifd0 : tiff + ifd0 + 2] = struct.pack(endian + "H", 0x7FFF)  # mangled count
    result = run(bytes(data), name="mangled.jpg")
    errors = errors_by_analyzer(result)
    assert set(errors) == {"exif"}
    assert errors["exif"]["error"] == "AnalyzerError"
    assert "malformed EXIF" in errors["exif"]["message"]
    assert errors["exif"]["version"] == ExifAnalyzer.version
    assert errors["exif"]["traceback"]
    assert result.findings["hashes"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert "perceptual" in result.findings  # the pixels are fine


def test_zero_denominator_gps_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tagged_jpeg(tmp_path, "-GPSLatitude=10.5", "-GPSLatitudeRef=N")
    data = bytearray(path.read_bytes())
    tiff = _tiff_offset(bytes(data))
    tag = exifread.process_file(io.BytesIO(bytes(data)), details=False)["GPS GPSLatitude"]
    denominator = tiff + tag.field_offset + 4  # first rational: numerator, denominator
    data[denominator : denominator + 4] = b"\0\0\0\0"
    result = run(bytes(data), name="zero.jpg")
    errors = errors_by_analyzer(result)
    assert errors["exif"]["error"] == "AnalyzerError"
    assert "zero denominator" in errors["exif"]["message"]
    assert "hashes" in result.findings


# --------------------------------------------------------------------------- perceptual

PINNED_SEED = 1234
# Computed once with Pillow 13.0.0, imagehash 4.3.2, scipy 1.17.1, numpy 2.4.6. If the
# pixel digest still matches but a hash does not, the hashing libraries changed: record
# it, since hashes in earlier case databases then no longer compare exactly.
PINNED_PIXELS_SHA256 = "208eafb4eff6df70152b634667718c0810df8f4fc2b91dbd79dab5dfa4846b26"
PINNED_PHASH = "83b99b7a51a71ca4"
PINNED_DHASH = "397b7ad294256dca"


def _phash_distance(a: str, b: str) -> int:
    return imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b)


def test_pinned_hashes_of_a_lossless_png() -> None:
    img = procedural(PINNED_SEED)
    assert hashlib.sha256(img.tobytes()).hexdigest() == PINNED_PIXELS_SHA256
    data = encode(img, "PNG")
    findings = run(data, name="pinned.png").findings["perceptual"]
    assert findings["phash"] == PINNED_PHASH
    assert findings["dhash"] == PINNED_DHASH
    assert (findings["width"], findings["height"]) == (640, 480)
    assert (findings["decoded_width"], findings["decoded_height"]) == (640, 480)
    assert findings["format"] == "PNG"
    for value in (findings["phash"], findings["dhash"]):
        assert len(value) == 16
        assert str(imagehash.hex_to_hash(value)) == value


def test_near_copy_is_close_and_unrelated_is_far() -> None:
    original = procedural(11, (1024, 768))
    base = run(encode(original, "PNG"), name="a.png").findings["perceptual"]
    copy = original.resize((512, 384), Image.Resampling.BILINEAR)
    near = run(encode(copy, "JPEG", quality=70), name="b.jpg").findings["perceptual"]
    assert _phash_distance(base["phash"], near["phash"]) <= 8
    assert _phash_distance(base["dhash"], near["dhash"]) <= 12
    for seed in (12, 13, 14):
        other = run(encode(procedural(seed, (1024, 768)), "PNG"), name="c.png")
        far = other.findings["perceptual"]
        assert _phash_distance(base["phash"], far["phash"]) >= 20, seed


def test_jpeg_draft_decodes_at_reduced_scale() -> None:
    data = encode(procedural(5, (1600, 1200)), "JPEG", quality=85)
    default = run(data, name="big.jpg").findings["perceptual"]
    assert (default["width"], default["height"]) == (1600, 1200)
    # PDQ is among the defaults and needs ≥ 512 px: 1/2 scale is the smallest that keeps it
    assert (default["decoded_width"], default["decoded_height"]) == (800, 600)
    phash_only = PerceptualHashAnalyzer(algorithms=DEFAULT_ALGORITHMS[:2])
    small = phash_only.analyze(data, entry("big.jpg"), {})
    assert (small["decoded_width"], small["decoded_height"]) == (200, 150)  # 1/8 scale
    assert _phash_distance(small["phash"], default["phash"]) <= 4
    pdq_like = HashAlgorithm("wide", 512, lambda img: f"{img.width}x{img.height}")
    wide = PerceptualHashAnalyzer(algorithms=(pdq_like,)).analyze(data, entry("big.jpg"), {})
    assert (wide["decoded_width"], wide["decoded_height"]) == (800, 600)  # 1/2 keeps ≥ 512
    assert wide["wide"] == "800x600"
    assert min(decode(data, 64)[0].size) >= 64


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    upright = procedural(21, (800, 600))
    path = tmp_path / "rotated.jpg"
    # stored turned 90° counter-clockwise, with Orientation 6 ("rotate 90 CW to view")
    path.write_bytes(encode(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95))
    exiftool_write(path, "-Orientation#=6")
    rotated = run(path.read_bytes(), name=path.name).findings["perceptual"]
    straight = run(encode(upright, "JPEG", quality=95), name="s.jpg").findings["perceptual"]
    assert (rotated["width"], rotated["height"]) == (600, 800)  # as stored
    assert _phash_distance(rotated["phash"], straight["phash"]) <= 4


def test_truncated_jpeg_is_an_error_and_hashes_survive() -> None:
    data = encode(procedural(6, (800, 600)), "JPEG", quality=90)
    cut = data[: len(data) // 2]
    result = run(cut, name="cut.jpg")
    errors = errors_by_analyzer(result)
    assert errors["perceptual"]["error"] == "AnalyzerError"
    assert "truncated" in errors["perceptual"]["message"]
    assert result.findings["hashes"]["size"] == len(cut)
    assert result.findings["filetype"]["mime"] == "image/jpeg"


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width``×``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [(100_000, 100_000), (10_000, 9_000)])
def test_decompression_bomb_is_refused(size: tuple[int, int]) -> None:
    data = _png_claiming(*size)
    assert len(data) < 200
    assert size[0] * size[1] > MAX_PIXELS
    result = run(data, name="bomb.png")
    errors = errors_by_analyzer(result)
    assert errors["perceptual"]["error"] == "AnalyzerError"
    assert "decompression bomb" in errors["perceptual"]["message"]
    assert "hashes" in result.findings


def test_not_an_image_is_an_error() -> None:
    with pytest.raises(AnalyzerError):
        PerceptualHashAnalyzer().analyze(b"not an image", entry("x.png"), {})


# --------------------------------------------------------------------------- runner


class _Boom(AnalyzerError):
    pass


class _FailingStream(Analyzer):
    """Fails on its second chunk."""

    name = "failing_stream"
    version = "0.0.1"
    input = "stream"

    def start(self, entry: FileEntry) -> StreamSession:
        class Session(StreamSession):
            calls = 0

            def update(self, chunk: bytes) -> None:
                self.calls += 1
                if self.calls == 2:
                    raise _Boom("second chunk")

            def finish(self) -> Findings:
                return {}

        return Session()


class _SeesHead(Analyzer):
    """A stream analyzer that applies only when the head analyzer saw a PNG."""

    name = "sees_head"
    version = "0.0.1"
    input = "stream"

    def applies_to(self, entry: FileEntry, findings: dict[str, Findings]) -> bool:
        return findings.get("filetype", {}).get("mime") == "image/png"

    def start(self, entry: FileEntry) -> StreamSession:
        class Session(StreamSession):
            size = 0

            def update(self, chunk: bytes) -> None:
                self.size += len(chunk)

            def finish(self) -> Findings:
                return {"size": self.size}

        return Session()


class _SmallContent(Analyzer):
    """Takes whole content up to 1000 bytes."""

    name = "small_content"
    version = "0.0.1"
    input = "content"
    max_size: ClassVar[int | None] = 1000

    def analyze(self, data: bytes, entry: FileEntry, findings: dict[str, Findings]) -> Findings:
        return {"length": len(data), "sha_seen": "hashes" in findings}


def test_runner_isolates_failures_and_records_skips() -> None:
    analyzers = [*create(["filetype", "hashes"]), _FailingStream(), _SmallContent()]
    data = os.urandom(3 * CHUNK_SIZE)
    result = analyze_bytes(data, entry("x.bin", len(data)), analyzers)
    errors = errors_by_analyzer(result)
    assert errors["failing_stream"]["kind"] == "error"
    assert errors["failing_stream"]["error"] == "_Boom"
    assert "second chunk" in errors["failing_stream"]["traceback"]
    assert errors["failing_stream"]["location"]["path"] == "/x.bin"
    assert errors["small_content"]["kind"] == "skipped"
    assert "max_size" in errors["small_content"]["message"]
    assert str(len(data)) in errors["small_content"]["message"]
    assert result.findings["hashes"]["size"] == len(data)
    assert "failing_stream" not in result.findings
    json.dumps(result.errors)  # closed records are serializable


def test_runner_content_gets_whole_file_and_earlier_findings() -> None:
    data = b"x" * 999
    result = analyze_bytes(data, entry(), [*create(["hashes"]), _SmallContent()], chunk_size=10)
    assert result.errors == []
    assert result.findings["small_content"] == {"length": 999, "sha_seen": True}


def test_stream_applies_to_sees_head_findings() -> None:
    png = _buffers()["png"]
    analyzers = [*create(["filetype"]), _SeesHead()]
    assert analyze_bytes(png, entry("a.png"), analyzers, 100).findings["sees_head"] == {
        "size": len(png)
    }
    assert "sees_head" not in analyze_bytes(b"text\n", entry("a.txt"), analyzers).findings


def test_runner_without_head_analyzers_streams() -> None:
    chunks = iter_chunks(b"a" * 200_000, 1000)
    result = analyze_chunks(chunks, entry(), create(["hashes"]))
    assert result.findings["hashes"]["size"] == 200_000


def test_iter_chunks_rejects_bad_size() -> None:
    with pytest.raises(ValueError):
        list(iter_chunks(b"abc", 0))


def test_a_fresh_process_hashes_heic_and_reads_its_exif(tmp_path: Path) -> None:
    """pillow-heif is imported where a picture is first opened, not with the analyzers'
    modules (issue 18: the driver's start): a worker that has opened nothing before still
    decodes a HEIC for its hashes and reads its EXIF, and the driver's check of the
    analyzers imports neither pillow-heif, imagehash nor exifread."""
    import sys

    import pillow_heif

    photo = tmp_path / "photo.heic"
    exif = Image.Exif()
    exif[0x010F] = "HeifMaker"
    heif = pillow_heif.from_pillow(Image.new("RGB", (640, 480), (200, 40, 30)))
    heif.save(photo, exif=exif.tobytes())
    script = f"""
import json, sys
from analyzers import registry
registry.create(None, {{}})
loaded = sorted(m for m in ("pillow_heif", "imagehash", "exifread") if m in sys.modules)
from analyzers.exif import ExifAnalyzer
from analyzers.perceptual import PerceptualHashAnalyzer
from ingest.location import EvidenceLocation, FileEntry
data = open({str(photo)!r}, "rb").read()
entry = FileEntry(EvidenceLocation("ab" * 32, 0, 0, "raw", 42, "/photo.heic"), "photo.heic",
                  len(data), "file", True)
print(json.dumps([loaded, PerceptualHashAnalyzer().analyze(data, entry, {{}}),
                  ExifAnalyzer().analyze(data, entry, {{}})["make"]]))
"""
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parent.parent)
    loaded, hashes, make = json.loads(out.stdout.splitlines()[-1])
    assert loaded == []
    assert hashes["format"] == "HEIF" and (hashes["width"], hashes["height"]) == (640, 480)
    assert len(hashes["phash"]) == 16 and len(hashes["pdq"]) == 64
    assert make == "HeifMaker"
