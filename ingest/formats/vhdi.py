"""Microsoft VHD and VHDX through libvhdi: fixed, dynamic and differencing disks.

A fixed VHD is the raw disk with a 512-byte footer: it is detected by that footer (cookie
``conectix``, a valid checksum, disk type fixed, a size matching the file) so the media
bytes, not the file, are hashed. A differencing disk names its parent (parent locator
or the VHD header's parent name) and records the parent's identifier, which must match.
"""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

import pyvhdi

from ingest.errors import UnsupportedImageError
from ingest.formats.layer import Layer, Locate, opened

FAMILY = "libvhdi"
VHD_COOKIE = b"conectix"
VHDX_SIGNATURE = b"vhdxfile"
VHD_FIXED = 2

_BAT = uuid.UUID("2dc27766-f623-4200-9d64-115e9bfd4a08").bytes_le
_METADATA = uuid.UUID("8b7ca206-4790-4b9a-b8fe-575f050f886e").bytes_le
_FILE_PARAMETERS = uuid.UUID("caa16737-fa36-4d43-b3b6-33f0aa44e76b").bytes_le
_DISK_SIZE = uuid.UUID("2fa54224-cd1b-4876-b211-5dbed83bf4b8").bytes_le
_SECTOR_SIZE = uuid.UUID("8141bf1d-a96f-4709-ba47-f233a8faab5f").bytes_le
_PARENT_LOCATOR = uuid.UUID("a8d35f2d-b30b-454d-abf7-d3d84834ab0c").bytes_le

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


def _vhdx_metadata(path: Path) -> tuple[dict[bytes, tuple[int, int]], dict[bytes, bytes]]:
    """(regions, metadata items) of a VHDX by GUID; empty where they cannot be read."""
    with path.open("rb") as fh:
        fh.seek(196608)
        table = fh.read(4096)
        if not table.startswith(b"regi") or len(table) < 16:
            return {}, {}
        regions = {}
        for i in range(min(struct.unpack_from("<I", table, 8)[0], (len(table) - 16) // 32)):
            guid, offset, length, _ = struct.unpack_from("<16sQII", table, 16 + 32 * i)
            regions[guid] = (offset, length)
        if _METADATA not in regions:
            return regions, {}
        meta_at = regions[_METADATA][0]
        fh.seek(meta_at)
        meta = fh.read(65536)
        if len(meta) < 32:
            return regions, {}
        items = {}
        for i in range(min(struct.unpack_from("<H", meta, 10)[0], (len(meta) - 32) // 32)):
            guid, offset, length, _flags, _ = struct.unpack_from("<16sIIII", meta, 32 + 32 * i)
            fh.seek(meta_at + offset)
            items[guid] = fh.read(min(length, 65536))
    return regions, items


def _check_vhdx_bat(path: Path, regions: dict[bytes, tuple[int, int]],
                    items: dict[bytes, bytes]) -> None:
    """Refuse a stated size the BAT cannot map, as QEMU does: libvhdi accepts it, and
    hashing the terabytes of zeros it claims would hold the run for hours."""
    try:
        size, = struct.unpack_from("<Q", items[_DISK_SIZE])
        block, flags = struct.unpack_from("<II", items[_FILE_PARAMETERS])
        sector, = struct.unpack_from("<I", items[_SECTOR_SIZE])
        bat_length = regions[_BAT][1]
    except (KeyError, struct.error):
        return  # libvhdi reads (or refuses) what we could not
    if not block or not sector or block % 512:
        return
    chunk_ratio = max(1, (1 << 23) * sector // block)
    blocks = -(-size // block)
    if flags & 2:  # has a parent: a sector bitmap entry per chunk, always
        entries = -(-blocks // chunk_ratio) * (chunk_ratio + 1)
    else:
        entries = blocks + max(0, blocks - 1) // chunk_ratio
    if entries * 8 > bat_length:
        raise UnsupportedImageError(
            f"VHDX {path} states a {size}-byte disk but its block allocation table"
            f" ({bat_length} bytes) maps less: damaged metadata (QEMU refuses it)")


def _vhdx_parent_path(items: dict[bytes, bytes]) -> str | None:
    """The parent's path from the parent locator item. libvhdi 20260901 looks up
    ``relative_path`` with a length one short, so a child naming its parent only there
    would otherwise be refused as naming none."""
    data = items.get(_PARENT_LOCATOR, b"")
    if len(data) < 20:
        return None
    found: dict[str, str] = {}
    for i in range(struct.unpack_from("<H", data, 18)[0]):
        if 20 + 12 * (i + 1) > len(data):
            break
        key_at, value_at, key_len, value_len = struct.unpack_from("<IIHH", data, 20 + 12 * i)
        key = data[key_at : key_at + key_len].decode("utf-16-le", "replace")
        found[key] = data[value_at : value_at + value_len].decode("utf-16-le", "replace")
    for key in ("relative_path", "absolute_win32_path", "volume_path"):
        if found.get(key):
            return found[key]
    return None


def open_layer(fmt: str, path: Path, locate: Locate) -> Layer:
    handle = pyvhdi.file()
    with opened(fmt, FAMILY, handle, path, fmt.upper()) as layer:
        regions, items = _vhdx_metadata(path) if fmt == "vhdx" else ({}, {})
        if fmt == "vhdx":
            _check_vhdx_bat(path, regions, items)
        disk_type = _DISK_TYPES.get(handle.get_disk_type(), str(handle.get_disk_type()))
        if disk_type == "differential":
            name = handle.get_parent_filename() or _vhdx_parent_path(items)
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
    return layer
