"""HFS+ and HFSX: free allocation blocks from the allocation file's bitmap (Apple TN1150).

The volume header (1024 bytes into the volume, big-endian) holds the allocation file's
fork: its size and its first eight extents. Its content is one bit per allocation block,
most significant bit first, 1 = in use; ``blkls`` (TSK's ``hfs_block_getflags``) reads the
same bits, so a clear bit is an unallocated block. Only a volume whose allocation file
has more than eight extents keeps the rest in the extents-overflow B-tree; we do not walk
that tree and say so rather than read a partial bitmap.

TN1150 requires the bitmap to mark the volume header's block and the allocation,
extents-overflow and catalog files' blocks in use. A bitmap that calls them free was read
from the wrong place (a damaged block size or extent): ``blkls`` would call the whole
volume free; we report the damage instead of a wrong answer.
"""

from __future__ import annotations

import struct
from typing import Any

from ingest.errors import IngestError
from ingest.image import EvidenceImage
from ingest.unallocated.runs import RunList

HEADER_OFFSET = 1024
_SIGNATURES = {b"H+": 4, b"HX": 5}
_ALLOC_FORK = 112  # the allocation file's HFSPlusForkData in the volume header
_STRUCTURE_FORKS = (("extents-overflow file", 192), ("catalog file", 272))
_SLICE = 16 << 20  # bitmap bytes per read: 128 Mi blocks


class HfsUnsupportedError(IngestError):
    """A valid HFS+ volume whose bitmap we do not read (see ``UnallocatedUnsupportedError``)."""


def _extents(header: bytes, base: int, total_blocks: int) -> tuple[int, list[tuple[int, int]]]:
    """The allocation file's logical size and its extents, checked against the volume."""
    logical, _clump, fork_blocks = struct.unpack_from(">QII", header, _ALLOC_FORK)
    extents: list[tuple[int, int]] = []
    for i in range(8):
        start, count = struct.unpack_from(">II", header, _ALLOC_FORK + 16 + 8 * i)
        if not count:
            break
        if start + count > total_blocks:
            raise IngestError(f"HFS+ allocation file extent {i} at byte {base} (blocks {start}"
                              f"+{count}) lies outside the volume's {total_blocks} blocks")
        extents.append((start, count))
    in_extents = sum(count for _, count in extents)
    if fork_blocks > in_extents:
        raise HfsUnsupportedError(
            f"the HFS+ allocation file at byte {base} has {fork_blocks} blocks, "
            f"{fork_blocks - in_extents} of them beyond its first eight extents (in the "
            "extents-overflow B-tree, which is not read)")
    if (total_blocks + 7) // 8 > logical:
        raise IngestError(f"HFS+ allocation file at byte {base} holds {logical} bytes, too "
                          f"few for {total_blocks} blocks")
    return logical, extents


def hfs_runs(image: EvidenceImage, base: int, fs: Any) -> RunList:
    """Unallocated allocation blocks of an HFS+/HFSX volume, as ``blkls`` lists them."""
    header = image.read_at(base + HEADER_OFFSET, 512)
    if len(header) < 512:
        raise IngestError(f"HFS+ volume header at byte {base + HEADER_OFFSET} is truncated")
    signature, version = header[:2], struct.unpack_from(">H", header, 2)[0]
    if signature == b"BD":
        raise HfsUnsupportedError(f"the volume at byte {base} is an HFS wrapper (an HFS+ "
                                  "volume embedded in plain HFS), which is not read")
    if _SIGNATURES.get(signature) != version:
        raise IngestError(f"no HFS+ volume header at byte {base + HEADER_OFFSET} "
                          f"(signature {signature!r}, version {version})")
    block_size, total_blocks = struct.unpack_from(">II", header, 40)
    if block_size != int(fs.info.block_size) or total_blocks != int(fs.info.block_count):
        raise IngestError(f"HFS+ volume header at byte {base + HEADER_OFFSET} disagrees with "
                          "The Sleuth Kit")
    logical, extents = _extents(header, base, total_blocks)
    wanted = (total_blocks + 7) // 8  # bitmap bytes that cover the volume
    runs = RunList()
    done = 0  # bitmap bytes read so far
    for start, count in extents:
        extent_bytes = min(count * block_size, logical - done, wanted - done)
        for pos in range(0, extent_bytes, _SLICE):
            size = min(_SLICE, extent_bytes - pos)
            data = image.read_at(base + start * block_size + pos, size)
            if len(data) < size:
                raise IngestError(f"HFS+ allocation file at byte {base} is truncated in the "
                                  "image")
            first = (done + pos) * 8
            runs.add_free_bits(data, first, min(size * 8, total_blocks - first), "big")
        done += extent_bytes
        if done >= wanted:
            break
    if done < wanted:
        raise IngestError(f"HFS+ allocation file extents at byte {base} cover {done} of the "
                          f"{wanted} bitmap bytes")
    _check_structure(runs, header, base, extents)
    return runs


def _check_structure(runs: RunList, header: bytes, base: int,
                     alloc_extents: list[tuple[int, int]]) -> None:
    """Raise if the bitmap calls the volume's own structures free (see the module doc)."""
    block_size, total_blocks = struct.unpack_from(">II", header, 40)
    owned = [("volume header", HEADER_OFFSET // block_size, 1)]
    owned += [("allocation file", start, count) for start, count in alloc_extents]
    for name, fork in _STRUCTURE_FORKS:
        for i in range(8):
            start, count = struct.unpack_from(">II", header, fork + 16 + 8 * i)
            if count:
                owned.append((name, start, min(count, max(0, total_blocks - start))))
    for name, start, count in owned:
        if runs.any_free(start, count):
            raise IngestError(f"the HFS+ allocation bitmap at byte {base} marks the {name}'s "
                              f"blocks ({start}+{count}) free: its volume header or bitmap is "
                              "damaged")
