"""NTFS: free clusters from the $Bitmap file (MFT entry 6), read through The Sleuth Kit.

$Bitmap is an ordinary non-resident file, possibly fragmented; TSK already follows its
runlist, so we read its content with pytsk3 and turn clear bits into clusters. Block
numbers are clusters, as in ``blkls``.
"""

from __future__ import annotations

from typing import Any

from ingest.errors import IngestError
from ingest.unallocated.runs import RunList

BITMAP_INODE = 6
_SLICE = 16 << 20  # bytes of bitmap per read: 128 Mi clusters


def ntfs_runs(fs: Any) -> RunList:
    """Unallocated clusters of an NTFS filesystem, as ``blkls`` lists them."""
    try:
        bitmap_file = fs.open_meta(inode=BITMAP_INODE)
        size = int(bitmap_file.info.meta.size)
    except OSError as exc:
        raise IngestError(f"cannot open the NTFS $Bitmap file: {exc}") from exc
    clusters = int(fs.info.last_block) + 1
    runs = RunList()
    for pos in range(0, min(size, (clusters + 7) // 8), _SLICE):
        try:
            data = bitmap_file.read_random(pos, min(_SLICE, size - pos))
        except OSError as exc:
            raise IngestError(f"cannot read the NTFS $Bitmap at byte {pos}: {exc}") from exc
        runs.add_free_bits(data, pos * 8, min(len(data) * 8, clusters - pos * 8))
    return runs
