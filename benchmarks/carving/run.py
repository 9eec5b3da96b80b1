"""Carving speed and recall: exhibit's carve scan vs ``dd`` and PhotoRec, in one run.

The image is a wiped card with pictures in it: ``--size`` MB (default 2048) of old,
random-looking data (a 64 MiB pseudo-random block repeated: the scan's worst case, as
every byte value occurs), no filesystem, and ``--pictures`` photo-like JPEGs and PNGs
(``sample_data/make_photos.py``'s drawing, 160 px up to 4000 px, some with EXIF
thumbnails) written at sector-aligned offsets. The whole image is unallocated space.

Measured in one run, each read cold (this file's pages are dropped from the page cache
with ``posix_fadvise(DONTNEED)`` before each pass, so other users' caches stay):

- ``dd if=IMAGE of=/dev/null bs=4M iflag=direct`` and plain ``dd bs=4M`` (cold);
- exhibit's carve scan (``ingest.carve.Carver`` over the image's unallocated space: block
  starts checked, every candidate walked to its structural end), in one process and in
  ``--workers`` processes over 64 MiB ranges as the Dask carve tasks split it; then the
  same with every find decoded by Pillow (what a carve task does before a find counts);
  recall = planted pictures found with identical bytes;
- PhotoRec (``photorec /cmd IMAGE partition_none,fileopt,everything,disable,jpg,enable,
  png,enable,search``): time and recall (recovered files byte-identical to a planted one).

Target: exhibit's parallel scan ≥ 60 % of dd's (direct) read speed. Images and pictures are cached
in ``$EXHIBIT_BENCH_CACHE`` (or ``~/.cache/exhibit-bench``)/carving.

Usage: ``python benchmarks/carving/run.py [--size 2048] [--pictures 200] [--workers 2]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "sample_data"))
from make_photos import draw_picture  # noqa: E402

from ingest.carve import ALIGN, Carver, RunView, kinds_for  # noqa: E402
from ingest.image import open_image  # noqa: E402

MIB = 1 << 20
RANGE = 64 * MIB


def cache_root() -> Path:
    env = os.environ.get("EXHIBIT_BENCH_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "exhibit-bench") / "carving"


def _pictures(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(14)
    out = []
    for index in range(count):
        path = folder / (f"P{index:05d}.png" if index % 10 == 9 else f"P{index:05d}.jpg")
        if not path.exists():
            width = 4000 if index % 50 == 0 else rng.choice((160, 320, 640, 1024, 1600, 2400))
            picture = draw_picture((width, width * 3 // 4), 5000 + index)
            if path.suffix == ".png":
                picture.resize((max(64, width // 4), max(48, width * 3 // 16))).save(path)
            else:
                picture.save(path, "JPEG", quality=rng.choice((75, 85, 92)))
        out.append(path)
    return out


def build(size_mb: int, count: int) -> tuple[Path, dict[str, int]]:
    """The card image and where each planted picture starts (sha256 → offset)."""
    base = cache_root()
    image = base / f"card-{size_mb}M-{count}.img"
    planted_file = image.with_suffix(".json")
    if image.exists() and planted_file.exists():
        return image, json.loads(planted_file.read_text())
    pictures = _pictures(base / "pictures", count)
    rng = random.Random(size_mb)
    block = rng.randbytes(64 * MIB)
    size = size_mb * MIB
    tmp = image.with_suffix(".partial")
    with tmp.open("wb") as fh:
        for offset in range(0, size, len(block)):
            fh.write(block[: size - offset])
    planted: dict[str, int] = {}
    slot = size // count // ALIGN * ALIGN
    with tmp.open("r+b") as fh:
        for index, path in enumerate(pictures):
            data = path.read_bytes()
            room = max(0, slot - len(data) - ALIGN)
            offset = index * slot + rng.randrange(0, room // ALIGN + 1) * ALIGN
            if offset + len(data) > size:
                continue
            fh.seek(offset)
            fh.write(data)
            planted[hashlib.sha256(data).hexdigest()] = offset
    tmp.rename(image)
    planted_file.write_text(json.dumps(planted))
    return image, planted


def drop_cache(path: Path) -> None:
    with path.open("rb") as fh:
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def time_dd(image: Path, direct: bool) -> float:
    drop_cache(image)
    started = time.perf_counter()
    subprocess.run(["dd", f"if={image}", "of=/dev/null", "bs=4M",
                    *(["iflag=direct"] if direct else [])], check=True, capture_output=True)
    return time.perf_counter() - started


def _structure_only(stream: object) -> bool:
    return True


def carve_range(args: tuple[str, int, int, bool]) -> tuple[list[str], int]:
    """One range, as a carve task scans it: sha256 of each find, bytes scanned.

    ``decode`` False measures the scan itself: signatures at block starts and each
    candidate walked to its structural end, without Pillow's decode of each find."""
    path, start, stop, decode = args
    image = open_image([Path(path)])
    try:
        view = RunView(image, [(0, image.size)])
        carver = Carver(view, kinds_for("pictures"),
                        decodes=None if decode else _structure_only)
        found = [hashlib.sha256(view.read_at(hit.start, hit.length)).hexdigest()
                 for hit in carver.scan(start, stop)]
        return found, carver.summary.bytes
    finally:
        image.close()


