"""The fixed cost on a disk whose syncs are slow: exhibit and a baseline, in one run.

A case directory often lives on an external or network disk where a sync takes
milliseconds (~10 ms on a USB hard disk), and the syncs before the first batch are paid
one after another. This runs ``exhibit triage`` on the bundled sample image with a small
preloaded library (built here with gcc) that makes every ``fsync`` and ``fdatasync`` of
the command's process tree wait ``--sync-ms`` before doing the real one, and counts them.
exhibit (``--source``, default this tree) and a baseline tree (``--baseline-source``,
e.g. ``git archive`` of an older commit unpacked) run alternately, ``--runs`` times each;
the medians and the baseline ÷ exhibit ratios are printed and kept as JSON (``--out``).

Usage: ``python benchmarks/speed/slow_disk.py [--source DIR] [--baseline-source DIR]
[--sync-ms 10] [--runs 3] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import REPO, command, installed_env, ledger_phases, measure  # noqa: E402

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Each sync: one byte appended to $SLOW_SYNC_COUNTS (atomic with O_APPEND, and kept
   by processes that end without exit handlers), then the wait, then the real call. */
static void slow(void) {
    const char *counts = getenv("SLOW_SYNC_COUNTS");
    if (counts) {
        int fd = open(counts, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) { (void)write(fd, "s", 1); close(fd); }
    }
    const char *ms = getenv("SLOW_SYNC_MS");
    long wait = ms ? atol(ms) : 10;
    struct timespec ts = {wait / 1000, (wait % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    slow();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    slow();
    return real(fd);
}
"""

PHASES = ("before_case_s", "first_result_s", "wall_s", "fixed_s", "syncs")


def build_shim(directory: Path) -> Path:
    if shutil.which("gcc") is None:
        raise SystemExit("slow_disk.py needs gcc to build its preloaded library")
    source, library = directory / "slowsync.c", directory / "slowsync.so"
    source.write_text(SHIM)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(library), str(source),
                    "-ldl"], check=True)
    return library


def one_run(env: dict[str, str], image: Path, work: Path) -> dict[str, Any]:
    """One triage of ``image`` with slow syncs; its phases from its ledger."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    counts = work / "syncs"
    cmd, ledger = command("exhibit", image, work, 2)
    row = measure(cmd, work / "output.log", ledger, dict(env, SLOW_SYNC_COUNTS=str(counts)),
                  cwd=work)
    if row["exit_code"] != 0:
        raise SystemExit(f"exhibit failed, see {row['log']}:\n"
                         + (work / "output.log").read_text(errors="replace")[-2000:])
    phases = ledger_phases(ledger, row) if ledger is not None else {}
    return {"before_case_s": phases.get("before_case_s"),
            "first_result_s": row["first_result_s"], "wall_s": row["wall_s"],
            "fixed_s": phases.get("fixed_s"),
            "syncs": counts.stat().st_size if counts.exists() else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=REPO)
    parser.add_argument("--baseline-source", type=Path, default=None)
    parser.add_argument("--sync-ms", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    trees = {"exhibit": args.source}
    if args.baseline_source is not None:
        trees["baseline"] = args.baseline_source
    with tempfile.TemporaryDirectory(prefix="exhibit-slow-disk-") as scratch:
        root = Path(scratch)
        shim = build_shim(root)
        image = root / "sample.dd"
        with gzip.open(REPO / "sample_data" / "sample.img.gz", "rb") as src, \
                image.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        envs = {name: dict(installed_env(tree), LD_PRELOAD=str(shim),
                           SLOW_SYNC_MS=str(args.sync_ms)) for name, tree in trees.items()}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for _ in range(args.runs):  # alternating, so drift on the machine hits both
            for name, env in envs.items():
                runs[name].append(one_run(env, image, root / name))

    medians = {name: {k: statistics.median(r[k] for r in rows if r[k] is not None)
                      for k in PHASES} for name, rows in runs.items()}
    result: dict[str, Any] = {"sync_ms": args.sync_ms, "runs": runs, "median": medians}
    print(f"sample image, every fsync/fdatasync {args.sync_ms} ms, {args.runs} runs each"
          " (medians):")
    for name, median in medians.items():
        print(f"  {name:9s} " + "  ".join(f"{k} {median[k]:g}" for k in PHASES))
    if "baseline" in medians:
        ratio = {k: round(medians["baseline"][k] / medians["exhibit"][k], 2)
                 for k in PHASES if medians["exhibit"][k]}
        result["baseline_over_exhibit"] = ratio
        print("  baseline ÷ exhibit: " + "  ".join(f"{k} {v:g}" for k, v in ratio.items()))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
