"""Near-matching throughput: exhibit's multi-index-hashing index against numpy brute force.

The issue's workloads, in one process so the ratios are fair on a shared machine:

- 10,000 query hashes against 1 M and 10 M known 64-bit hashes (pHash/dHash), radius 10;
- 10,000 queries against 1 M known 256-bit PDQ hashes, radius 31.

Known hashes are uniform random words (real pHashes have balanced bits too, by the
median threshold); half of the queries are copies of known hashes with 0-13 bits
flipped (so there are real neighbours to find), half are random. Brute force (XOR +
``np.bitwise_count`` over every known hash) is timed on a subset of the queries and its
answers are compared with the index's for that subset: they must be identical.

Also measured: index build time, index memory against the raw hash bytes, and the time
to import a plain hash set of 1 M SHA-256 values into a case database.

Usage: ``python benchmarks/matching/run.py [--sizes 1000000,10000000] [--pdq 1000000]
[--queries 10000] [--brute 200] [--import-size 1000000] [--out FILE.json]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pipeline.matching.index import HammingIndex, brute_force  # noqa: E402


def workload(rng: np.random.Generator, n: int, words: int, queries: int, radius: int
             ) -> tuple[np.ndarray, np.ndarray]:
    known = rng.integers(0, 2**64, (n, words), dtype=np.uint64)
    near = known[rng.integers(0, n, queries // 2)].copy()
    for _ in range(radius + 3):  # each flip lands with probability 1/2: 0..radius+3 bits
        word = rng.integers(0, words, len(near))
        bit = rng.integers(0, 64, len(near)).astype(np.uint64)
        on = (rng.random(len(near)) < 0.5).astype(np.uint64)
        near[np.arange(len(near)), word] ^= on << bit
    rand = rng.integers(0, 2**64, (queries - len(near), words), dtype=np.uint64)
    mixed = np.vstack([near, rand])
    return known, mixed[rng.permutation(len(mixed))]


def bench(name: str, n: int, words: int, radius: int, queries: int, brute: int,
          seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    known, q = workload(rng, n, words, queries, radius)
    started = time.perf_counter()
    index = HammingIndex(known, radius)
    build = time.perf_counter() - started
    started = time.perf_counter()
    got = index.search(q)
    search = time.perf_counter() - started
    started = time.perf_counter()
    want = brute_force(known, q[:brute], radius)
    brute_s = time.perf_counter() - started
    subset = got[0] < brute
    identical = all(np.array_equal(a[subset], b) for a, b in zip(got, want, strict=True))
    result = {
        "workload": name, "known": n, "bits": 64 * words, "radius": radius,
        "queries": queries, "pairs_found": len(got[0]),
        "index_qps": round(queries / search, 1), "brute_force_qps": round(brute / brute_s, 1),
        "speedup": round((queries / search) / (brute / brute_s), 1),
        "identical_on_brute_force_subset": identical, "brute_force_queries": brute,
        "build_seconds": round(build, 2),
        "index_bytes": index.nbytes, "raw_hash_bytes": int(known.nbytes),
        "index_memory_ratio": round(index.nbytes / known.nbytes, 2),
        "layout": index.describe(),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "layout"}), flush=True)
    return result


def bench_import(size: int) -> dict[str, object]:
    from pipeline.case.database import CaseDatabase
    from pipeline.matching.hashsets import import_hashset

    class _Case:  # the database only: no ledger signing in a benchmark
        def __init__(self, path: Path) -> None:
            self.db = CaseDatabase(path)

        def record(self, *args: object) -> None:
            pass

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "set.txt"
        with path.open("w") as fh:
            for i in range(size):
                fh.write(hashlib.sha256(i.to_bytes(8, "big")).hexdigest() + "\n")
        case = _Case(Path(tmp) / "case.sqlite")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        summary = import_hashset(case, path)  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = {"workload": "import plain SHA-256 set", "entries": summary["counts"]["entries"],
                  "file_bytes": path.stat().st_size, "seconds": round(seconds, 2),
                  "entries_per_second": round(size / seconds),
                  "peak_rss_growth_bytes": max(0, peak - before) * 1024,
                  "db_bytes": os.path.getsize(Path(tmp) / "case.sqlite")}
    print(json.dumps(result), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--pdq", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--brute", type=int, default=200)
    parser.add_argument("--import-size", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = []
    for n in (int(s) for s in args.sizes.split(",") if s):
        results.append(bench(f"pHash {n:,}", n, 1, 10, args.queries, args.brute, n))
    if args.pdq:
        results.append(bench(f"PDQ {args.pdq:,}", args.pdq, 4, 31, args.queries, args.brute,
                             7))
    if args.import_size:
        results.append(bench_import(args.import_size))
    print("\n| workload | index q/s | brute force q/s | speed-up | identical | build s |"
          " index memory / raw |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if "index_qps" in r:
            print(f"| {r['workload']} (r={r['radius']}) | {r['index_qps']:,} |"
                  f" {r['brute_force_qps']:,} | {r['speedup']}× |"
                  f" {'yes' if r['identical_on_brute_force_subset'] else 'NO'} |"
                  f" {r['build_seconds']} | {r['index_memory_ratio']}× |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0 if all(r.get("identical_on_brute_force_subset", True) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
