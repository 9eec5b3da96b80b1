"""NTFS volumes with volume shadow copy stores written by hand, for the snapshot tests.

Only Windows makes shadow copies. So the stores here follow libvshadow's documentation
of the format ("Volume Shadow Snapshot (VSS) format", libyal/libvshadow): the VSS volume
header at byte 0x1e00 of the volume, one 16 KiB catalog block (entries of type 2 and 3),
and per store a store header with its information, a block list whose descriptors map
16 KiB blocks of the volume to saved copies, an empty block range list and a current
bitmap with no bit set (every block not in the list reads from the live volume).

How a test volume is made: ``mkntfs`` formats the first ``NTFS_BYTES`` of the image and
``ntfscp`` writes the live files; a copy of it gets the files only the snapshot should
hold (``ntfscp`` again). Every 16 KiB block where the two differ is saved into the store
(past the end of the NTFS volume, in space NTFS does not use), so libvshadow's view of the
store is the snapshot state byte for byte (but for the VSS header itself, which is only
on the live volume), which the tests check before anything else. Stores are given
oldest first; each saves what differs from the next newer state, as Windows's
copy-on-write leaves them.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

BLOCK = 0x4000
VSS_GUID = uuid.UUID("3808876b-c176-4e48-b7ae-04046e6cc752").bytes_le
HEADER_AT = 0x1E00
NTFS_BYTES = 8 << 20
FILETIME_EPOCH = 116444736000000000  # 1970-01-01 in 100 ns units since 1601


def _run(*cmd: str | Path) -> None:
    if shutil.which(str(cmd[0])) is None:
        raise RuntimeError(f"{cmd[0]} is not installed (apt-get install ntfs-3g; make test)")
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True)


def ntfs_volume(path: Path, files: dict[str, bytes], total: int) -> Path:
    """An image of ``total`` bytes: NTFS over its first NTFS_BYTES, holding ``files``."""
    with path.open("wb") as fh:
        fh.truncate(total)
    _run("mkntfs", "-F", "-Q", "-q", "-s", "512", path, str(NTFS_BYTES // 512))
    add_files(path, files)
    return path


def add_files(path: Path, files: dict[str, bytes]) -> None:
    work = path.parent / f".{path.name}.src"
    work.mkdir(exist_ok=True)
    for name, data in files.items():
        src = work / "f"
        src.write_bytes(data)
        _run("ntfscp", "-q", "-f", path, src, name)
    shutil.rmtree(work)


def _block_header(record_type: int, relative: int, current: int, following: int,
                  info_size: int = 0) -> bytes:
    head = VSS_GUID + struct.pack("<II4Q", 1, record_type, relative, current, following,
                                  info_size)
    return head.ljust(128, b"\0")


@dataclass(frozen=True)
class StoreSpec:
    """One shadow copy to write: the volume as it was, its identity and its time."""

    state: bytes  # the whole volume as the snapshot saw it (same size as the live one)
    copy_id: uuid.UUID
    created: int  # seconds since 1970 (UTC)


def _filetime(seconds: int) -> int:
    return FILETIME_EPOCH + seconds * 10_000_000


def write_stores(image: Path, stores: list[StoreSpec], area: int) -> dict[str, int]:
    """Write the VSS header, a catalog and ``stores`` into ``image`` from byte ``area``
    (16 KiB aligned, past the filesystem). Returns where the structures went."""
    live = image.read_bytes()
    size = len(live)
    if area % BLOCK or area >= size:
        raise ValueError(f"store area {area} must be 16 KiB aligned and inside the image")
    out = bytearray(live)
    catalog = area
    cursor = area + BLOCK
    entries: list[bytes] = []
    where: dict[str, int] = {"catalog": catalog}
    for index, store in enumerate(stores):
        if len(store.state) != size:
            raise ValueError("a store's state must be as large as the volume")
        # A block a store does not hold is read through the next (newer) store, the
        # newest falls through to the live volume: each store saves what differs there.
        newer = stores[index + 1].state if index + 1 < len(stores) else live
        changed = [at for at in range(0, NTFS_BYTES, BLOCK)
                   if store.state[at : at + BLOCK] != newer[at : at + BLOCK]]
        header_at, list_at, ranges_at, bitmap_at = (cursor + i * BLOCK for i in range(4))
        data_at = cursor + 4 * BLOCK
        cursor = data_at + len(changed) * BLOCK
        if cursor > size:
            raise ValueError("the store area is too small for the changed blocks")
        store_id = uuid.uuid4()
        info = uuid.uuid4().bytes_le + store.copy_id.bytes_le + uuid.uuid4().bytes_le
        info += struct.pack("<4I", 0, 0, 0x0042000D, 0)
        machine = "exhibit-test".encode("utf-16-le")
        info += struct.pack("<H", len(machine)) + machine
        info += struct.pack("<H", len(machine)) + machine
        out[header_at : header_at + BLOCK] = (
            _block_header(4, 0, header_at, 0, len(info)) + info).ljust(BLOCK, b"\0")
        descriptors = b"".join(
            struct.pack("<3QII", original, data_at + i * BLOCK - header_at,
                        data_at + i * BLOCK, 0, 0)
            for i, original in enumerate(changed))
        if 128 + len(descriptors) > BLOCK:
            raise ValueError("more changed blocks than one block list block holds")
        out[list_at : list_at + BLOCK] = (
            _block_header(3, list_at - header_at, list_at, 0) + descriptors).ljust(BLOCK, b"\0")
        out[ranges_at : ranges_at + BLOCK] = _block_header(
            5, ranges_at - header_at, ranges_at, 0).ljust(BLOCK, b"\0")
        out[bitmap_at : bitmap_at + BLOCK] = _block_header(
            6, bitmap_at - header_at, bitmap_at, 0).ljust(BLOCK, b"\0")
        for i, original in enumerate(changed):
            out[data_at + i * BLOCK : data_at + (i + 1) * BLOCK] = \
                store.state[original : original + BLOCK]
        entries.append(struct.pack("<QQ16sQQQ", 2, size, store_id.bytes_le, index + 1, 0x40,
                                   _filetime(store.created)).ljust(128, b"\0"))
        entries.append(struct.pack("<QQ16s6Q", 3, list_at, store_id.bytes_le, header_at,
                                   ranges_at, bitmap_at, 0, 0, 0).ljust(128, b"\0"))
        where[f"store{index}"] = header_at
        where[f"store{index}_list"] = list_at
    out[catalog : catalog + BLOCK] = (
        _block_header(2, 0, catalog, 0) + b"".join(entries)).ljust(BLOCK, b"\0")
    header = VSS_GUID + struct.pack("<IIQQQQQ", 1, 1, HEADER_AT, HEADER_AT, 0, catalog, 0)
    header += uuid.uuid4().bytes_le + uuid.uuid4().bytes_le
    out[HEADER_AT : HEADER_AT + 512] = header.ljust(512, b"\0")
    image.write_bytes(bytes(out))
    return where


def enable_without_stores(image: Path) -> None:
    """A VSS volume header with no catalog: shadow copies enabled, none taken."""
    header = VSS_GUID + struct.pack("<IIQQQQQ", 1, 1, HEADER_AT, HEADER_AT, 0, 0, 0)
    header += uuid.uuid4().bytes_le + uuid.uuid4().bytes_le
    with image.open("r+b") as fh:
        fh.seek(HEADER_AT)
        fh.write(header.ljust(512, b"\0"))
