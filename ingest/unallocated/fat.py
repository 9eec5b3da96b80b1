"""FAT12/16/32 and exFAT: free clusters from the FAT or the allocation bitmap, in sectors.

The Sleuth Kit addresses FAT and exFAT in sectors, not clusters, and ``blkls`` follows its
``fatfs_block_getflags``: every sector before the cluster area (boot sector, reserved
sectors, FATs, a FAT12/16 root directory) counts as allocated; a sector in the cluster
area takes its cluster's state (a FAT entry of 0, or a clear exFAT bitmap bit, is free);
the few sectors after the last whole cluster count as unallocated.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from ingest.errors import IngestError
from ingest.image import EvidenceImage
from ingest.unallocated.runs import RunList

_FAT_SLICE = 16 << 20  # bytes of FAT decoded at a time: a FAT32 table can reach 1 GiB


class _Layout:
    """Where the cluster area lies, in sectors relative to the filesystem."""

    def __init__(self, first_cluster_sector: int, sectors_per_cluster: int,
                 cluster_count: int) -> None:
        self.first_cluster_sector = first_cluster_sector
        self.sectors_per_cluster = sectors_per_cluster
        self.cluster_count = cluster_count

    @property
    def end_sector(self) -> int:
        return self.first_cluster_sector + self.sectors_per_cluster * self.cluster_count

    def add_free_clusters(self, runs: RunList, free: np.ndarray, first_cluster: int) -> None:
        """Add free clusters (``free[i]`` is cluster ``first_cluster + i``) as sectors."""
        spc = self.sectors_per_cluster
        clusters = RunList()
        clusters.add_free_mask(free, first_cluster)
        for run in clusters.to_bytes(0, 1):
            runs.add(self.first_cluster_sector + (run.offset - 2) * spc, run.length * spc)

    def add_tail(self, runs: RunList, last_block: int) -> None:
        runs.add(self.end_sector, last_block + 1 - self.end_sector)


def _fat_entries(raw: bytes, bits: int, first_index: int) -> np.ndarray:
    """FAT entries decoded from ``raw``, which starts at entry ``first_index``."""
    if bits == 32:
        return np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<u4") & 0x0FFFFFFF
    if bits == 16:
        return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<u2")
    # FAT12: two entries in three bytes; the table is small (at most 6 KiB), decode it whole.
    if first_index:
        raise ValueError("FAT12 tables are decoded whole")
    data = np.frombuffer(raw[: len(raw) // 3 * 3], dtype=np.uint8).reshape(-1, 3).astype(
        np.uint16)
    even = data[:, 0] | ((data[:, 1] & 0x0F) << 8)
    odd = (data[:, 1] >> 4) | (data[:, 2] << 4)
    return np.stack([even, odd], axis=1).reshape(-1)


def fat_runs(image: EvidenceImage, base: int, fs: Any, bits: int) -> RunList:
    """Unallocated sectors of a FAT12/16/32 filesystem, as ``blkls`` lists them."""
    boot = image.read_at(base, 512)
    if len(boot) < 512:
        raise IngestError(f"FAT boot sector at byte {base} is truncated")
    bps, spc, reserved, nfats, root_entries = struct.unpack_from("<HBHBH", boot, 11)
    fat_size = struct.unpack_from("<H", boot, 22)[0] or struct.unpack_from("<I", boot, 36)[0]
    if bps != int(fs.info.block_size) or not spc:
        raise IngestError(f"FAT boot sector at byte {base} disagrees with The Sleuth Kit")
    first_data = reserved + nfats * fat_size
    first_cluster = first_data + (root_entries * 32 + bps - 1) // bps
    total = int(fs.info.block_count)
    layout = _Layout(first_cluster, spc, max(0, (total - first_cluster) // spc))
    runs = RunList()
    last_cluster = layout.cluster_count + 1
    entry_bytes = {12: 0, 16: 2, 32: 4}[bits]
    step = len_table = fat_size * bps
    if bits != 12:
        step = _FAT_SLICE // entry_bytes * entry_bytes
    fat_start = base + reserved * bps
    for pos in range(0, len_table, step):
        first_index = pos // entry_bytes if entry_bytes else 0
        if first_index > last_cluster:
            break
        raw = image.read_at(fat_start + pos, min(step, len_table - pos))
        entries = _fat_entries(raw, bits, first_index)
        lo = max(2, first_index)
        hi = min(last_cluster + 1, first_index + len(entries))
        if hi > lo:
            layout.add_free_clusters(runs, entries[lo - first_index:hi - first_index] == 0, lo)
    layout.add_tail(runs, int(fs.info.last_block))
    return runs


def exfat_runs(image: EvidenceImage, base: int, fs: Any) -> RunList:
    """Unallocated sectors of an exFAT filesystem, from its allocation bitmap."""
    boot = image.read_at(base, 512)
    if len(boot) < 512 or boot[3:11] != b"EXFAT   ":
        raise IngestError(f"exFAT boot sector at byte {base} is missing or truncated")
    heap_offset, cluster_count = struct.unpack_from("<II", boot, 88)
    sector_shift, cluster_shift = boot[108], boot[109]
    if 1 << sector_shift != int(fs.info.block_size):
        raise IngestError(f"exFAT boot sector at byte {base} disagrees with The Sleuth Kit")
    layout = _Layout(heap_offset, 1 << cluster_shift, cluster_count)
    try:
        bitmap_file = fs.open("/$ALLOC_BITMAP")
        bitmap = bitmap_file.read_random(0, int(bitmap_file.info.meta.size))
    except OSError as exc:
        raise IngestError(f"cannot read the exFAT allocation bitmap at byte {base}: {exc}") from exc
    nbits = min(cluster_count, len(bitmap) * 8)
    used = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), count=nbits, bitorder="little")
    runs = RunList()
    layout.add_free_clusters(runs, used == 0, 2)
    layout.add_tail(runs, int(fs.info.last_block))
    return runs
