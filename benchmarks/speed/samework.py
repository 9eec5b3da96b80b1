"""The same-work script: exhibit's per-file work, on every core, and nothing else.

The yardstick for issue 18 ("photos near the limit"): how fast can a plain
multiprocessing script go that does, for every file, exactly what exhibit's default
analyzers do — so that exhibit ÷ this is the price of exhibit's case, ledger, Dask,
resumability and isolation, not of the analysis itself. Per file:

- read the content once through pytsk3 (1 MiB ``read_random`` calls, as exhibit's
  worker reads), MD5 + SHA-1 + SHA-256 over it (``analyzers/hashes.py``);
- libmagic on the first 1 MiB: the description, and the MIME type from a second call
  unless the description is one of libmagic's no-match fallbacks (plain text, "data"),
  whose MIME type it implies — the one-call rule of ``analyzers/filetype.py``;
- for ``image/*`` files, the content in memory and:

  - EXIF with exifread (``details=False, strict=True``) for the types exhibit's EXIF
    analyzer takes (``analyzers/exif.py``);
  - one decode (``Image.open``; JPEG ``draft("RGB", (512, 512))``; load; EXIF
    orientation applied; RGB), shared by everything below (``analyzers/perceptual.py``);
  - pHash and dHash (imagehash) on one grey box reduction to ≥ 128 px;
  - PDQ with its 8 dihedral variants (pdqhash) on the raster box-resized to 512×512;
  - the thumbnail: ≤ 160 px BICUBIC, baseline JPEG quality 75 (``analyzers/thumbnail.py``),
    whose bytes travel back to the parent like exhibit's do.

Not done (exhibit does it, but it is not per-file analysis work): the case database,
the custody ledger, the acquisition hash of the whole image, Dask, the per-file
watchdog, the result records' Merkle trees, looking for data after a picture's end
(expansion). The videos exhibit's video analyzer takes do not occur in these images.

The walk is pytsk3 directly (``probe.walk``), the work is split into about equal-byte
tasks (``probe.split``), a ``multiprocessing.Pool`` of ``--jobs`` processes (default:
every core) each opens the image once. Prints one JSON object (files, bytes, images,
walk and work seconds).

Usage: ``python benchmarks/speed/samework.py IMAGE [--offset BYTES] [--jobs N]``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import re
import sys
import time
from multiprocessing import Pool
from typing import Any

import exifread
import imagehash
import magic
import numpy
import pdqhash
import pytsk3
from PIL import ExifTags, Image, ImageOps
from probe import split, walk

logging.getLogger("exifread").setLevel(logging.ERROR)  # "PNG file does not have exif data"

CHUNK = 1 << 20
HEAD = 1 << 20  # libmagic reads this much (file(1)'s default)
PDQ_SIDE = 512
SMALL_SIDE = 128
THUMB_SIDE = 160
EXIF_MIMES = {"image/jpeg", "image/tiff", "image/heic", "image/heif", "image/avif",
              "image/webp", "image/png", "image/jxl", "image/x-canon-crw"}

PLAIN_TEXT = re.compile(r"(ASCII|ISO-8859|Non-ISO extended-ASCII|UTF-8 Unicode|Unicode text,"
                        r" UTF-8)( \(with BOM\))? text(, with [^,]+)*")

_FS: Any = None
_MIME: Any = None
_TEXT: Any = None


def _open(path: str, offset: int) -> None:
    global _FS, _MIME, _TEXT
    _FS = pytsk3.FS_Info(pytsk3.Img_Info(path), offset=offset)
    _MIME, _TEXT = magic.Magic(mime=True), magic.Magic()


def picture(data: bytes) -> dict[str, Any]:
    """EXIF, perceptual hashes and thumbnail of one image, from one decode."""
    out: dict[str, Any] = {}
    try:
        tags = exifread.process_file(io.BytesIO(data), details=False, strict=True)
        out["exif_tags"] = len(tags)
    except Exception as exc:
        out["exif_error"] = str(exc)
    img = Image.open(io.BytesIO(data))
    if img.format == "JPEG":
        img.draft("RGB", (PDQ_SIDE, PDQ_SIDE))
    img.load()
    if img.getexif().get(ExifTags.Base.Orientation, 1) in range(2, 9):
        img = ImageOps.exif_transpose(img)
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    factor = min(rgb.size) // SMALL_SIDE
    small = (rgb.reduce(factor) if factor >= 2 else rgb).convert("L")
    out["phash"] = str(imagehash.phash(small, hash_size=8))
    out["dhash"] = str(imagehash.dhash(small, hash_size=8))
    pdq = rgb.resize((PDQ_SIDE, PDQ_SIDE), Image.Resampling.BOX) \
        if rgb.width > PDQ_SIDE or rgb.height > PDQ_SIDE else rgb
    hashes, quality = pdqhash.compute_dihedral(numpy.ascontiguousarray(numpy.asarray(pdq)))
    out["pdq_dihedral"] = [numpy.packbits(h.astype(numpy.uint8)).tobytes().hex()
                           for h in hashes]
    out["pdq_quality"] = int(quality)
    thumb = rgb.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BICUBIC, reducing_gap=2.0)
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=75, optimize=False, progressive=False)
    out["thumbnail"] = buf.getvalue()
    return out


def one_file(inode: int, size: int) -> dict[str, Any]:
    md5 = hashlib.md5(usedforsecurity=False)
    sha1 = hashlib.sha1(usedforsecurity=False)
    sha256 = hashlib.sha256()
    handle = _FS.open_meta(inode=inode)
    chunks: list[bytes] = []
    head = b""
    keep = True  # content kept until libmagic says it is not a picture
    offset = 0
    while offset < size:
        data = handle.read_random(offset, min(CHUNK, size - offset))
        if not data:
            break
        md5.update(data)
        sha1.update(data)
        sha256.update(data)
        if keep:
            chunks.append(data)
        offset += len(data)
        if not head and (offset >= HEAD or offset >= size):
            head = b"".join(chunks)[:HEAD]
            description = _TEXT.from_buffer(head)
            mime = ("application/octet-stream" if description == "data" else "text/plain"
                    if PLAIN_TEXT.fullmatch(description) else _MIME.from_buffer(head))
            keep = mime.startswith("image/")
            if not keep:
                chunks = []
    row: dict[str, Any] = {"inode": inode, "md5": md5.hexdigest(), "sha1": sha1.hexdigest(),
                           "sha256": sha256.hexdigest(), "size": offset}
    if not head:
        row["mime"] = "application/x-empty"
        return row
    row["mime"], row["magic"] = mime, description
    if keep:
        try:
            row.update(picture(b"".join(chunks)))
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def work(files: list[tuple[int, int]]) -> list[dict[str, Any]]:
    return [one_file(inode, size) for inode, size in files]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image")
    parser.add_argument("--offset", type=int, default=0, help="filesystem offset in bytes")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    started = time.monotonic()
    _open(args.image, args.offset)
    files = walk(_FS)
    walked = time.monotonic()
    count = nbytes = images = errors = 0
    first: float | None = None
    with Pool(args.jobs, initializer=_open, initargs=(args.image, args.offset)) as pool:
        for rows in pool.imap_unordered(work, split(files, args.jobs * 8)):
            first = first if first is not None else time.monotonic() - started
            for row in rows:
                count += 1
                nbytes += row["size"]
                images += "phash" in row
                errors += "error" in row
    done = time.monotonic()
    print(json.dumps({"files": count, "bytes": nbytes, "images": images, "errors": errors,
                      "walk_s": round(walked - started, 3),
                      "first_result_s": round(first or 0.0, 3),
                      "work_s": round(done - walked, 3), "total_s": round(done - started, 3),
                      "jobs": args.jobs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
