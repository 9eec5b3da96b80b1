"""A minimal but valid HFS+ (or HFSX) volume, written from Apple's TN1150.

No mkfs for HFS+ installs on Debian 12, so the tests write one: boot blocks and the volume
header, the allocation file (bitmap), an extents-overflow B-tree holding only its header
node, a catalog B-tree with one leaf node (the root folder, its thread, each file and its
thread), file data forks at known blocks, and the alternate volume header 1024 bytes before
the end. A "deleted" file is data left in blocks the bitmap calls free, with no catalog
record: what a file system leaves after a delete. The Sleuth Kit is the judge that the
result is real HFS+ (``fsstat``, ``fls``, ``icat``, ``blkls`` all read it).

Debian's ``hfsplus`` tools (``hpmount``/``hpcopy``) were tried for adding the files: on
this 64-bit Debian 12 ``hpmount`` refuses every volume ("This is not a HFS+ volume"),
and, opened read-write, rewrote the volume header it had just refused; the kernel here
has no hfsplus driver to loop-mount with. So the builder writes the file records too.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

HEADER_END = 1536  # the boot blocks (1 KiB) and the 512-byte volume header
NODE = 4096          # B-tree node size (TN1150: catalog nodes are at least 4 KiB)
MAC_EPOCH = 2082844800  # seconds from 1904-01-01 (HFS+ time) to 1970-01-01
STAMP = MAC_EPOCH + 1_700_000_000  # a fixed time: the builder is deterministic
ROOT_PARENT, ROOT_FOLDER, EXTENTS_ID, CATALOG_ID, ALLOC_ID = 1, 2, 3, 4, 6
FIRST_USER_ID = 16


@dataclass
class Placed:
    """A file's data fork: its catalog ID and where its blocks are."""

    name: str
    cnid: int
    start: int
    blocks: int
    size: int


@dataclass
class HfsLayout:
    """What the builder wrote where, in allocation blocks, for the tests to check against."""

    block_size: int
    total_blocks: int
    alloc_start: int
    files: list[Placed] = field(default_factory=list)
    deleted: list[Placed] = field(default_factory=list)


def _fork(size: int, extents: list[tuple[int, int]], block_size: int) -> bytes:
    blocks = sum(n for _, n in extents)
    raw = struct.pack(">QII", size, block_size, blocks)
    raw += b"".join(struct.pack(">II", s, n) for s, n in extents)
    return raw.ljust(80, b"\0")


