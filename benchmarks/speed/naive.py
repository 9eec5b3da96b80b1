"""The naive baseline: what someone writes in an afternoon, run sequentially.

pytsk3 walk; each file read whole; hashlib MD5/SHA-1/SHA-256; python-magic's module
functions (MIME and description); for images exifread with its defaults
(``details=True``) and imagehash pHash + dHash on a full decode. One process, one
thread, results to a JSON Lines file. It is a yardstick for the "≥ 10× the naive
script" target, not a model: it is deliberately written the obvious way.

Usage: ``python benchmarks/speed/naive.py IMAGE --out FILE.jsonl [--offset BYTES]``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time

import exifread
import imagehash
import magic
import pytsk3
from PIL import Image


def walk(directory, path: str = ""):  # type: ignore[no-untyped-def]
    for entry in directory:
        name = entry.info.name.name.decode("utf-8", "replace")
        meta = entry.info.meta
        if name in (".", "..") or meta is None:
            continue
        if meta.type == pytsk3.TSK_FS_META_TYPE_DIR:
            try:
                yield from walk(entry.as_directory(), f"{path}/{name}")
            except OSError:
                continue
        elif meta.type == pytsk3.TSK_FS_META_TYPE_REG:
            yield f"{path}/{name}", entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image")
    parser.add_argument("--out", required=True)
    parser.add_argument("--offset", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.monotonic()
    fs = pytsk3.FS_Info(pytsk3.Img_Info(args.image), offset=args.offset)
    files = images = nbytes = 0
    with open(args.out, "w", encoding="utf-8") as out:
        for path, entry in walk(fs.open_dir(path="/")):
            size = entry.info.meta.size
            data = entry.read_random(0, size) if size else b""
            row = {
                "path": path, "size": size,
                "md5": hashlib.md5(data).hexdigest(),
                "sha1": hashlib.sha1(data).hexdigest(),
                "sha256": hashlib.sha256(data).hexdigest(),
                "mime": magic.from_buffer(data, mime=True),
                "magic": magic.from_buffer(data),
            }
            if row["mime"].startswith("image/"):
                try:
                    tags = exifread.process_file(io.BytesIO(data))
                    row["exif"] = {k: str(v) for k, v in tags.items()
                                   if k.startswith(("Image", "EXIF", "GPS"))}
                    img = Image.open(io.BytesIO(data))
                    img.load()
                    row["phash"] = str(imagehash.phash(img))
                    row["dhash"] = str(imagehash.dhash(img))
                    images += 1
                except Exception as exc:
                    row["error"] = str(exc)
            out.write(json.dumps(row) + "\n")
            files += 1
            nbytes += len(data)
    print(json.dumps({"files": files, "bytes": nbytes, "images": images,
                      "total_s": round(time.monotonic() - started, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
