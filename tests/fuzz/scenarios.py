"""Hand-made corruptions from the issue's list, one image each, built with the real tools.

- ``hostile_ext4``: a directory hard link to its own ancestor (loop), a 2^40-byte file
  on a 6 MiB image, a directory entry with an out-of-range inode (image.gif), names
  with ``/``, NUL, ``..``, control characters and invalid UTF-8, a sparse 2 GiB file
  (larger than the volume) and a sparse 3 MiB one (smaller).
- ``deep_ext2``: 10,000 nested directories with a file at the bottom.
- ``hostile_fat16``: a subdirectory whose start cluster is its parent's (loop) and two
  files starting at the same cluster (cross-linked).
- ``truncated``: the MBR disk with its last 45% missing (the ext2 partition is cut).

ext4 (extents), not ext2, carries the absurd and sparse sizes: on ext2/ext3 (indirect
blocks) The Sleuth Kit spends time linear in the stated size loading the file's block
list when its directory is listed (~30 s CPU for 2^40 bytes; README, Robustness).
"""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

from fuzz.images import _fat, _run, _source_tree

ABSURD_SIZE = 1 << 40


def _patch(image: Path, old: bytes, new: bytes, count: int = 1) -> None:
    data = bytearray(image.read_bytes())
    assert len(old) == len(new)
    at = data.find(old)
    if at < 0:
        raise ValueError(f"{old!r} not found in {image}")
    data[at : at + len(old)] = new
    image.write_bytes(bytes(data))


def _ext_dirent_inode(image: Path, name: bytes, inode: int) -> None:
    """Set the inode number of the ext directory entry called ``name``."""
    data = bytearray(image.read_bytes())
    at = data.find(bytes([len(name)]) + b"\x01" + name)  # name_len, type REG, name
    if at < 0:
        raise ValueError(f"no directory entry {name!r}")
    struct.pack_into("<I", data, at - 6, inode)
    image.write_bytes(bytes(data))


def hostile_ext4(directory: Path) -> Path:
    src = _source_tree(directory, posix=True)
    for name, size in (("sparse-big.bin", 2 << 30), ("sparse-small.bin", 3 << 20)):
        with (src / name).open("wb") as fh:
            fh.truncate(size)
            fh.seek(size // 2)
            fh.write(b"data in the middle of a sparse file")
    image = directory / "hostile-ext4.img"
    image.unlink(missing_ok=True)
    _run("mke2fs", "-q", "-F", "-t", "ext4", "-b", "1024", "-d", src, image, "6M")
    commands = [
        "ln /docs /docs/deep/er/loop",  # a directory entry naming an ancestor
        f"sif /docs/notes.txt size {ABSURD_SIZE}",
    ]
    subprocess.run(["debugfs", "-w", "-f", "-", str(image)], input="\n".join(commands).encode(),
                   check=True, capture_output=True)
    _patch(image, b"slashXname.txt", b"slash/name.txt")
    _patch(image, b"nulXname.txt", b"nul\x00name.txt")
    _patch(image, b"\x02\x01dd", b"\x02\x01..")  # a regular file named ".."
    _ext_dirent_inode(image, b"image.gif", 0x7FFFFFF0)  # an inode far beyond the table
    image.chmod(0o444)
    return image


def deep_ext2(directory: Path, depth: int = 10_000) -> Path:
    image = directory / "deep-ext2.img"
    image.unlink(missing_ok=True)
    _run("mke2fs", "-q", "-F", "-t", "ext2", "-b", "1024", "-N", str(depth + 64), "-I", "128",
         image, "16M")
    bottom = directory / "bottom.txt"
    bottom.write_text("at the bottom of 10,000 directories\n")
    commands = []
    for _ in range(depth):
        commands += ["mkdir d", "cd d"]
    commands.append(f"write {bottom} bottom.txt")
    subprocess.run(["debugfs", "-w", "-f", "-", str(image)], input="\n".join(commands).encode(),
                   check=True, capture_output=True)
    image.chmod(0o444)
    return image


def hostile_fat16(directory: Path) -> Path:
    image = _fat(directory, "hostile-fat16", 16, 4096)
    data = bytearray(image.read_bytes())

    def entry(name83: bytes, after: int = 0) -> int:
        at = data.find(name83, after)
        if at < 0:
            raise ValueError(f"no FAT entry {name83!r}")
        return at

    file1, file2 = entry(b"FILE1   TXT"), entry(b"FILE2   TXT")
    data[file2 + 26 : file2 + 28] = data[file1 + 26 : file1 + 28]  # same first cluster
    deep = entry(b"DEEP       ")
    er = entry(b"ER         ", deep + 11)
    data[er + 26 : er + 28] = data[deep + 26 : deep + 28]  # /docs/deep/er is /docs/deep
    image.chmod(0o644)
    image.write_bytes(bytes(data))
    image.chmod(0o444)
    return image


def truncated(directory: Path, mbr: Path) -> Path:
    image = directory / "truncated.img"
    data = mbr.read_bytes()
    image.write_bytes(data[: int(len(data) * 0.55) // 512 * 512])
    image.chmod(0o444)
    return image


def build_all(directory: Path, mbr: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, build in (("hostile_ext4", hostile_ext4), ("deep_ext2", deep_ext2),
                        ("hostile_fat16", hostile_fat16)):
        sub = directory / name
        sub.mkdir(exist_ok=True)
        out[name] = build(sub)
    out["truncated"] = truncated(directory, mbr)
    os.sync()
    return out
