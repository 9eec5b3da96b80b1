"""Container benchmark: ``exhibit triage`` of the photos image as raw, VMDK and E01.

The photos benchmark image (``benchmarks/speed/generate.py``; ``--scale`` as there) is
converted with ``qemu-img convert -O vmdk`` (monolithic sparse, the common VMware
default) and acquired with ``ewfacquire`` (EnCase 6, fast deflate: the common E01), and
each is triaged back to back, rotating which goes first each round (the machine is
shared: ratios within one run are what counts). The E01 is triaged twice: as exhibit
reads it (its media through the system's libewf) and with ``EXHIBIT_EWF_READER=pyewf``
(every read through pyewf, as before), the same-run baseline of that change. Reported:
wall time per run, the phases read from each case's ledger (hashing, walk, analysis),
the median of each and each container's ratio to raw; the VMDK target is 1.10 or less.

Usage: ``python benchmarks/vdisk/run.py [--scale 0.03] [--rounds 2] [--workers 2]
[--out DIR]`` (also run by ``make bench``).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "benchmarks" / "speed"))

from generate import build, cache_root  # noqa: E402

TARGET = 1.10
FORMATS = ("raw", "vmdk", "e01", "e01-pyewf")


@functools.cache
def _speed_runner() -> ModuleType:
    """``benchmarks/speed/run.py``, whose ledger phases this report shares (loaded by path:
    this script is ``run.py`` too)."""
    spec = importlib.util.spec_from_file_location("speed_run", REPO / "benchmarks" / "speed"
                                                  / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def phases(case: Path) -> dict[str, float]:
    """The image hash's own duration (it runs beside the walk and the analysis), the walk
    and plan, the analysis: as the speed benchmark reads them from the ledger."""
    found = _speed_runner().ledger_phases(case / "ledger.jsonl")
    return {"hash": found.get("image_hash_s") or 0.0, "walk": found["walk_and_plan_s"],
            "analysis": found["analysis_s"]}


def triage(image: Path, case: Path, workers: int, **extra_env: str) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(REPO), **extra_env)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "pipeline.cli", "triage", str(image), "--case",
                    str(case), "--examiner", "benchmark", "--create-key", "--workers",
                    str(workers), "--no-progress"], check=True,
                   env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    return {"wall": round(time.monotonic() - started, 2), **phases(case)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/vdisk/run.py")
    parser.add_argument("--scale", type=float, default=0.03)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=cache_root() / "results")
    args = parser.parse_args(argv)
    for tool, package in (("qemu-img", "qemu-utils"), ("ewfacquire", "ewf-tools")):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is required (Debian package {package})")
    manifest = build("photos", args.scale)
    raw = Path(manifest.image_path)
    runs: dict[str, list[dict[str, float]]] = {fmt: [] for fmt in FORMATS}
    with tempfile.TemporaryDirectory(prefix="exhibit-vdisk-bench-") as tmp:
        work = Path(tmp)
        vmdk = work / "photos.vmdk"
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o",
                        "subformat=monolithicSparse", str(raw), str(vmdk)], check=True)
        subprocess.run(["ewfacquire", "-u", "-q", "-t", str(work / "photos"), "-f", "encase6",
                        "-c", "fast", "-S", "7EiB", "-d", "sha1", str(raw)], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        e01 = work / "photos.E01"
        images = {"raw": raw, "vmdk": vmdk, "e01": e01, "e01-pyewf": e01}
        for r in range(args.rounds):
            order = FORMATS[r % len(FORMATS):] + FORMATS[:r % len(FORMATS)]
            for fmt in order:
                extra = {"EXHIBIT_EWF_READER": "pyewf"} if fmt == "e01-pyewf" else {}
                result = triage(images[fmt], work / f"case-{fmt}-{r}", args.workers, **extra)
                runs[fmt].append(result)
                print(f"round {r + 1} {fmt}: {result}", flush=True)
    median = {fmt: {k: round(statistics.median(run[k] for run in rs), 3) for k in rs[0]}
              for fmt, rs in runs.items()}
    ratios = {fmt: round(median[fmt]["wall"] / median["raw"]["wall"], 3)
              for fmt in FORMATS if fmt != "raw"}
    ratio = ratios["vmdk"]
    report = {"image": manifest.name, "scale": args.scale, "files": manifest.files,
              "image_bytes": manifest.image_bytes, "workers": args.workers,
              "rounds": args.rounds, "runs": runs, "median": median,
              "vmdk_over_raw": ratio, "over_raw": ratios, "target": TARGET,
              "when": datetime.now(UTC).isoformat(timespec="seconds")}
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"vdisk-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    (args.out / name).write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| format | wall s | hash s | walk s | analysis s |", "|---|---|---|---|---|"]
    for fmt, m in median.items():
        lines.append(f"| {fmt} | {m['wall']} | {m['hash']} | {m['walk']} | {m['analysis']} |")
    print("\n".join(lines))
    print(f"VMDK / raw (median wall time): {ratio} (target ≤ {TARGET}); E01 / raw:"
          f" {ratios['e01']} (pyewf alone: {ratios['e01-pyewf']}); {args.out / name}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
