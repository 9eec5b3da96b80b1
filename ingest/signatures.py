"""What the bytes of an image look like, when exhibit finds no volume or filesystem in them.

exhibit reads raw, split raw and E01 containers. A virtual disk (VMDK, VHD, VHDX, QCOW2,
VDI), an Apple disk image, an encrypted or pooled volume (LUKS, BitLocker, LVM, APFS) or a
compressed copy hashes fine but holds nothing The Sleuth Kit can walk. The examiner must
then be told plainly what the input is, so it can be converted (``qemu-img convert -O
raw``), decrypted or unpacked and triaged again. Identified by content signatures, never by
the file's name: a renamed file is what its bytes say.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

Reader = Callable[[int, int], bytes]  # (offset, size) -> bytes, short only at the end

UNKNOWN = "unknown"
_HEAD = 4096  # every start signature lies within the first 4 KiB
_BLANK_SPAN = 1 << 20  # "blank" when the first MiB (or the whole, if smaller) is zeros
_VHD_TYPES = {2: "fixed", 3: "dynamic", 4: "differencing"}

# (kind, offset from the start, magic), in the order they are tried: containers first
# (their data blocks may hold anything), then volumes, then compressed or archived copies.
_START_SIGNATURES: tuple[tuple[str, int, bytes], ...] = (
    ("VMDK sparse extent", 0, b"KDMV"),
    ("VMDK ESX sparse extent (COWD)", 0, b"COWD"),
    ("VMDK descriptor (the data is in the extent files it names)", 0,
     b"# Disk DescriptorFile"),
    ("VHDX", 0, b"vhdxfile"),
    ("QCOW", 0, b"QFI\xfb"),
    ("VirtualBox VDI", 64, b"\x7f\x10\xda\xbe"),
    ("VHD", 0, b"conectix"),  # a dynamic VHD repeats its footer at the start
    ("APFS container", 32, b"NXSB"),
    ("LUKS encrypted volume", 0, b"LUKS\xba\xbe"),
    ("BitLocker encrypted volume", 3, b"-FVE-FS-"),
    ("gzip-compressed file", 0, b"\x1f\x8b\x08"),
    ("xz-compressed file", 0, b"\xfd7zXZ\x00"),
    ("bzip2-compressed file", 0, b"BZh"),
    ("Zstandard-compressed file", 0, b"\x28\xb5\x2f\xfd"),
    ("7-Zip archive", 0, b"7z\xbc\xaf\x27\x1c"),
    ("ZIP archive", 0, b"PK\x03\x04"),
)
# Trailers in the last 512 bytes: a fixed VHD is raw data plus a footer; a DMG (UDIF)
# ends with its 'koly' block.
_END_SIGNATURES: tuple[tuple[str, bytes], ...] = (
    ("VHD", b"conectix"),
    ("Apple disk image (DMG, UDIF)", b"koly"),
)


def identify(read: Reader, start: int, length: int) -> str:
    """A plain name for what the ``length`` bytes at ``start`` look like, or ``"unknown"``."""
    if length <= 0:
        return UNKNOWN
    head = read(start, min(_HEAD, length))
    for kind, offset, magic in _START_SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return _refine(kind, head, read, start, length, offset)
    if _has_lvm_label(head):
        return "LVM2 physical volume"
    if length >= 512:
        tail = read(start + length - 512, 512)
        for kind, magic in _END_SIGNATURES:
            if tail.startswith(magic):
                return _refine(kind, tail, read, start, length, 0)
    span = min(length, _BLANK_SPAN)
    if read(start, span).count(0) == span:
        return "blank (only zero bytes in the first MiB)" if span == _BLANK_SPAN \
            else "blank (only zero bytes)"
    return UNKNOWN


def _refine(kind: str, block: bytes, read: Reader, start: int, length: int,
            offset: int) -> str:
    """Add what the header itself says: QCOW version, VHD type, LUKS version."""
    if kind == "QCOW" and len(block) >= 8:
        version = struct.unpack(">I", block[4:8])[0]
        return "QCOW2" if version in (2, 3) else f"QCOW (version {version})"
    if kind == "VHD" and len(block) >= offset + 64:
        disk_type = struct.unpack(">I", block[offset + 60:offset + 64])[0]
        return f"VHD ({_VHD_TYPES.get(disk_type, f'disk type {disk_type}')})"
    if kind == "LUKS encrypted volume" and len(block) >= 8:
        return f"LUKS{struct.unpack('>H', block[6:8])[0]} encrypted volume"
    return kind


def _has_lvm_label(head: bytes) -> bool:
    """LVM2 may put its label in any of the first four sectors (sector 1 by default)."""
    return any(head[s * 512:s * 512 + 8] == b"LABELONE"
               and head[s * 512 + 24:s * 512 + 32] == b"LVM2 001" for s in range(4))

