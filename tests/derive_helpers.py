"""Test inputs for the container readers and the picture scan, made with real writers.

Pictures are drawn the way ``sample_data/make_photos.py`` draws the sample photos and
written by Pillow (pillow-heif for HEIC); the JPEG gets a camera-like EXIF block with a
thumbnail from ``exiftool``, so a JPEG-inside-a-JPEG is always present.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

from PIL import Image

from ingest.derive import SNIFF_BYTES, Child, ContainerReader, container_reader
from tests.conftest import REPO, require_tool


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
