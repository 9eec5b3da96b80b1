"""Apple disk images through libmodi: UDIF ``.dmg`` (raw, zlib, bzip2, ADC, LZFSE chunks)
and sparse images (``.sparseimage``).

A UDIF image ends in a 512-byte ``koly`` trailer that locates its data fork and the
property list of chunk tables; a sparse image starts with ``sprs``. Sparse bundles (a
folder of band files) are not read yet.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pymodi

from ingest.formats.layer import Layer, Locate, opened

FAMILY = "libmodi"
KOLY = b"koly"
SPARSE = b"sprs"


def sniff(head: bytes, tail: bytes, size: int) -> str | None:
    if head.startswith(SPARSE):
        return "sparseimage"
    if len(tail) == 512 and tail.startswith(KOLY):
        version, header_size = struct.unpack_from(">II", tail, 4)
        if version == 4 and header_size == 512:
            return "dmg"
    return None


def open_layer(fmt: str, path: Path, locate: Locate) -> Layer:
    handle = pymodi.handle()
    with opened(fmt, FAMILY, handle, path, "Apple disk image") as layer:
        layer.info = {"media_size": str(handle.get_media_size())}
    return layer
