"""Scaling benchmark: the photos image on 1 and 2 workers, local file vs object storage.

Three measurements, each a ratio within one run (the machine is shared):

1. **Access pattern and block cache.** The reads The Sleuth Kit makes while walking the
   image and while reading every file's content are logged from a local open, then
   replayed against the object in a real S3 server (moto on 127.0.0.1; its ranged GETs
   of the image answered from the file, ``S3Server.serve_ranges_directly``) through
   ``RemoteFile`` with several block sizes: GET requests, bytes fetched, seconds. Small
   reads (walk) want a block big enough to bring the neighbouring metadata in one GET;
   large reads (analysis, hashing) bypass the cache.
2. **Throughput per worker.** ``exhibit triage`` of the local file and of its
   ``s3://`` URL on 1 and 2 local workers; analysis throughput (bytes of files analysed
   per second of the analysis phase, from the ledger's timestamps), per worker, and the
   efficiency of adding the second worker (throughput(2) / (2 × throughput(1))).
3. **Driver time per batch.** The driver is the only writer: for the batches that
   finished together it stores the records and appends the ledger entries (group
   commit; the mean batches per group is printed). Both calls are timed in the driver process
   (``driver.py`` wraps them), giving the driver's seconds per batch; a worker needs
   (analysis seconds × workers / batches) per batch, so the driver keeps up with
   ``worker seconds per batch / driver seconds per batch`` workers — the 32-worker
   estimate.

Usage: ``python benchmarks/scaling/run.py [--scale 0.05] [--workers 1,2] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "benchmarks" / "speed"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from generate import build, cache_root  # noqa: E402
from s3_server import BUCKET, S3Server  # noqa: E402

BLOCK_SIZES = (64 << 10, 256 << 10, 1 << 20, 4 << 20)


def access_pattern(image_path: Path) -> dict[str, list[tuple[int, int]]]:
    """(offset, size) of every read TSK makes: walking, then reading every file."""
    from ingest.content import ContentReader
    from ingest.image import open_image
    from ingest.volumes import whole_image_volume
    from ingest.walk import walk_filesystem

    image = open_image(image_path)
    log: list[tuple[int, int]] = []
    inner = image._reader.read_at

    def logged(offset: int, size: int) -> bytes:
        log.append((offset, size))
        return inner(offset, size)

    image._reader.read_at = logged  # type: ignore[method-assign]
    entries = [e for e in walk_filesystem(image, whole_image_volume(image), "bench")
               if e.kind == "file" and e.allocated and e.size > 0]
    walk = list(log)
    log.clear()
    reader = ContentReader(image.spec, image)
    for entry in entries:
        for _ in reader.iter_chunks(entry.location.volume_offset, entry.location.inode):
            pass
    analysis = list(log)
    image.close()
    return {"walk": walk, "analysis": analysis}


def replay(url: str, reads: list[tuple[int, int]], block_size: int) -> dict[str, Any]:
    from ingest.remote.objects import RemoteFile, RemotePath, clear_cache

    clear_cache()
    remote = RemoteFile(RemotePath(url), block_size=block_size)
    started = time.perf_counter()
    for offset, size in reads:
        remote.read_at(offset, size)
    seconds = time.perf_counter() - started
    asked = sum(size for _, size in reads)
    return {"block_kib": block_size >> 10, "reads": len(reads), "gets": remote.stats.requests,
            "mb_asked": round(asked / 1e6, 1), "mb_fetched": round(remote.stats.bytes / 1e6, 1),
            "seconds": round(seconds, 2)}


def triage(source: str, workers: int, env: dict[str, str], tmp: Path) -> dict[str, Any]:
    case = tmp / f"case-{workers}-{'s3' if source.startswith('s3') else 'local'}"
    timing = case.with_suffix(".driver.json")
    started = time.monotonic()
    subprocess.run([sys.executable, str(HERE / "driver.py"), str(timing), "triage", source,
                    "--case", str(case), "--workers", str(workers), "--no-progress",
                    "--examiner", "benchmark", "--create-key"],
                   check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    total = time.monotonic() - started
    ledger = [json.loads(line) for line in (case / "ledger.jsonl").read_text().splitlines()]

    def stamp(entry: dict[str, Any]) -> float:
        return datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()

    begun = next(e for e in ledger if e["action"] == "analysis.started")
    batches = [e for e in ledger if e["action"] == "batch.analysed"]
    analysis_s = stamp(batches[-1]) - stamp(begun)
    nbytes = begun["details"]["bytes"]
    driver = json.loads(timing.read_text())
    per_batch = driver["seconds"] / max(1, driver["batches"])
    return {"source": "s3" if source.startswith("s3") else "local", "workers": workers,
            "total_s": round(total, 1), "analysis_s": round(analysis_s, 1),
            "batches": len(batches), "mb": round(nbytes / 1e6, 1),
            "mb_per_s": round(nbytes / 1e6 / analysis_s, 2),
            "mb_per_s_per_worker": round(nbytes / 1e6 / analysis_s / workers, 2),
            "driver_ms_per_batch": round(per_batch * 1000, 1),
            "batches_per_group": round(driver["batches"] / max(1, driver.get("groups", 0)), 2),
            "driver_cpu_ms_per_batch": round(
                driver.get("cpu_seconds", 0.0) * 1000 / max(1, driver["batches"]), 1),
            "worker_s_per_batch": round(analysis_s * workers / max(1, len(batches)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--out", type=Path, default=cache_root() / "results")
    args = parser.parse_args()
    manifest = build("photos", args.scale)
    image = Path(manifest.image_path)
    print(f"photos image: {manifest.files} files, {manifest.bytes / 1e6:.0f} MB in files,"
          f" {manifest.image_bytes / 1e6:.0f} MB image", flush=True)

    server = S3Server().start()
    server.setup({"photos.ext4": image})
    server.serve_ranges_directly("photos.ext4", image)
    url = f"s3://{BUCKET}/photos.ext4"
    tmp = Path(tempfile.mkdtemp(prefix="exhibit-scaling-"))
    env = dict(os.environ, **server.env(tmp / "aws"), PYTHONPATH=str(REPO))
    os.environ.update(server.env(tmp / "aws"))

    pattern = access_pattern(image)
    for phase, reads in pattern.items():
        small = sum(1 for _, size in reads if size < (1 << 20))
        print(f"{phase}: {len(reads)} reads, {small} under 1 MiB,"
              f" {sum(s for _, s in reads) / 1e6:.1f} MB", flush=True)
    cache = [dict(phase=phase, **replay(url, reads, size))
             for phase, reads in pattern.items() for size in BLOCK_SIZES]
    print("replayed", flush=True)
    runs = [triage(src, n, env, tmp) for n in map(int, args.workers.split(","))
            for src in (str(image), url)]
    server.stop()

    for run in runs:
        base = next((r for r in runs if r["source"] == run["source"] and r["workers"] == 1),
                    None)  # no 1-worker run asked for: no efficiency to state
        run["efficiency"] = (round(run["mb_per_s"] / (run["workers"] * base["mb_per_s"]), 2)
                             if base else None)
        run["workers_driver_keeps_up_with"] = int(
            run["worker_s_per_batch"] * 1000 / max(run["driver_ms_per_batch"], 1e-3))
    result = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "scale": args.scale,
              "cpus": os.cpu_count(), "cache": cache, "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"scaling-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2))
    print("\n| phase | block KiB | reads | GETs | MB asked | MB fetched | s |")
    print("|---|---|---|---|---|---|---|")
    for c in cache:
        print(f"| {c['phase']} | {c['block_kib']} | {c['reads']} | {c['gets']} |"
              f" {c['mb_asked']} | {c['mb_fetched']} | {c['seconds']} |")
    print("\n| source | workers | analysis s | MB/s | MB/s per worker | efficiency |"
          " driver ms/batch | driver CPU ms/batch | batches per group | worker s/batch |"
          " workers the driver keeps up with |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['source']} | {r['workers']} | {r['analysis_s']} | {r['mb_per_s']} |"
              f" {r['mb_per_s_per_worker']} | {r['efficiency']} | {r['driver_ms_per_batch']} |"
              f" {r['driver_cpu_ms_per_batch']} | {r['batches_per_group']} |"
              f" {r['worker_s_per_batch']} | {r['workers_driver_keeps_up_with']} |")
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
