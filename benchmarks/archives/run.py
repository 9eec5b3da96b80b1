"""Archive-heavy triage: the same photos in many small zips vs unpacked, in one run.

Two bare ext4 images (``mke2fs -d``) hold the same N photos: ``unpacked`` as files,
``zipped`` as N/k zip files of k photos each (made with Info-ZIP ``zip``). Both are
triaged by exhibit with the same options; the ratio of their photos per second shows
what expansion costs (members are copied out, analysed like files, and stored as
derived entries by the driver). Every member must come back with the MD5 of the photo
that went in; the run fails otherwise.

Usage: ``python benchmarks/archives/run.py [--zips 2000] [--per-zip 3] [--workers 2]``.
Images are cached in ``$EXHIBIT_BENCH_CACHE`` (or ``~/.cache/exhibit-bench``)/archives.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The benchmarks sign as one examiner of their own: with several keys on the machine (a
# demo, an examiner's own) triage asks which one, and would stop the run.
EXAMINER = "benchmark"
sys.path.insert(0, str(REPO / "sample_data"))
from make_photos import draw_picture  # noqa: E402


def cache_root() -> Path:
    env = os.environ.get("EXHIBIT_BENCH_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "exhibit-bench") / "archives"


def build(zips: int, per_zip: int) -> tuple[Path, Path, dict[str, str]]:
    """(unpacked image, zipped image, md5 by photo name), built once per shape."""
    base = cache_root() / f"{zips}x{per_zip}"
    photos_dir, unpacked, zipped = base / "photos", base / "unpacked.img", base / "zipped.img"
    md5_file = base / "md5.json"
    if unpacked.exists() and zipped.exists() and md5_file.exists():
        return unpacked, zipped, json.loads(md5_file.read_text())
    shutil.rmtree(base, ignore_errors=True)
    photos_dir.mkdir(parents=True)
    md5: dict[str, str] = {}
    for index in range(zips * per_zip):
        path = photos_dir / f"IMG_{index:06d}.jpg"
        draw_picture((640, 480), 1000 + index).save(path, "JPEG", quality=88)
        md5[path.name] = hashlib.md5(path.read_bytes()).hexdigest()
    zip_root = base / "zip-root"
    zip_root.mkdir()
    names = sorted(md5)
    for number in range(zips):
        members = [str(photos_dir / n) for n in names[number * per_zip:(number + 1) * per_zip]]
        subprocess.run(["zip", "-q", "-j", str(zip_root / f"album{number:05d}.zip"), *members],
                       check=True)
    total = sum(p.stat().st_size for p in photos_dir.iterdir())
    size = f"{max(32, int(total * 1.6 / 1e6) + 16)}M"
    for root, image in ((photos_dir, unpacked), (zip_root, zipped)):
        subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(root), str(image), size],
                       check=True, capture_output=True)
    md5_file.write_text(json.dumps(md5))
    return unpacked, zipped, md5


def triage(image: Path, case: Path, workers: int) -> float:
    shutil.rmtree(case, ignore_errors=True)
    cmd = [sys.executable, "-m", "pipeline.cli", "triage", str(image), "--case", str(case),
           "--workers", str(workers), "--no-progress", "--examiner", EXAMINER, "--create-key"]
    started = time.monotonic()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    return time.monotonic() - started


def exported(case: Path) -> list[dict]:
    out = case / "bench.jsonl"
    subprocess.run([sys.executable, "-m", "pipeline.cli", "export", str(case), "--format",
                    "jsonl", "-o", str(out), "--examiner", EXAMINER], cwd=REPO, check=True,
                   capture_output=True)
    return [json.loads(line) for line in out.read_text().splitlines()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zips", type=int, default=2000)
    parser.add_argument("--per-zip", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    unpacked, zipped, md5 = build(args.zips, args.per_zip)
    work = cache_root() / "cases"
    seconds = {name: triage(image, work / name, args.workers)
               for name, image in (("unpacked", unpacked), ("zipped", zipped))}
    rows = exported(work / "zipped")
    members = {r["name"]: r["md5"] for r in rows if r["derived_from"]}
    if members != md5:
        missing = sorted(set(md5) - set(members))[:5]
        wrong = sorted(n for n in md5 if n in members and members[n] != md5[n])[:5]
        print(f"FAILED: members missing {missing}, wrong MD5 {wrong}", file=sys.stderr)
        return 1
    photos = len(md5)
    report = {
        "photos": photos, "zips": args.zips, "per_zip": args.per_zip,
        "workers": args.workers,
        "unpacked_s": round(seconds["unpacked"], 2), "zipped_s": round(seconds["zipped"], 2),
        "unpacked_photos_per_s": round(photos / seconds["unpacked"], 1),
        "zipped_photos_per_s": round(photos / seconds["zipped"], 1),
        "zipped_vs_unpacked": round(seconds["unpacked"] / seconds["zipped"], 3),
        "members_verified": len(members),
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