def time_exhibit(image: Path, workers: int, decode: bool) -> tuple[float, list[str]]:
    size = image.stat().st_size
    ranges = [(str(image), start, min(start + RANGE, size), decode)
              for start in range(0, size, RANGE)]
    drop_cache(image)
    started = time.perf_counter()
    if workers <= 1:
        results = [carve_range(r) for r in ranges]
    else:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(carve_range, ranges))
    elapsed = time.perf_counter() - started
    return elapsed, [digest for found, _ in results for digest in found]


def time_photorec(image: Path) -> tuple[float, list[str]] | None:
    tool = shutil.which("photorec")
    if tool is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "out").mkdir()
        drop_cache(image)
        started = time.perf_counter()
        subprocess.run([tool, "/log", "/d", str(work / "out" / "r"), "/cmd", str(image),
                        "partition_none,fileopt,everything,disable,jpg,enable,png,enable,"
                        "search"], cwd=work, check=True, capture_output=True,
                       stdin=subprocess.DEVNULL)
        elapsed = time.perf_counter() - started
        found = [hashlib.sha256(p.read_bytes()).hexdigest()
                 for p in (work / "out").rglob("*") if p.is_file()]
    return elapsed, found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="image size in MB")
    parser.add_argument("--pictures", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    image, planted = build(args.size, args.pictures)
    size = image.stat().st_size
    mb = size / 1e6
    dd_direct = time_dd(image, direct=True)
    dd_cold = time_dd(image, direct=False)
    one, _ = time_exhibit(image, 1, decode=False)
    many, found_scan = time_exhibit(image, args.workers, decode=False)
    full, found_many = time_exhibit(image, args.workers, decode=True)
    photorec = time_photorec(image)
    wanted = set(planted)
    report = {
        "image_mb": round(mb, 1), "pictures_planted": len(planted),
        "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
        "dd_direct_mb_s": round(mb / dd_direct, 1), "dd_cold_mb_s": round(mb / dd_cold, 1),
        "exhibit_scan_1_process_mb_s": round(mb / one, 1),
        f"exhibit_scan_{args.workers}_processes_mb_s": round(mb / many, 1),
        f"exhibit_scan_and_decode_{args.workers}_processes_mb_s": round(mb / full, 1),
        "exhibit_scan_recall": f"{len(wanted & set(found_scan))}/{len(wanted)}",
        "exhibit_recall": f"{len(wanted & set(found_many))}/{len(wanted)}",
        "exhibit_false_finds": len(set(found_many) - wanted),
        "ratio_vs_dd_direct": round(dd_direct / many, 3),
        "ratio_vs_dd_cold": round(dd_cold / many, 3),
        "ratio_1_process_vs_dd_direct": round(dd_direct / one, 3),
        "ratio_scan_and_decode_vs_dd_direct": round(dd_direct / full, 3),
    }
    if photorec is not None:
        seconds, found = photorec
        report.update({"photorec_s": round(seconds, 2), "photorec_mb_s": round(mb / seconds, 1),
                       "photorec_recall": f"{len(wanted & set(found))}/{len(wanted)}",
                       "photorec_files": len(found)})
    else:
        report["photorec"] = "not installed (Debian package testdisk)"
    print(json.dumps(report, indent=2))
    ok = report["ratio_vs_dd_direct"] >= 0.6 and len(wanted & set(found_many)) == len(wanted)
    print("target (≥ 60 % of dd, every picture found):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
