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


def _check_l1(path: Path, header: bytes) -> None:
    """Refuse a stated size the L1 table cannot map, as QEMU does ("L1 table is too
    small"): libqcow accepts it, and hashing the terabytes of zeros it claims would
    hold the run for hours."""
    version, = struct.unpack_from(">I", header, 4)
    if version < 2:
        return
    cluster_bits, size, _crypt, l1_size = struct.unpack_from(">IQII", header, 20)
    if not 9 <= cluster_bits <= 21:
        return  # libqcow refuses it, with its own message
    cluster = 1 << cluster_bits
    per_l1 = cluster * (cluster // 8)  # bytes one L1 entry maps
    needed = -(-size // per_l1)
    if l1_size < needed:
        raise UnsupportedImageError(
            f"QCOW image {path} states a {size}-byte disk but its L1 table ({l1_size}"
            f" entries) maps only {l1_size * per_l1} bytes: damaged header (QEMU refuses it)")


def open_layer(fmt: str, path: Path, locate: Locate) -> Layer:
    handle = pyqcow.file()
    layer = Layer(fmt, FAMILY, handle, [path])
    try:
        layer.files.append(open_file(path))
        with path.open("rb") as fh:
            header = fh.read(48).ljust(48, b"\0")
        version, = struct.unpack_from(">I", header, 4)
        _check_l1(path, header)
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
