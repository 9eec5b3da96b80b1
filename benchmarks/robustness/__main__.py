"""The long robustness run: thousands of mutated images and media files through triage.

Usage (from the repository root)::

    python -m benchmarks.robustness --image-cases 2000 --media-cases 2000   # or: make fuzz

Image cases mutate small images built with the Debian tools (FAT12, FAT16, ext2, ext4,
NTFS, an MBR disk with FAT16 + ext2 in a logical partition) and, with ``--sample``, the
bundled sample image; virtual-disk cases (``--vdisk-cases``) mutate that MBR disk's
VMDK/VHD/VHDX/QCOW2 containers and chains (headers, truncated extents, missing parents —
tests/fuzz/vdisks.py); shadow copy cases (``--vss-cases``) mutate an NTFS volume's
hand-built VSS header, catalog and stores or cut the image into them
(tests/fuzz/vss.py); APFS cases (``--apfs-cases``) mutate mkapfs's container blocks
(tests/fuzz/apfs.py); media cases are hostile JPEG/PNG/TIFF/GIF files packed
``--media-per-image`` to an ext4 image. Every case runs through ``Triage`` on one shared
local cluster, and a share (``--cli-share``) through the real ``exhibit triage`` CLI with
its own cluster. Each case is checked (tests/fuzz/harness.py) and the table printed:
cases, crashes and hangs contained, files recovered vs the unmutated image, lost files
(must be 0), uncaught exceptions, hung runs, leftover processes, driver memory.
Failing cases are kept under ``--workdir`` with ``failures.jsonl``; seeds reproduce them.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

import psutil  # noqa: E402
from fuzz import media  # noqa: E402
from fuzz.apfs import build_apfs_base  # noqa: E402
from fuzz.harness import CaseOutcome, FuzzHarness, baseline_of, media_image  # noqa: E402
from fuzz.images import (  # noqa: E402
    BaseImage,
    build_bases,
    find_regions,
    plan_mutation,
)
from fuzz.vdisks import build_vdisk_bases, plan_vdisk_mutation  # noqa: E402
from fuzz.vss import build_vss_base  # noqa: E402


class Tally:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, float]] = {}

    def add(self, kind: str, o: CaseOutcome, media_files: int = 0,
            baseline: int = 0) -> None:
        row = self.rows.setdefault(kind, dict.fromkeys(
            ("runs", "cases", "via CLI", "files", "crashes contained", "hangs contained",
             "recovered", "baseline", "lost", "uncaught", "hung", "ledger failures",
             "processes left", "documented failures", "seconds"), 0))
        row["runs"] += 1
        row["cases"] += media_files or 1
        row["via CLI"] += o.mode == "cli"
        row["files"] += o.files
        row["crashes contained"] += o.crashed
        row["hangs contained"] += o.timed_out
        row["recovered"] += o.recovered
        row["baseline"] += baseline
        row["lost"] += o.lost
        row["uncaught"] += o.status == "uncaught"
        row["hung"] += o.status == "hung"
        row["ledger failures"] += not o.ledger_ok
        row["processes left"] += o.leftovers
        row["documented failures"] += o.status == "documented"
        row["seconds"] += o.seconds

    def table(self) -> str:
        keys = ["cases", "runs", "via CLI", "files", "crashes contained", "hangs contained",
                "recovered", "lost", "uncaught", "hung", "ledger failures", "processes left",
                "documented failures", "seconds"]
        lines = ["| | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for kind, row in self.rows.items():
            cells = []
            for k in keys:
                if k == "recovered":
                    base = row["baseline"]
                    cells.append(f"{int(row[k])}/{int(base)} ({100 * row[k] / base:.1f}%)"
                                 if base else "-")
                elif k == "seconds":
                    cells.append(f"{row[k]:.0f}")
                else:
                    cells.append(str(int(row[k])))
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.robustness")
    parser.add_argument("--image-cases", type=int, default=200)
    parser.add_argument("--media-cases", type=int, default=200)
    parser.add_argument("--vdisk-cases", type=int, default=200,
                        help="mutated virtual-disk containers (needs qemu-img)")
    parser.add_argument("--vss-cases", type=int, default=50,
                        help="an NTFS volume's shadow copy structures mutated or cut")
    parser.add_argument("--apfs-cases", type=int, default=30,
                        help="mkapfs's container with its blocks mutated or cut")
    parser.add_argument("--media-per-image", type=int, default=50)
    parser.add_argument("--cli-share", type=float, default=0.05,
                        help="share of runs through the real CLI (own cluster each)")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--file-timeout", type=float, default=10.0)
    parser.add_argument("--sample", type=Path, default=REPO / "build" / "sample.dd",
                        help="also mutate this image (1 case in 20); '' for none")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/exhibit-fuzz"))
    parser.add_argument("--keep", action="store_true", help="keep every case directory")
    args = parser.parse_args(argv)

    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    failures = args.workdir / "failures.jsonl"
    bases = build_bases(args.workdir / "bases")
    sample = None
    if str(args.sample) and args.sample.is_file():
        sample = BaseImage("sample", args.sample, tuple(find_regions(args.sample)),
                           args.sample.stat().st_size)
    rng = random.Random(args.seed)
    tally = Tally()
    driver = psutil.Process()
    started = time.monotonic()
    count = 0

    def note(kind: str, o: CaseOutcome, directory: Path, extra: int = 0,
             baseline: int = 0) -> None:
        nonlocal count
        count += 1
        tally.add(kind, o, extra, baseline)
        if not o.ok:
            with failures.open("a") as fh:
                fh.write(json.dumps({"kind": kind, "label": o.label, "mode": o.mode,
                                     "problems": o.problems, "detail": o.detail[-3000:],
                                     "dir": str(directory)}) + "\n")
            print(f"FAIL {o.label}: {o.problems}", flush=True)
        elif not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
        if count % 50 == 0:
            print(f"[{time.monotonic() - started:6.0f} s] {count} runs, driver RSS"
                  f" {driver.memory_info().rss >> 20} MiB", flush=True)

    rss_start = 0
    with FuzzHarness(args.workdir, workers=args.workers,
                     file_timeout=args.file_timeout) as harness:
        baselines = {}
        for base in [*bases, *([sample] if sample else [])]:
            clean = args.workdir / f"clean-{base.name}"
            outcome = harness.run_inprocess(base.path, clean, f"{base.name}: clean")
            if not outcome.ok or outcome.status != "ok":
                print(f"clean {base.name} failed: {outcome.problems} {outcome.detail}")
                return 1
            baselines[base.name] = baseline_of(clean)
        rss_start = driver.memory_info().rss
        for i in range(args.image_cases):
            base = sample if sample and i % 20 == 19 else rng.choice(bases)
            mutation = plan_mutation(rng, base)
            directory = args.workdir / f"image-{i:05d}"
            directory.mkdir()
            image = mutation.apply(base.path, directory / "evidence.img")
            via_cli = rng.random() < args.cli_share
            run = harness.run_cli if via_cli else harness.run_inprocess
            label = f"image {i} (seed {args.seed}): {mutation.describe()}"
            outcome = run(image, directory / "case", label, baselines[base.name])
            note("disk images", outcome, directory, 0, len(baselines[base.name]))
        mbr = next(b for b in bases if b.name == "mbr")
        vdisks = build_vdisk_bases(args.workdir / "vdisks", mbr.path) if args.vdisk_cases else []
        for i in range(args.vdisk_cases):
            vbase = rng.choice(vdisks)
            vmutation = plan_vdisk_mutation(rng, vbase)
            directory = args.workdir / f"vdisk-{i:05d}"
            top = vmutation.apply(vbase, directory / "evidence")
            via_cli = rng.random() < args.cli_share
            run = harness.run_cli if via_cli else harness.run_inprocess
            label = f"vdisk {i} (seed {args.seed}): {vmutation.describe()}"
            outcome = run(top, directory / "case", label, baselines["mbr"])
            note("virtual disks", outcome, directory, 0, len(baselines["mbr"]))
        vss_base = build_vss_base(args.workdir / "vss") if args.vss_cases else None
        vss_baseline: set[tuple[str, str]] = set()
        if vss_base is not None:
            clean = args.workdir / "clean-vss"
            if harness.run_inprocess(vss_base.top, clean, "clean shadow copies").ok:
                vss_baseline = baseline_of(clean)
        for i in range(args.vss_cases if vss_base is not None else 0):
            vmutation = plan_vdisk_mutation(rng, vss_base)
            directory = args.workdir / f"vss-{i:05d}"
            top = vmutation.apply(vss_base, directory / "evidence")
            label = f"shadow copies {i} (seed {args.seed}): {vmutation.describe()}"
            outcome = harness.run_inprocess(top, directory / "case", label, vss_baseline)
            note("shadow copies", outcome, directory, 0, len(vss_baseline))
        apfs_base = build_apfs_base(args.workdir / "apfs") if args.apfs_cases else None
        for i in range(args.apfs_cases if apfs_base is not None else 0):
            vmutation = plan_vdisk_mutation(rng, apfs_base)
            directory = args.workdir / f"apfs-{i:05d}"
            top = vmutation.apply(apfs_base, directory / "evidence")
            label = f"apfs {i} (seed {args.seed}): {vmutation.describe()}"
            outcome = harness.run_inprocess(top, directory / "case", label)
            note("APFS containers", outcome, directory, 0)
        packs = (args.media_cases + args.media_per_image - 1) // args.media_per_image
        for p in range(packs):
            n = min(args.media_per_image, args.media_cases - p * args.media_per_image)
            cases = [media.mutate(rng, p * args.media_per_image + j) for j in range(n)]
            directory = args.workdir / f"media-{p:04d}"
            directory.mkdir()
            image = media_image(cases, directory, "media")
            via_cli = rng.random() < max(args.cli_share, 1 / max(1, packs))
            run = harness.run_cli if via_cli else harness.run_inprocess
            outcome = run(image, directory / "case", f"media pack {p} (seed {args.seed})")
            (directory / "labels.json").write_text(json.dumps(
                {c.name: c.label for c in cases}))
            note("media files", outcome, directory, n)
    elapsed = time.monotonic() - started
    rss_end = driver.memory_info().rss
    print()
    print(tally.table())
    print()
    print(f"elapsed {elapsed:.0f} s; driver RSS {rss_start >> 20} MiB after the clean runs,"
          f" {rss_end >> 20} MiB at the end; failures: "
          f"{failures if failures.exists() else 'none'}")
    rows = tally.rows.values()
    bad = sum(r["lost"] + r["uncaught"] + r["hung"] + r["ledger failures"]
              + r["processes left"] for r in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