def _name(text: str) -> bytes:
    units = text.encode("utf-16-be")
    return struct.pack(">H", len(units) // 2) + units


def _cat_key(parent: int, name: str) -> bytes:
    body = struct.pack(">I", parent) + _name(name)
    return struct.pack(">H", len(body)) + body


def _bsd(mode: int) -> bytes:
    return struct.pack(">IIBBHI", 0, 0, 0, 0, mode, 0)


def _folder(cnid: int, valence: int) -> bytes:
    rec = struct.pack(">hHII", 1, 0, valence, cnid) + struct.pack(">5I", *[STAMP] * 5)
    rec += _bsd(0o040755) + bytes(32) + struct.pack(">II", 0, 0)
    assert len(rec) == 88
    return rec


def _file(cnid: int, data_fork: bytes) -> bytes:
    rec = struct.pack(">hHII", 2, 0x0002, 0, cnid) + struct.pack(">5I", *[STAMP] * 5)
    rec += _bsd(0o100644) + bytes(32) + struct.pack(">II", 0, 0) + data_fork + bytes(80)
    assert len(rec) == 248
    return rec


def _thread(kind: int, parent: int, name: str) -> bytes:
    return struct.pack(">hhI", kind, 0, parent) + _name(name)


def _node(kind: int, height: int, records: list[bytes]) -> bytes:
    """A B-tree node: descriptor, records, and the offsets table at its end."""
    body = struct.pack(">IIbBHH", 0, 0, kind, height, len(records), 0)
    offsets = []
    for rec in records:
        offsets.append(len(body))
        body += rec
    offsets.append(len(body))
    table = b"".join(struct.pack(">H", o) for o in reversed(offsets))
    if len(body) + len(table) > NODE:
        raise ValueError("records do not fit one B-tree node")
    return body.ljust(NODE - len(table), b"\0") + table


def _header_node(nodes: int, depth: int, root: int, leaf_records: int, leaf: int,
                 max_key: int, attributes: int, compare: int) -> bytes:
    header = struct.pack(">HIIIIHHIIHIBBI", depth, root, leaf_records, leaf, leaf, NODE,
                         max_key, nodes, nodes - (2 if root else 1), 0, NODE, 0, compare,
                         attributes) + bytes(64)
    used = bytearray(NODE - 256)  # the map record: one bit per node, MSB first
    used[0] = 0xC0 if root else 0x80
    return _node(1, 0, [header, bytes(128), bytes(used)])


def build_hfs(path: Path, files: list[tuple[str, bytes]], deleted: list[bytes] = (),
              *, block_size: int = 4096, total_blocks: int = 512, hfsx: bool = False,
              volume_name: str = "EXHIBIT", alloc_fragments: int = 1) -> HfsLayout:
    """Write an HFS+ volume with ``files`` in its root folder and ``deleted`` data freed.

    Blocks: 0 boot + header, then the allocation file, the extents B-tree (4 nodes), the
    catalog B-tree (8 nodes), files in order each after a one-block gap, the deleted data,
    and the last block (alternate header). Only the gaps and the deleted data are free.
    ``alloc_fragments`` (at most 8) splits the allocation file into that many extents,
    each after a free block, as on a volume that grew.
    """
    per_node = NODE // block_size
    bitmap_bytes = (total_blocks + 7) // 8
    alloc_blocks = -(-bitmap_bytes // block_size)
    layout = HfsLayout(block_size, total_blocks, alloc_start=1)
    used = bytearray(total_blocks)

    def take(start: int, count: int, mark: bool = True) -> int:
        if start + count > total_blocks - 1:
            raise ValueError("the volume is too small for its contents")
        if mark:
            used[start:start + count] = b"\1" * count
        return start

    first_block = -(-HEADER_END // block_size)  # boot blocks and the header
    take(0, first_block)
    if not 0 < alloc_fragments <= min(8, alloc_blocks):
        raise ValueError(f"cannot split {alloc_blocks} bitmap blocks in {alloc_fragments}")
    alloc_extents: list[tuple[int, int]] = []
    nxt = first_block
    for k in range(alloc_fragments):
        count = alloc_blocks // alloc_fragments + (k < alloc_blocks % alloc_fragments)
        nxt += bool(k)  # a free block between fragments
        alloc_extents.append((take(nxt, count), count))
        nxt += count
    layout.alloc_start = first_block
    ext_start, ext_nodes = nxt, 4
    nxt = take(ext_start, ext_nodes * per_node) + ext_nodes * per_node
    cat_start, cat_nodes = nxt, 8
    nxt = take(cat_start, cat_nodes * per_node) + cat_nodes * per_node
    data: dict[int, bytes] = {}
    for i, (name, content) in enumerate(files):
        nxt += 1  # a free block before each file
        count = max(1, -(-len(content) // block_size))
        layout.files.append(Placed(name, FIRST_USER_ID + i, take(nxt, count), count,
                                   len(content)))
        data[nxt] = content
        nxt += count
    for content in deleted:
        count = max(1, -(-len(content) // block_size))
        layout.deleted.append(Placed("", 0, take(nxt, count, mark=False), count, len(content)))
        data[nxt] = content
        nxt += count
    used[total_blocks - 1] = 1  # the alternate volume header's block

    records: list[tuple[tuple[int, str], bytes]] = [
        ((ROOT_PARENT, volume_name), _cat_key(ROOT_PARENT, volume_name)
         + _folder(ROOT_FOLDER, len(files))),
        ((ROOT_FOLDER, ""), _cat_key(ROOT_FOLDER, "") + _thread(3, ROOT_PARENT, volume_name)),
    ]
    for f in layout.files:
        fork = _fork(f.size, [(f.start, f.blocks)], block_size)
        records.append(((ROOT_FOLDER, f.name), _cat_key(ROOT_FOLDER, f.name)
                        + _file(f.cnid, fork)))
        records.append(((f.cnid, ""), _cat_key(f.cnid, "") + _thread(4, ROOT_FOLDER, f.name)))
    # HFS+ orders catalog keys by parent, then case-folded name; HFSX by binary name.
    records.sort(key=lambda r: (r[0][0], r[0][1] if hfsx else r[0][1].upper()))
    leaf = _node(-1, 1, [rec for _, rec in records])
    catalog = _header_node(cat_nodes, 1, 1, len(records), 1, 516, 0x6,
                           0xBC if hfsx else 0xCF) + leaf
    extents = _header_node(ext_nodes, 0, 0, 0, 0, 10, 0x2, 0)

    bits = bytearray(alloc_blocks * block_size)
    for block, flag in enumerate(used):
        if flag:
            bits[block // 8] |= 0x80 >> (block % 8)
    free = total_blocks - sum(used)
    header = struct.pack(">2sHIII4I", b"HX" if hfsx else b"H+", 5 if hfsx else 4,
                         0x100, 0x31302E30, 0, STAMP, STAMP, 0, STAMP)
    header += struct.pack(">IIIIIIIIIIQ", len(files), 0, block_size, total_blocks, free,
                          nxt, block_size, block_size, FIRST_USER_ID + len(files), 1, 1)
    header += bytes(32)  # Finder info
    header += _fork(len(bits), alloc_extents, block_size)
    header += _fork(ext_nodes * NODE, [(ext_start, ext_nodes * per_node)], block_size)
    header += _fork(cat_nodes * NODE, [(cat_start, cat_nodes * per_node)], block_size)
    header += bytes(160)  # no attributes file, no startup file
    assert len(header) == 512

    size = total_blocks * block_size
    with path.open("wb") as fh:
        fh.truncate(size)
        for offset, chunk in ((1024, header), (size - 1024, header),
                              *_pieces(bits, alloc_extents, block_size),
                              (ext_start * block_size, extents),
                              (cat_start * block_size, catalog),
                              *((b * block_size, c) for b, c in data.items())):
            fh.seek(offset)
            fh.write(chunk)
    return layout


def _pieces(data: bytes, extents: list[tuple[int, int]], block_size: int
            ) -> list[tuple[int, bytes]]:
    """(byte offset, bytes) of ``data`` laid over ``extents`` in order."""
    out, pos = [], 0
    for start, count in extents:
        out.append((start * block_size, data[pos:pos + count * block_size]))
        pos += count * block_size
    return out

