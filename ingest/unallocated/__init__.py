"""Unallocated space: what ``blkls`` gives per filesystem, plus the space no volume holds.

Carving needs the bytes no file owns. For a filesystem that is its allocation state; for
a volume with no filesystem we know, the whole volume; for the disk, the gaps between and
after partitions. Every answer is a sorted, merged list of ``ByteRun`` (image offset,
length) so the carver can read it in large sequential reads (``iter_unallocated``).

pytsk3 does not expose ``tsk_fs_block_walk`` (``FS_Info`` opens files and directories,
nothing else), and a per-block callback would cost minutes on a large disk anyway. So we
read each filesystem's own allocation structures (the FAT, the exFAT and NTFS bitmaps,
the ext block bitmaps, the HFS+ allocation file) and turn them into runs with numpy;
``blkls`` is the oracle the tests hold every filesystem type to.
"""

from __future__ import annotations

import struct
from typing import Any

from ingest.errors import IngestError
from ingest.image import EvidenceImage
from ingest.unallocated.ext import ext_runs
from ingest.unallocated.fat import exfat_runs, fat_runs
from ingest.unallocated.hfs import HfsUnsupportedError, hfs_runs
from ingest.unallocated.ntfs import ntfs_runs
from ingest.unallocated.runs import (
    DEFAULT_CHUNK,
    ByteRun,
    RunList,
    iter_unallocated,
    merge_runs,
    subtract_runs,
)
from ingest.volumes import Volume, VolumeScan

__all__ = [
    "DEFAULT_CHUNK", "SUPPORTED_FS_TYPES", "ByteRun", "UnallocatedUnsupportedError",
    "filesystem_unallocated", "iter_unallocated", "merge_runs", "partition_gaps",
    "subtract_runs", "volume_slack", "volume_unallocated",
]

SUPPORTED_FS_TYPES: tuple[str, ...] = (
    "fat12", "fat16", "fat32", "exfat", "ntfs", "ext2", "ext3", "ext4", "hfs",
)


class UnallocatedUnsupportedError(IngestError):
    """We cannot tell this filesystem's free blocks; the caller records why and goes on."""


def _block_runs(image: EvidenceImage, offset: int, fs: Any, fs_type: str) -> RunList:
    if fs_type in ("fat12", "fat16", "fat32"):
        return fat_runs(image, offset, fs, int(fs_type[3:]))
    if fs_type == "exfat":
        return exfat_runs(image, offset, fs)
    if fs_type == "ntfs":
        return ntfs_runs(fs)
    if fs_type in ("ext2", "ext3", "ext4"):
        return ext_runs(image, offset, fs)
    if fs_type == "hfs":  # TSK's name for HFS+ and HFSX
        try:
            return hfs_runs(image, offset, fs)
        except HfsUnsupportedError as exc:
            raise UnallocatedUnsupportedError(str(exc)) from exc
    raise UnallocatedUnsupportedError(
        f"unallocated space of a {fs_type} filesystem is not read yet (supported: "
        f"{', '.join(SUPPORTED_FS_TYPES)})"
    )


def filesystem_unallocated(image: EvidenceImage, offset: int, fs: Any,
                           fs_type: str) -> list[ByteRun]:
    """The unallocated blocks of the filesystem at ``offset``: what ``blkls`` writes out.

    ``fs`` and ``fs_type`` are what ``ingest.walk.open_filesystem(image, offset)``
    returns (pytsk3 does not tell a filesystem's offset). Runs are clipped to the
    image, as ``blkls`` cannot read past its end either.
    """
    runs = _block_runs(image, offset, fs, fs_type).to_bytes(offset, int(fs.info.block_size))
    return [ByteRun(r.offset, min(r.end, image.size) - r.offset)
            for r in runs if r.offset < image.size]


def volume_unallocated(image: EvidenceImage, volume: Volume,
                       opened: tuple[Any, str] | None) -> list[ByteRun]:
    """A volume's unallocated bytes: its filesystem's and its slack, or all of it.

    ``opened`` is ``open_filesystem``'s answer, or None where no filesystem was
    recognised (then every byte of the volume may hold a deleted picture). With a
    filesystem this is ``blkls``'s answer plus the volume slack: the bytes of the volume
    after the filesystem's last block, which no file can own (a partition grown, or a
    smaller filesystem written over a larger one's place).
    """
    end = min(volume.start + volume.length, image.size)
    if opened is None:
        return [ByteRun(volume.start, end - volume.start)] if end > volume.start else []
    fs, fs_type = opened
    runs = filesystem_unallocated(image, volume.start, fs, fs_type)
    runs += volume_slack(image, volume, fs, fs_type)
    return [ByteRun(r.offset, min(r.end, end) - r.offset) for r in merge_runs(runs)
            if r.offset < end]


def volume_slack(image: EvidenceImage, volume: Volume, fs: Any, fs_type: str) -> list[ByteRun]:
    """The volume's bytes after the filesystem's last block, less NTFS's backup boot sector.

    NTFS keeps a copy of its boot sector just past the sectors its boot sector counts,
    which is past TSK's last cluster: structure, not free space.
    """
    start = volume.start + (int(fs.info.last_block) + 1) * int(fs.info.block_size)
    end = min(volume.start + volume.length, image.size)
    if start >= end:
        return []
    holes: list[ByteRun] = []
    if fs_type == "ntfs":
        boot = image.read_at(volume.start, 512)
        if len(boot) == 512:
            sector = struct.unpack_from("<H", boot, 11)[0] or 512
            backup = volume.start + struct.unpack_from("<Q", boot, 40)[0] * sector
            holes.append(ByteRun(backup, sector))
    return subtract_runs([ByteRun(start, end - start)], holes)


def partition_gaps(image: EvidenceImage, scan: VolumeScan) -> list[ByteRun]:
    """Bytes in no partition: the volume system's unallocated slots and the image's tail.

    TSK's unallocated slots can overlap a partition-table sector (DOS slot 0 covers the
    MBR), and TSK does not list GPT's backup header and table at the end of the disk;
    those sectors are structure, not free space, so every table, partition and the
    backup GPT are cut out. An image without a partition table has no gaps.
    """
    if scan.partition_table is None:
        return []
    held = [ByteRun(v.start, v.length) for v in scan.volumes if v.flag != "unallocated"]
    free = [ByteRun(v.start, v.length) for v in scan.volumes if v.flag == "unallocated"]
    covered_to = max((v.start + v.length for v in scan.volumes), default=0)
    if covered_to < image.size:
        free.append(ByteRun(covered_to, image.size - covered_to))
    if scan.partition_table == "gpt":
        held += _backup_gpt(image, scan.block_size)
    gaps = subtract_runs(free, held)
    return [ByteRun(r.offset, min(r.end, image.size) - r.offset)
            for r in gaps if r.offset < image.size]


def _backup_gpt(image: EvidenceImage, sector: int) -> list[ByteRun]:
    """The backup GPT header and the entry table before it, where the header says."""
    primary = image.read_at(sector, 92)
    if len(primary) < 92 or primary[:8] != b"EFI PART":
        return []
    backup_lba, = struct.unpack_from("<Q", primary, 32)
    entries, entry_size = struct.unpack_from("<II", primary, 80)
    backup = image.read_at(backup_lba * sector, 92)
    if len(backup) < 92 or backup[:8] != b"EFI PART":
        return []
    table_lba, = struct.unpack_from("<Q", backup, 72)
    table = ByteRun(table_lba * sector, -(-entries * entry_size // sector) * sector)
    return [table, ByteRun(backup_lba * sector, sector)]
