"""Where the walk's deleted files lie: their data runs, so carving does not find them twice.

A deleted file's blocks are free, so they are in unallocated space; when the walk still
knows the file (its directory entry or inode survived), its content is analysed as that
file, and a carve of the same bytes would report it a second time. TSK knows each file's
runs (``File`` → attributes → runs); here they become image byte runs to cut out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytsk3

from ingest.unallocated.runs import ByteRun, merge_runs

_DATA_TYPES = frozenset({int(pytsk3.TSK_FS_ATTR_TYPE_DEFAULT),
                         int(pytsk3.TSK_FS_ATTR_TYPE_NTFS_DATA)})
_SKIP_RUN = int(pytsk3.TSK_FS_ATTR_RUN_FLAG_SPARSE) | int(pytsk3.TSK_FS_ATTR_RUN_FLAG_FILLER)
_NONRESIDENT = int(pytsk3.TSK_FS_ATTR_NONRES)


def file_runs(fs: Any, volume_start: int, inode: int) -> list[ByteRun]:
    """The image byte runs of one file's data (every data stream), as TSK recovers them.

    Whole blocks (the last one's slack included: a deleted file's tail block is not free
    for a different picture either). A file TSK cannot open, or a resident one, has none.
    """
    try:
        file_obj = fs.open_meta(inode=inode)
    except OSError:
        return []
    block = int(fs.info.block_size)
    out: list[ByteRun] = []
    try:
        for attr in file_obj:
            info = attr.info
            if int(info.type) not in _DATA_TYPES or not int(info.flags) & _NONRESIDENT:
                continue
            for run in attr:
                if int(run.flags) & _SKIP_RUN or int(run.len) <= 0:
                    continue
                out.append(ByteRun(volume_start + int(run.addr) * block, int(run.len) * block))
    except (OSError, RuntimeError):  # a damaged attribute list: the runs read so far count
        pass
    return out


def files_runs(fs: Any, volume_start: int, inodes: Iterable[int]) -> list[ByteRun]:
    """The merged runs of many files (each inode once)."""
    runs: list[ByteRun] = []
    for inode in sorted(set(inodes)):
        runs.extend(file_runs(fs, volume_start, inode))
    return merge_runs(runs)
