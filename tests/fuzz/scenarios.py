"""Hand-made corruptions from the issue's list, one image each, built with the real tools.

- ``hostile_ext4``: a directory hard link to its own ancestor (loop), a 2^40-byte file
  on a 6 MiB image, a directory entry with an out-of-range inode (image.gif), names
  with ``/``, NUL, ``..``, control characters and invalid UTF-8, a sparse 2 GiB file
  (larger than the volume) and a sparse 3 MiB one (smaller).
- ``deep_ext2``: 10,000 nested directories with a file at the bottom.
- ``hostile_fat16``: a subdirectory whose start cluster is its parent's (loop) and two
  files starting at the same cluster (cross-linked).
- ``truncated``: the MBR disk with its last 45% missing (the ext2 partition is cut).
- ``stalling_ext2``: an MBR disk whose first partition is ext2 with ``/z/slow.bin``
  stating 2^48 bytes (The Sleuth Kit in pytsk3 spends hours listing ``/z``; ``fls`` does
  not load the block list and is unaffected), and a FAT12 second partition.
- ``two_filesystems``: an MBR disk whose partition was formatted NTFS, then ext2 over it
  without wiping: both stay valid and TSK's auto-detection refuses the volume.

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


STALL_SIZE = 1 << 48


def _disk(image: Path, parts: list[tuple[int, Path, str]], mib: int) -> Path:
    """An MBR disk of ``mib`` MiB holding each (start sector, partition image, type)."""
    image.unlink(missing_ok=True)
    with image.open("wb") as fh:
        fh.truncate(mib << 20)
    layout = "label: dos\nlabel-id: 0x45584849\nunit: sectors\n" + "".join(
        f"start={start}, size={part.stat().st_size // 512}, type={kind}\n"
        for start, part, kind in parts)
    subprocess.run(["sfdisk", "-q", str(image)], input=layout.encode(), check=True,
                   capture_output=True)
    with image.open("r+b") as fh:
        for start, part, _ in parts:
            fh.seek(start * 512)
            fh.write(part.read_bytes())
    return image


def stalling_ext2(directory: Path) -> Path:
    """Deterministic: /a (two files) is walked before /z, whose slow.bin stalls TSK."""
    (directory / "one.txt").write_text("one\n")
    (directory / "slow.txt").write_text("states 2^48 bytes\n")
    ext = directory / "stall-ext2.img"
    ext.unlink(missing_ok=True)
    _run("mke2fs", "-q", "-F", "-t", "ext2", "-b", "1024", "-N", "64",
         "-U", "6578ce1b-5a3d-4c5e-9b1a-000000000007",
         "-E", "hash_seed=6578ce1b-5a3d-4c5e-9b1a-0000000000a7", ext, "4M")
    commands = ["mkdir a", f"write {directory / 'one.txt'} a/one.txt",
                f"write {directory / 'one.txt'} a/two.txt", "mkdir z",
                f"write {directory / 'slow.txt'} z/slow.bin",
                f"write {directory / 'one.txt'} z/after.txt",
                f"sif /z/slow.bin size {STALL_SIZE}"]
    subprocess.run(["debugfs", "-w", "-f", "-", str(ext)], input="\n".join(commands).encode(),
                   check=True, capture_output=True)
    fat = _fat(directory, "after-stall-fat12", 12, 2048)
    image = _disk(directory / "stalling-ext2.img", [(2048, ext, "83"), (10240, fat, "1")], 8)
    image.chmod(0o444)
    return image


def two_filesystems(directory: Path) -> Path:
    """One partition formatted NTFS, then ext2 over it, both valid.

    mke2fs would erase the NTFS traces (it discards the device and zeroes the boot
    sector's signature), so it runs with ``nodiscard`` and sector 0, which ext2 with
    1 KiB blocks never uses, is put back. NTFS's 64 KiB clusters place its MFT at
    128 KiB, beyond the ~40 KiB ext2 writes with 32 inodes and a few small files.
    """
    src = directory / "two-src"
    (src / "docs").mkdir(parents=True, exist_ok=True)
    (src / "docs" / "ext-note.txt").write_text("written by ext2\n" * 40)
    (src / "ext-top.txt").write_text("ext2 top\n")
    part = directory / "two-fs-part.img"
    part.unlink(missing_ok=True)
    with part.open("wb") as fh:
        fh.truncate(8 << 20)
    _run("mkntfs", "-F", "-Q", "-q", "-c", "65536", "-L", "HIDDEN", part)
    for name, text in (("ntfs-secret.txt", "hidden in NTFS\n" * 200),
                       ("ntfs-small.txt", "small\n")):
        (directory / name).write_text(text)
        _run("ntfscp", "-q", part, directory / name, name)
    boot = part.read_bytes()[:512]
    _run("mke2fs", "-q", "-F", "-t", "ext2", "-b", "1024", "-N", "32", "-m", "0",
         "-O", "^resize_inode", "-U", "6578ce1b-5a3d-4c5e-9b1a-000000000008",
         "-E", "nodiscard,hash_seed=6578ce1b-5a3d-4c5e-9b1a-0000000000a8", "-d", src, part)
    with part.open("r+b") as fh:
        fh.write(boot)
    image = _disk(directory / "two-filesystems.img", [(2048, part, "7")], 10)
    image.chmod(0o444)
    return image


def build_all(directory: Path, mbr: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, build in (("hostile_ext4", hostile_ext4), ("deep_ext2", deep_ext2),
                        ("hostile_fat16", hostile_fat16), ("stalling_ext2", stalling_ext2),
                        ("two_filesystems", two_filesystems)):
        sub = directory / name
        sub.mkdir(exist_ok=True)
        out[name] = build(sub)
    out["truncated"] = truncated(directory, mbr)
    os.sync()
    return out
