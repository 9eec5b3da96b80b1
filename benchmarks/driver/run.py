"""Driver benchmark: what the driver spends per result record, phase by phase (issue 18).

The driver (one process) takes every finished batch into the case: canonical JSON of each
result record (RFC 8785), Merkle leaf hashes, SQLite rows, thumbnails, then the
``batch.analysed`` ledger entry. This benchmark

1. builds the many-small image (or ``--image photos``: few records per batch, where the
   fsyncs that make a batch durable dominate) (``benchmarks/speed/generate.py``,
   ``--scale``) and runs
   ``exhibit triage`` on it once, keeping every batch outcome as the driver received it
   (pickled: the Dask result) and a copy of the case as it stood before analysis;
2. replays those outcomes into copies of that case, timing each phase (CPU seconds of
   this process, so other load on the machine counts less), alternately with the
   baseline — the exact ``rfc8785`` implementation alone — and with
   ``canonical_bytes`` (the standard library's C encoder where it provably gives the
   same bytes), ``--rounds`` times each; then in groups of ``--groups`` batches taken in
   together (group commit, issue 17: one transaction, one ledger fsync per group) with
   the canonical JSON the workers made (as exhibit runs), for the driver's wall time per
   batch and how many workers of the captured run's speed it would keep fed;
3. checks that both give the same Merkle roots and the same stored records, and prints
   microseconds per record, milliseconds per batch and the ratios.

Usage: ``python benchmarks/driver/run.py [--image many-small|photos] [--scale 0.1]
[--rounds 3] [--groups 1,4,16,32] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import shutil
import sqlite3
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
sys.path.insert(0, str(REPO))

from generate import build, cache_root  # noqa: E402


def capture(out: Path, template: Path, argv: list[str]) -> None:
    """Run ``exhibit`` with the driver's batch outcomes kept (``--capture`` mode).

    No batch is sent while the walk runs (the quick start, issue 18): the replays start
    from the case as it stood before its first result, which must hold every walked
    file; with the quick start the first results come in mid-walk."""
    from pipeline.run import collect, plan

    plan.QuickStart.on_file = lambda self, file_id, volume_offset, size: None  # type: ignore[method-assign]

    outcomes: list[tuple[str, dict[str, Any]]] = []
    store = collect.store_batches

    def keep(case: Any, finished: list[tuple[str, dict[str, Any]]]) -> None:
        if not outcomes:  # the case before any result: the replays start from it
            case.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            shutil.copytree(case.directory, template)
        outcomes.extend((batch_id, pickle.loads(pickle.dumps(outcome)))
                        for batch_id, outcome in finished)
        store(case, finished)

    collect.store_batches = keep
    from pipeline.cli import main as exhibit_main

    sys.argv = ["exhibit", *argv]
    try:
        exhibit_main()
    except SystemExit as exc:
        if exc.code:
            raise
    finally:
        out.write_bytes(pickle.dumps(outcomes))


def replay(template: Path, blob: bytes, exact: bool, group: int = 1,
           worker_canonical: bool = False) -> dict[str, Any]:
    """Every phase of ``store_batches`` + ``record_batches`` over the captured outcomes,
    ``group`` batches at a time (as many as finished together: group commit); with
    ``worker_canonical`` the canonical JSON the workers made is used (as exhibit does),
    else the driver makes it (as before issue 17's change, and to compare encoders)."""
    from chain_of_custody import canonical
    from chain_of_custody.merkle import canonical_leaf_hash, merkle_root
    from pipeline.case.store import Case
    from pipeline.run import collect

    encode = canonical.exact_canonical_bytes if exact else canonical.canonical_bytes
    collect.canonical_bytes = encode  # what store_batches calls
    cpu = time.process_time
    started = cpu()
    outcomes = pickle.loads(blob)
    if not worker_canonical:
        for _, outcome in outcomes:
            for item in collect._flatten(outcome["records"]):
                item.pop("canonical", None)
    phases = {"unpickle": cpu() - started, "canonical": 0.0, "leaf_hashes": 0.0,
              "thumbnails": 0.0, "store_batches": 0.0, "record_batches": 0.0}
    records = [[item["record"] for item in collect._flatten(o["records"])] for _, o in outcomes]
    for batch in records:
        started = cpu()
        texts = [encode(r) for r in batch]
        phases["canonical"] += cpu() - started
        started = cpu()
        merkle_root([canonical_leaf_hash(t) for t in texts])
        phases["leaf_hashes"] += cpu() - started
    work = Path(tempfile.mkdtemp(prefix="exhibit-driver-")) / "case"
    shutil.copytree(template, work)
    for _, outcome in outcomes:
        started = cpu()
        collect.store_thumbnails(work.parent, list(collect._flatten(outcome["records"])))
        phases["thumbnails"] += cpu() - started
    case = Case(work, examiner="benchmark", create=False)
    wall = time.perf_counter()
    for first in range(0, len(outcomes), group):
        finished = outcomes[first:first + group]
        started = cpu()
        collect.store_batches(case, finished)
        phases["store_batches"] += cpu() - started
        started = cpu()
        collect.record_batches(case, [batch_id for batch_id, _ in finished])
        phases["record_batches"] += cpu() - started
    wall = time.perf_counter() - wall
    db = case.db.conn
    roots = [r[0] for r in db.execute("SELECT merkle_root FROM batches ORDER BY id")]
    stored = hashlib.sha256()
    for (text,) in db.execute("SELECT record FROM results ORDER BY file_id"):
        stored.update(text.encode("utf-8"))
    case.close()
    shutil.rmtree(work.parent)
    # store_batches includes canonical JSON, leaf hashes and thumbnails: the rest is SQLite.
    phases["sqlite"] = phases["store_batches"] - sum(
        phases[k] for k in ("canonical", "leaf_hashes", "thumbnails"))
    return {"phases": phases, "wall": wall, "roots": roots, "records": stored.hexdigest()}


def worker_seconds_per_batch(case_dir: Path, workers: int, batches: int) -> float:
    """Worker time per batch in the captured run: the analysis's span (ledger times of
    ``analysis.started`` and the last ``batch.analysed``) times the workers, per batch."""
    from chain_of_custody.ledger import read_entries

    times = {}
    for entry in read_entries(case_dir / "ledger.jsonl"):
        if entry["action"] in ("analysis.started", "batch.analysed"):
            times.setdefault(entry["action"], []).append(
                datetime.fromisoformat(entry["time"].replace("Z", "+00:00")))
    span = (max(times["batch.analysed"]) - times["analysis.started"][0]).total_seconds()
    return span * workers / batches


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--capture":
        capture(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", choices=("many-small", "photos"), default="many-small")
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--groups", default="1,4,16,32",
                        help="batches taken in together (group commit) to time, e.g. 1,8,32")
    parser.add_argument("--out", type=Path, default=cache_root() / "results")
    args = parser.parse_args()
    manifest = build(args.image, args.scale)
    tmp = Path(tempfile.mkdtemp(prefix="exhibit-driver-bench-"))
    outcomes, template = tmp / "outcomes.pickle", tmp / "template"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, str(Path(__file__)), "--capture", str(outcomes),
                    str(template), "triage", manifest.image_path, "--case", str(tmp / "case"),
                    "--workers", str(args.workers), "--no-progress", "--examiner", "benchmark",
                    "--create-key"], check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    blob = outcomes.read_bytes()
    captured = pickle.loads(blob)
    n = sum(1 + len(r.get("children", ())) for _, o in captured for r in o["records"])
    batches = len(captured)
    with sqlite3.connect(tmp / "case" / "case.sqlite") as db:
        truth = [r[0] for r in db.execute("SELECT merkle_root FROM batches ORDER BY id")]
    runs: dict[str, list[dict[str, Any]]] = {"exact": [], "fast": []}
    for _ in range(args.rounds):
        for name in runs:
            runs[name].append(replay(template, blob, exact=name == "exact"))
    for name, done in runs.items():
        for run in done:
            if run["roots"] != truth or run["records"] != done[0]["records"]:
                raise SystemExit(f"{name}: Merkle roots or stored records differ from the run's")
    if runs["exact"][0]["records"] != runs["fast"][0]["records"]:
        raise SystemExit("the fast path stored different records than the exact one")
    grouped: dict[int, float] = {}  # batches per group -> best wall seconds per batch
    grouped_cpu: dict[int, float] = {}  # -> best driver CPU seconds per record
    for group in (int(g) for g in args.groups.split(",")):
        walls, cpus = [], []
        for _ in range(args.rounds):
            run = replay(template, blob, exact=False, group=group, worker_canonical=True)
            if run["roots"] != truth or run["records"] != runs["fast"][0]["records"]:
                raise SystemExit(f"group of {group}: results differ from the run's")
            walls.append(run["wall"])
            cpus.append(run["phases"]["store_batches"] + run["phases"]["record_batches"])
        grouped[group] = min(walls) / batches
        grouped_cpu[group] = min(cpus) / n
    per_batch = worker_seconds_per_batch(tmp / "case", args.workers, batches)

    def best(name: str, phase: str) -> float:
        return min(r["phases"][phase] for r in runs[name])

    phases = list(runs["exact"][0]["phases"])
    table = {phase: {name: round(best(name, phase) * 1e6 / n, 1) for name in runs}
             for phase in phases}
    driver = {name: best(name, "store_batches") + best(name, "record_batches")
              for name in runs}
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "image": args.image,
        "scale": args.scale,
        "records": n, "batches": batches, "cpus": os.cpu_count(),
        "us_per_record": table,
        "driver_ms_per_batch": {k: round(v * 1000 / batches, 1) for k, v in driver.items()},
        "wall_ms_per_batch": {k: round(min(r["wall"] for r in v) * 1000 / batches, 1)
                              for k, v in runs.items()},
        "group_commit_wall_ms_per_batch": {g: round(w * 1000, 2) for g, w in grouped.items()},
        # as exhibit runs now: canonical JSON made by the workers
        "driver_cpu_us_per_record_by_group": {g: round(c * 1e6, 1)
                                              for g, c in grouped_cpu.items()},
        "worker_seconds_per_batch": round(per_batch, 3),
        # W workers finish W / T batches a second; a group of g takes g * w(g) seconds of
        # the driver, while W * g * w(g) / T more arrive: fed while W <= T / w(g).
        "workers_fed_at_group": {g: int(per_batch / w) for g, w in grouped.items()},
        "canonical_speedup": round(best("exact", "canonical") / best("fast", "canonical"), 2),
        "driver_speedup": round(driver["exact"] / driver["fast"], 2),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"driver-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"{args.image} x{args.scale}: {n} records in {batches} batches;"
          " CPU microseconds per record (best of rounds)")
    print("\n| phase | exact rfc8785 | canonical_bytes |\n|---|---|---|")
    for phase, row in table.items():
        print(f"| {phase} | {row['exact']} | {row['fast']} |")
    print(f"\ndriver CPU ms per batch: {result['driver_ms_per_batch']}; wall ms per batch"
          f" (store + ledger): {result['wall_ms_per_batch']}")
    print(f"\ngroup commit: wall ms per batch by batches per group"
          f" {result['group_commit_wall_ms_per_batch']} (driver CPU µs per record"
          f" {result['driver_cpu_us_per_record_by_group']}, canonical JSON from the"
          f" workers); worker seconds per batch in the"
          f" captured run {result['worker_seconds_per_batch']}; workers the driver keeps fed"
          f" {result['workers_fed_at_group']}")
    print(f"canonical JSON {result['canonical_speedup']}x, driver {result['driver_speedup']}x"
          " faster; Merkle roots equal to the triage run's in every replay")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"written: {out}")


if __name__ == "__main__":
    main()
