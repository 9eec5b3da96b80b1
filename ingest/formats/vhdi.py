"""Microsoft VHD and VHDX through libvhdi: fixed, dynamic and differencing disks.

A fixed VHD is the raw disk with a 512-byte footer: it is detected by that footer (cookie
``conectix``, a valid checksum, disk type fixed, a size matching the file) so the media
bytes, not the file, are hashed. A differencing disk names its parent (parent locator
or the VHD header's parent name) and records the parent's identifier, which must match.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pyvhdi

from ingest.errors import UnsupportedImageError
from ingest.formats.layer import Layer, Locate, open_file

FAMILY = "libvhdi"
VHD_COOKIE = b"conectix"
VHDX_SIGNATURE = b"vhdxfile"
VHD_FIXED = 2

_DISK_TYPES = {getattr(pyvhdi.disk_types, n): n.lower() for n in dir(pyvhdi.disk_types)
               if not n.startswith("_")}


def _fixed_footer(tail: bytes, size: int) -> bool:
    """A valid fixed-disk footer that accounts for the whole file."""
    if len(tail) != 512 or not tail.startswith(VHD_COOKIE):
        return False
    stored, = struct.unpack_from(">I", tail, 64)
    checksum = ~(sum(tail[:64]) + sum(tail[68:])) & 0xFFFFFFFF
    current_size, = struct.unpack_from(">Q", tail, 48)
    disk_type, = struct.unpack_from(">I", tail, 60)
    return stored == checksum and disk_type == VHD_FIXED and current_size == size - 512


def sniff(head: bytes, tail: bytes, size: int) -> str | None:
    if head.startswith(VHDX_SIGNATURE):
        return "vhdx"
    if head.startswith(VHD_COOKIE) or _fixed_footer(tail, size):
        return "vhd"
    return None


def open_layer(fmt: str, path: Path, locate: Locate) -> Layer:
    handle = pyvhdi.file()
    layer = Layer(fmt, FAMILY, handle, [path])
    try:
        layer.files.append(open_file(path))
        try:
            handle.open_file_object(layer.files[0], "r")
        except OSError as exc:
            raise UnsupportedImageError(f"cannot open {fmt.upper()} {path}: {exc}") from exc
        disk_type = _DISK_TYPES.get(handle.get_disk_type(), str(handle.get_disk_type()))
        if disk_type == "differential":
            name = handle.get_parent_filename()
            if not name:
                raise UnsupportedImageError(f"{path}: a differencing disk that names no parent")
            layer.parent_name = name
            layer.parent_id = str(handle.get_parent_identifier() or "") or None
        layer.own_id = str(handle.get_identifier() or "") or None
        layer.info = {
            "disk_type": "differencing" if disk_type == "differential" else disk_type,
            "format_version": str(handle.get_format_version()),
            "bytes_per_sector": str(handle.get_bytes_per_sector()),
            "identifier": layer.own_id or "",
            "media_size": str(handle.get_media_size()),
        }
        if layer.parent_name:
            layer.info["parent_name"] = layer.parent_name
    except BaseException:
        layer.close()
        raise
    return layer
