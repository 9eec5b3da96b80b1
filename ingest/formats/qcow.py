"""QEMU copy-on-write images (QCOW versions 1 to 3) through libqcow, with backing files.

A backing file is named in the header, relative to the image (as QEMU resolves it) or
absolute; it is looked for beside the image. Encrypted images are refused.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pyqcow

from ingest.errors import UnsupportedImageError
from ingest.formats.layer import Layer, Locate, open_file

FAMILY = "libqcow"
MAGIC = b"QFI\xfb"


def sniff(head: bytes, tail: bytes, size: int) -> str | None:
    return "qcow" if head.startswith(MAGIC) else None


def open_layer(fmt: str, path: Path, locate: Locate) -> Layer:
    handle = pyqcow.file()
    layer = Layer(fmt, FAMILY, handle, [path])
    try:
        layer.files.append(open_file(path))
        with path.open("rb") as fh:
            version = struct.unpack(">I", (fh.read(8) + bytes(8))[4:8])[0]
        try:
            handle.open_file_object(layer.files[0], "r")
        except OSError as exc:
            raise UnsupportedImageError(f"cannot open QCOW image {path}: {exc}") from exc
        if handle.is_locked():
            raise UnsupportedImageError(f"{path} is an encrypted QCOW image; exhibit does not"
                                        " decrypt it")
        layer.parent_name = handle.get_backing_filename() or None
        layer.info = {"qcow_version": str(version), "media_size": str(handle.get_media_size())}
        if layer.parent_name:
            layer.info["backing_file"] = layer.parent_name
    except BaseException:
        layer.close()
        raise
    return layer
