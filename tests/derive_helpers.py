"""Test inputs for the container readers and the picture scan, made with real writers.

Pictures are drawn the way ``sample_data/make_photos.py`` draws the sample photos and
written by Pillow (pillow-heif for HEIC); the JPEG gets a camera-like EXIF block with a
thumbnail from ``exiftool``, so a JPEG-inside-a-JPEG is always present.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

from conftest import REPO, require_tool
from PIL import Image

from ingest.derive import SNIFF_BYTES, Child, ContainerReader, container_reader


def _make_photos_module() -> ModuleType:
    if "make_photos" in sys.modules:
        return sys.modules["make_photos"]
    spec = importlib.util.spec_from_file_location(
        "make_photos", REPO / "sample_data" / "make_photos.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["make_photos"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def draw(size: tuple[int, int], seed: int) -> Image.Image:
    return _make_photos_module().draw_picture(size, seed)


def picture_files(directory: Path) -> dict[str, Path]:
    """One small picture of each kind the scan knows, written to ``directory``."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    photo = draw((320, 240), 11)
    jpeg = directory / "photo.jpg"
    photo.save(jpeg, quality=80)
    thumb = directory / "thumb.jpg"
    photo.resize((160, 120)).save(thumb, quality=70)
    subprocess.run([require_tool("exiftool"), "-q", "-overwrite_original",
                    "-EXIF:Make=Canon", "-EXIF:Model=Canon EOS 80D",
                    "-EXIF:DateTimeOriginal=2024:05:01 09:15:02",
                    f"-ThumbnailImage<={thumb}", str(jpeg)], check=True)
    out["jpeg"] = jpeg
    progressive = directory / "progressive.jpg"
    draw((200, 150), 12).save(progressive, quality=75, progressive=True)
    out["jpeg-progressive"] = progressive
    small = draw((96, 64), 13)
    for kind, suffix, options in (("png", "png", {}), ("gif", "gif", {}),
                                  ("bmp", "bmp", {}), ("webp", "webp", {"quality": 70}),
                                  ("heic", "heic", {"quality": 60})):
        path = directory / f"picture.{suffix}"
        image = small.convert("P") if kind == "gif" else small
        image.save(path, **options)
        out[kind] = path
    return out


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def read_all(stream: BinaryIO) -> bytes:
    """A child's bytes, read in chunks as the worker reads them."""
    parts = []
    while chunk := stream.read(65536):
        parts.append(chunk)
    return b"".join(parts)


def expand(path: Path) -> tuple[ContainerReader, list[tuple[Child, bytes | None]]]:
    """The reader that claims ``path`` and each child with its bytes, read in order."""
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
        reader = container_reader(head)
        assert reader is not None, f"no reader claims {path.name}"
        got: list[tuple[Child, bytes | None]] = []
        for child in reader.children(fh, path.stat().st_size, path.name):
            got.append((child, read_all(child.open()) if child.open else None))
        return reader, got


def children_of(reader: ContainerReader, data: bytes, name: str) -> Iterator[Child]:
    return reader.children(io.BytesIO(data), len(data), name)


# RAR cannot be written with free tools (Debian has no `rar`), so the RAR tests use archives
# built here from the published format descriptions (RAR 4: technote.txt of RAR 3.x/4.x;
# RAR 5: rarlab.com's "RAR 5.0 archive format"), with members stored (method "store").
# The reader under test is libarchive's, written independently of these few lines.

def _crc16(data: bytes) -> bytes:
    return struct.pack("<H", zlib.crc32(data) & 0xFFFF)


def rar4_stored(members: dict[str, bytes]) -> bytes:
    """A RAR 4.x archive holding ``members`` stored, with a DOS time of 2024-05-01 09:15."""
    out = bytearray(b"Rar!\x1a\x07\x00")
    main = struct.pack("<BHHHI", 0x73, 0, 13, 0, 0)
    out += _crc16(main) + main
    dos_time = ((2024 - 1980) << 25) | (5 << 21) | (1 << 16) | (9 << 11) | (15 << 5)
    for name, data in members.items():
        encoded = name.encode()
        fields = struct.pack("<BHHIIBIIBBHI", 0x74, 0x8000, 32 + len(encoded), len(data),
                             len(data), 3, zlib.crc32(data), dos_time, 20, 0x30,
                             len(encoded), 0o100644) + encoded  # Unix host: a mode
        out += _crc16(fields) + fields + data
    end = struct.pack("<BHH", 0x7B, 0x4000, 7)
    out += _crc16(end) + end
    return bytes(out)


def _vint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _rar5_block(body: bytes) -> bytes:
    sized = _vint(len(body)) + body
    return struct.pack("<I", zlib.crc32(sized)) + sized


def rar5_stored(members: dict[str, bytes], mtime: int = 1714554902) -> bytes:
    """A RAR 5.0 archive holding ``members`` stored, with a Unix mtime."""
    out = bytearray(b"Rar!\x1a\x07\x01\x00")
    out += _rar5_block(_vint(1) + _vint(0) + _vint(0))  # main header, no flags
    for name, data in members.items():
        encoded = name.encode()
        body = (_vint(2) + _vint(0x0002) + _vint(len(data))  # file header with data area
                + _vint(0x0002 | 0x0004) + _vint(len(data)) + _vint(0o100644)
                + struct.pack("<II", mtime, zlib.crc32(data))
                + _vint(0) + _vint(1) + _vint(len(encoded)) + encoded)  # store, Unix
        out += _rar5_block(body) + data
    out += _rar5_block(_vint(5) + _vint(0) + _vint(0))  # end of archive
    return bytes(out)
