"""ext2/3/4: free blocks from each block group's bitmap, found through the descriptors.

The descriptors name each bitmap's block, so flex_bg (bitmaps packed together) and 64-bit
filesystems (a high half of the address, 64-byte descriptors) need nothing special. Like
``blkls`` (TSK's ``ext2fs_block_getflags``), the bitmap is read as written, also for a
group flagged BLOCK_UNINIT, and blocks before ``s_first_data_block`` are allocated. In a
BLOCK_UNINIT group that makes the backup superblock and descriptors count as free, where
e2fsprogs counts them used: over-inclusive for carving, never missing a free block.
"""

from __future__ import annotations

import struct
from typing import Any

from ingest.errors import IngestError
from ingest.image import EvidenceImage
from ingest.unallocated.runs import RunList

_INCOMPAT_64BIT = 0x80


def ext_runs(image: EvidenceImage, base: int, fs: Any) -> RunList:
    """Unallocated blocks of an ext2/3/4 filesystem, as ``blkls`` lists them."""
    sb = image.read_at(base + 1024, 1024)
    if len(sb) < 1024 or sb[56:58] != b"\x53\xef":
        raise IngestError(f"ext superblock at byte {base + 1024} is missing or truncated")
    blocks_lo = struct.unpack_from("<I", sb, 4)[0]
    first_data, log_size = struct.unpack_from("<II", sb, 20)
    blocks_per_group = struct.unpack_from("<I", sb, 32)[0]
    incompat = struct.unpack_from("<I", sb, 96)[0]
    is64 = bool(incompat & _INCOMPAT_64BIT)
    desc_size = struct.unpack_from("<H", sb, 254)[0] if is64 else 32
    blocks = blocks_lo | ((struct.unpack_from("<I", sb, 336)[0] << 32) if is64 else 0)
    block_size = 1024 << log_size
    if block_size != int(fs.info.block_size) or not blocks_per_group or desc_size < 32:
        raise IngestError(f"ext superblock at byte {base + 1024} disagrees with The Sleuth Kit")
    last_block = min(blocks - 1, int(fs.info.last_block))
    # Groups from TSK's last block, not the raw count: a damaged count cannot make us read
    # a descriptor table larger than the filesystem TSK accepted.
    groups = (last_block + 1 - first_data + blocks_per_group - 1) // blocks_per_group
    table = image.read_at(base + (first_data + 1) * block_size, groups * desc_size)
    if len(table) < groups * desc_size:
        raise IngestError(f"ext group descriptors at byte {base} are truncated")
    runs = RunList()
    bitmap_bytes = (blocks_per_group + 7) // 8
    for group in range(groups):
        desc = table[group * desc_size:(group + 1) * desc_size]
        bitmap_block = struct.unpack_from("<I", desc, 0)[0]
        if desc_size >= 64:
            bitmap_block |= struct.unpack_from("<I", desc, 32)[0] << 32
        first = first_data + group * blocks_per_group
        count = min(blocks_per_group, last_block + 1 - first)
        if count <= 0:
            break
        if not 0 < bitmap_block <= last_block:
            # blkls fails here too; the caller may carve the whole volume instead.
            raise IngestError(f"ext group {group} at byte {base} names block bitmap "
                              f"{bitmap_block}, outside the filesystem")
        bitmap = image.read_at(base + bitmap_block * block_size, bitmap_bytes)
        runs.add_free_bits(bitmap, first, count)
    return runs
