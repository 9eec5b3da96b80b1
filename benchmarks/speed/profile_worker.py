"""Profile the Dask task in-process: ``pipeline.run.worker.analyze_batch`` under cProfile.

Takes a case that ``exhibit triage`` already walked and planned (any finished run),
rebuilds its batches as ``BatchTask``s exactly as ``pipeline/run/triage.py`` does, and runs
them in this process, so the profile shows where a worker's time goes without Dask,
the driver or the database in the way.

Usage: ``python benchmarks/speed/profile_worker.py CASE [--batches N] [--top 30]
[--sort tottime] [--out FILE.prof]``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path

from analyzers import filetype
from chain_of_custody.ledger import read_entries
from ingest.derive import Limits
from ingest.image import ImageSpec
from pipeline.case.database import CaseDatabase
from pipeline.case.store import LEDGER_NAME, SCRATCH_DIR
from pipeline.run import EXPAND
from pipeline.run.triage import TriageOptions, batch_task
from pipeline.run.worker import BatchTask, analyze_batch


def tasks(case_dir: Path, limit: int | None) -> list[BatchTask]:
    """The case's batches as the triage that made it sent them: the analyzers, settings,
    expansion limits and carve ranges of its last ``triage.started`` entry, through the
    triage's own :func:`~pipeline.run.triage.batch_task`."""
    started = [e["details"] for e in read_entries(case_dir / LEDGER_NAME)
               if e["action"] == "triage.started"][-1]
    expand = started.get("expand")
    options = TriageOptions(
        images=[], case_dir=case_dir, settings=started.get("analyzer_settings", {}),
        limits=Limits(**expand["limits"]) if expand else Limits())
    names = (*started["analyzers"], EXPAND) if expand else tuple(started["analyzers"])
    db = CaseDatabase(case_dir / "case.sqlite")
    evidence = db.conn.execute("SELECT * FROM evidence").fetchone()
    spec = ImageSpec(evidence["format"], tuple(json.loads(evidence["paths"])))
    scratch = case_dir / SCRATCH_DIR
    scratch.mkdir(exist_ok=True)
    return [batch_task(db, options, spec, batch["id"], batch["volume_offset"],
                       json.loads(batch["file_ids"]), names, scratch)
            for batch in db.batches(evidence["id"])[:limit]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", type=Path)
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-profile", action="store_true", help="only time the batches")
    args = parser.parse_args(argv)
    work = tasks(args.case, args.batches)
    files = sum(len(t.items) for t in work)
    size = sum(max(0, i[2]["size"]) for t in work for i in t.items)
    analyze_batch(work[0])  # warm: open the image, load libmagic, import Pillow
    filetype.seen_heads_clear()  # …but batch 0 again must not be answered from memory
    profiler = None if args.no_profile else cProfile.Profile()
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    for task in work:
        analyze_batch(task)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    print(f"{len(work)} batches, {files} files, {size / 1e6:.0f} MB in {seconds:.2f} s:"
          f" {files / seconds:.0f} files/s, {size / 1e6 / seconds:.0f} MB/s (one process)")
    if profiler:
        if args.out:
            profiler.dump_stats(str(args.out))
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
