"""Unallocated space: our runs against ``blkls`` and libtsk's block walk, on ~256 MB images.

Builds an ext4 and a FAT32 image (files copied in, every other one deleted), then times
with a warm page cache:
  ours-ranges   ingest.unallocated.filesystem_unallocated (allocation state -> runs)
  ours-read     iter_unallocated over those runs, 8 MiB reads, bytes discarded
  blkls         ``blkls image > /dev/null`` (walks and writes the same bytes)
  tsk-walk      libtsk's tsk_fs_block_walk(UNALLOC|AONLY) through ctypes with a Python
                callback per block: the "reach libtsk another way" alternative
Usage: PYTHONPATH=. python benchmarks/unallocated/run.py [--size-mib 256] [--dir DIR]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import tempfile
import time
from pathlib import Path

from ingest.image import open_image
from ingest.unallocated import filesystem_unallocated, iter_unallocated
from ingest.walk import open_filesystem

MIB = 1 << 20
_UNALLOC, _AONLY = 0x02, 0x10
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


def _files(folder: Path, total_mib: int) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(total_mib * 2):  # 512 KiB each, a few odd sizes
        path = folder / f"f{i:04d}.bin"
        path.write_bytes(os.urandom(512 * 1024 - (i % 7) * 1000))
        paths.append(path)
    return paths


def build(work: Path, size_mib: int) -> dict[str, Path]:
    files = _files(work / "files", size_mib * 6 // 10)
    ext4 = work / "ext4.img"
    with ext4.open("wb") as fh:
        fh.truncate(size_mib * MIB)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(work / "files"), str(ext4)],
                   check=True)
    gone = " ".join(f"rm {p.name};" for p in files[::2]).split(";")
    script = work / "rm.txt"
    script.write_text("\n".join(c.strip() for c in gone if c.strip()) + "\n")
    subprocess.run(["debugfs", "-w", "-f", str(script), str(ext4)], check=True,
                   capture_output=True)
    fat = work / "fat32.img"
    with fat.open("wb") as fh:
        fh.truncate(size_mib * MIB)
    subprocess.run(["mkfs.vfat", "-F", "32", str(fat)], check=True, capture_output=True)
    subprocess.run(["mcopy", "-i", str(fat), *map(str, files), "::/"], check=True)
    subprocess.run(["mdel", "-i", str(fat), *(f"::/{p.name}" for p in files[::2])], check=True)
    return {"ext4": ext4, "fat32": fat}


def tsk_walk(img: Path, first: int, last: int) -> tuple[int, float]:
    """Blocks tsk_fs_block_walk calls back for, and the seconds it took."""
    lib = ctypes.CDLL("libtsk.so.19")
    lib.tsk_img_open_sing.restype = ctypes.c_void_p
    lib.tsk_img_open_sing.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_uint]
    lib.tsk_fs_open_img.restype = ctypes.c_void_p
    lib.tsk_fs_open_img.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int]
    lib.tsk_fs_block_walk.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64,
                                      ctypes.c_int, _CALLBACK, ctypes.c_void_p]
    count = 0

    def each(_block: int, _ptr: int) -> int:
        nonlocal count
        count += 1
        return 0  # TSK_WALK_CONT

    callback = _CALLBACK(each)
    start = time.perf_counter()
    fs = lib.tsk_fs_open_img(lib.tsk_img_open_sing(str(img).encode(), 0, 0), 0, 0)
    lib.tsk_fs_block_walk(fs, first, last, _UNALLOC | _AONLY, callback, None)
    return count, time.perf_counter() - start


def measure(name: str, img: Path) -> None:
    subprocess.run(["cat", str(img)], check=True, stdout=subprocess.DEVNULL)  # warm cache
    with open_image(img) as image:
        start = time.perf_counter()
        fs, fs_type = open_filesystem(image, 0)
        runs = filesystem_unallocated(image, 0, fs, fs_type)
        ranges = time.perf_counter() - start
        start = time.perf_counter()
        total = sum(len(data) for _, data in iter_unallocated(image, runs))
        read = time.perf_counter() - start
        first, last, block = (int(fs.info.first_block), int(fs.info.last_block),
                              int(fs.info.block_size))
    start = time.perf_counter()
    out = subprocess.run(["blkls", str(img)], check=True, capture_output=True).stdout
    blkls = time.perf_counter() - start
    blocks, walk = tsk_walk(img, first, last)
    print(f"{name}: {len(runs)} runs, {total / MIB:.1f} MiB unallocated "
          f"(blkls {len(out) / MIB:.1f} MiB; block walk {blocks * block / MIB:.1f} MiB)")
    print(f"  ours-ranges {ranges * 1000:8.1f} ms   ours-read {read * 1000:8.1f} ms   "
          f"blkls {blkls * 1000:8.1f} ms   tsk-walk (AONLY) {walk * 1000:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for name, img in build(Path(tmp), args.size_mib).items():
            measure(name, img)


if __name__ == "__main__":
    main()
