"""The physical-limit probe: walk, read every file via pytsk3, MD5+SHA-1+SHA-256 it.

Nothing else — no file type, no EXIF, no database, no ledger — on every core (one
process each, the image opened once per process). This is the floor any tool that
hashes every file of the image must pay on this machine; exhibit is judged by how
close it gets. It deliberately uses pytsk3 directly (not exhibit's ``ingest``), so a
slow-down in exhibit's own code cannot slow the yardstick.

Two more floors, for the targets a forensic tool's own duties bound (issue 18):

- ``--work magic``: libmagic alone, one description per non-empty file (what ``file``
  prints: a tool whose types equal file(1)'s makes at least this call), on every core;
  its files/s is the ceiling of any such tool on this machine.
- ``--work image``: the image's MD5+SHA-1+SHA-256, one sequential reader, as an
  acquisition hash (exhibit's custody record) reads it; the naive script does not
  hash the image, so this is what the same custody adds to it.

Usage: ``python benchmarks/speed/probe.py IMAGE [--offset BYTES] [--jobs N]
[--work files|magic|image]``; prints one JSON object (files, bytes, seconds).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from multiprocessing import Pool
from typing import Any

import pytsk3

CHUNK = 1 << 20
HEAD = 1 << 20  # what file(1) and exhibit's filetype analyzer hand libmagic
_FS: Any = None


def walk(fs: Any) -> list[tuple[int, int]]:
    """(inode, size) of every regular file with metadata, allocated or not."""
    out: list[tuple[int, int]] = []
    seen: set[int] = set()
    stack = [fs.open_dir(path="/")]
    while stack:
        directory = stack.pop()
        for entry in directory:
            name = entry.info.name
            meta = entry.info.meta
            if name.name in (b".", b"..") or meta is None:
                continue
            if meta.type == pytsk3.TSK_FS_META_TYPE_REG:
                out.append((int(meta.addr), int(meta.size)))
            elif meta.type == pytsk3.TSK_FS_META_TYPE_DIR and meta.addr not in seen:
                seen.add(meta.addr)
                try:
                    stack.append(entry.as_directory())
                except OSError:
                    continue
    return out


def _open(path: str, offset: int) -> None:
    global _FS
    _FS = pytsk3.FS_Info(pytsk3.Img_Info(path), offset=offset)


def _hash(files: list[tuple[int, int]]) -> tuple[int, int]:
    total = 0
    for inode, size in files:
        md5 = hashlib.md5(usedforsecurity=False)
        sha1 = hashlib.sha1(usedforsecurity=False)
        sha256 = hashlib.sha256()
        handle = _FS.open_meta(inode=inode)
        offset = 0
        while offset < size:
            data = handle.read_random(offset, min(CHUNK, size - offset))
            if not data:
                break
            md5.update(data)
            sha1.update(data)
            sha256.update(data)
            offset += len(data)
        md5.hexdigest(), sha1.hexdigest(), sha256.hexdigest()
        total += offset
    return len(files), total


def _magic(files: list[tuple[int, int]]) -> tuple[int, int]:
    """libmagic's description of each non-empty file's first MiB (file(1) reads as much)."""
    import magic

    cookie = magic.Magic()
    typed = total = 0
    for inode, size in files:
        if size <= 0:
            continue
        head = _FS.open_meta(inode=inode).read_random(0, min(HEAD, size))
        cookie.from_buffer(head)
        typed += 1
        total += len(head)
    return typed, total


def image_digests(path: str) -> dict[str, Any]:
    """The MD5, SHA-1 and SHA-256 of the image file, read once front to back."""
    digests = [hashlib.md5(usedforsecurity=False), hashlib.sha1(usedforsecurity=False),
               hashlib.sha256()]
    total = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(8 * CHUNK):
            for digest in digests:
                digest.update(chunk)
            total += len(chunk)
    return {"bytes": total, **{d.name: d.hexdigest() for d in digests}}


def split(files: list[tuple[int, int]], parts: int) -> list[list[tuple[int, int]]]:
    """About equal bytes per task, a few tasks per process, big files first."""
    total = sum(max(s, 4096) for _, s in files)
    target = max(1, total // parts)
    tasks: list[list[tuple[int, int]]] = [[]]
    size = 0
    for item in sorted(files, key=lambda f: -f[1]):
        if size >= target:
            tasks.append([])
            size = 0
        tasks[-1].append(item)
        size += max(item[1], 4096)
    return tasks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image")
    parser.add_argument("--offset", type=int, default=0, help="filesystem offset in bytes")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--work", choices=("files", "magic", "image"), default="files")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.work == "image":
        found = image_digests(args.image)
        print(json.dumps({**found, "total_s": round(time.monotonic() - started, 3),
                          "work": "image"}))
        return 0
    _open(args.image, args.offset)
    files = walk(_FS)
    walked = time.monotonic()
    count = nbytes = 0
    with Pool(args.jobs, initializer=_open, initargs=(args.image, args.offset)) as pool:
        work = _magic if args.work == "magic" else _hash
        for n, b in pool.imap_unordered(work, split(files, args.jobs * 8)):
            count += n
            nbytes += b
    done = time.monotonic()
    print(json.dumps({"files": count, "bytes": nbytes, "walk_s": round(walked - started, 3),
                      "work_s": round(done - walked, 3), "total_s": round(done - started, 3),
                      "jobs": args.jobs, "work": args.work}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
