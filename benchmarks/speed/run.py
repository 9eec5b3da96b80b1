"""Speed benchmark runner: exhibit against the tools labs use, on the same images.

For each benchmark image (see ``generate.py``), back to back on a warm page cache:

- ``probe``: the physical-limit probe (``probe.py``: pytsk3 read + MD5/SHA-1/SHA-256 on
  every core, nothing else);
- ``exhibit``: ``exhibit triage`` with every analyzer, local Dask cluster;
- ``fiwalk``: ``fiwalk -X`` (MD5 + SHA-1, one thread);
- ``tsk_loaddb``: ``tsk_loaddb -h`` (MD5, one thread);
- ``naive``: the afternoon script (``naive.py``);
- ``baseline``: ``exhibit triage`` again, run from another source tree
  (``--baseline-source``, e.g. ``git archive main`` unpacked), so a change is measured
  before/after back to back in one run on a shared machine;
- ``samework``: the same-work script (``samework.py``): exhibit's per-file analysis
  (digests, libmagic, EXIF, one draft decode for pHash/dHash/PDQ with its dihedral
  variants, the thumbnail) on every core, with no case, ledger or Dask. exhibit ÷
  samework throughput is the share of the analysis work's own speed exhibit keeps;
- ``libmagic``: libmagic alone, one description per file on every core (``probe.py
  --work magic``): the ceiling of any tool whose types are file(1)'s, on this machine;
- ``image_hash``: the image's MD5+SHA-1+SHA-256 read once (``probe.py --work image``):
  what an acquisition hash, which exhibit's custody record needs and the naive script
  does not do, costs alone.

Each run is a subprocess watched by a sampler thread (every 50 ms) that reads the peak
RSS (``VmHWM``) of the process and of every descendant: the root is the driver, the
descendants are the workers. For exhibit the ledger is watched too, so the time to the
first ``batch.analysed`` entry (time to first result) is measured from the outside (and,
should the sampler miss it, taken from that entry's time stamp), and its phases (image
hashing, walk, analysis) are read from the ledger afterwards, whatever their order (the
image hash may run concurrently with the analysis).

Also measured: time to first result and total on the bundled sample image. Results go
to ``OUT/bench-<UTC time>.json`` and ``.md`` (``--out``, default ``<cache>/results``),
and the Markdown table is printed. Ratios are always taken within one run: the machine
is shared and absolute numbers are noisy.

Usage: ``python benchmarks/speed/run.py [--images bulk,photos,many-small] [--scale 1]
[--tools probe,samework,libmagic,image_hash,exhibit,fiwalk,tsk_loaddb,naive] [--out DIR]
[--no-sample]``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from generate import MB, Manifest, build, cache_root  # noqa: E402

PY = str(Path(sys.executable))
# ``python -m pipeline.cli`` is the ``exhibit`` command of whichever source tree is on
# PYTHONPATH (--source, --baseline-source), its own entry point included.
EXHIBIT = (PY, "-m", "pipeline.cli")
TOOLS = ("probe", "samework", "libmagic", "image_hash", "exhibit", "baseline", "fiwalk",
         "tsk_loaddb", "naive")
PROBES = {"probe": "files", "libmagic": "magic", "image_hash": "image"}  # probe.py --work


def installed_env(tree: Path) -> dict[str, str]:
    """The environment that runs exhibit from the source tree ``tree``, its packages'
    bytecode written first, as installing them does (pip compiles what it installs; an
    unpacked ``git archive`` has no ``__pycache__``, and where PYTHONDONTWRITEBYTECODE is
    set, as on the CI machine, each of a triage's five processes would compile exhibit's
    modules at its start, ~0.15 s each).

    PYTHONSAFEPATH: ``python -m`` puts the working directory first on ``sys.path``, ahead
    of PYTHONPATH, in the command and in the processes it starts (the walk's child): run
    from the repository, every tree measured was the working tree."""
    import compileall
    import tomllib

    tree = tree.resolve()
    with (tree / "pyproject.toml").open("rb") as fh:
        found = tomllib.load(fh)["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in sorted({pattern.rstrip("*") for pattern in found}):
        if not compileall.compile_dir(tree / package, quiet=1):
            raise SystemExit(f"{tree / package}: does not compile")
    return dict(os.environ, PYTHONPATH=str(tree), PYTHONSAFEPATH="1")


# -- measuring one process tree ----------------------------------------------------------


def _hwm_kb(pid: int) -> int | None:
    """Peak resident set size of ``pid`` in KiB (``VmHWM``), None if it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) ``pid`` has used so far, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return None


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/PID/task/*/children)."""
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out.extend(int(p) for p in fh.read().split())
    except OSError:
        pass
    return out


def measure(cmd: list[str], log: Path, ledger: Path | None = None,
            env: dict[str, str] | None = None, cwd: Path | None = None) -> dict[str, Any]:
    """Run ``cmd`` (in ``cwd``); wall time, exit code, peak RSS of the root and of its
    descendants."""
    peaks: dict[int, int] = {}
    cpu: dict[int, float] = {}  # last CPU seconds seen per process of the tree
    first_result: list[float] = []
    started = time.monotonic()
    started_utc = time.time()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    done = threading.Event()

    def sample() -> None:
        seen_bytes = 0
        while not done.is_set():
            stack = [proc.pid]
            while stack:
                pid = stack.pop()
                kb = _hwm_kb(pid)
                if kb is not None:
                    peaks[pid] = max(peaks.get(pid, 0), kb)
                used = _cpu_s(pid)
                if used is not None:
                    cpu[pid] = used
                stack.extend(_children(pid))
            if ledger is not None and not first_result and ledger.exists():
                size = ledger.stat().st_size
                if size != seen_bytes:
                    seen_bytes = size
                    if b'"action":"batch.analysed"' in ledger.read_bytes():
                        first_result.append(time.monotonic() - started)
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    wall = time.monotonic() - started
    done.set()
    sampler.join()
    workers = [kb for pid, kb in peaks.items() if pid != proc.pid and kb > 0]
    if ledger is not None and not first_result and ledger.exists():
        # finished between two samples: the entry's own time stamp (ms resolution)
        stamp = first_batch_time(ledger)
        if stamp is not None:
            first_result.append(max(0.0, stamp - started_utc))
    return {
        "wall_s": round(wall, 3),
        "exit_code": code,
        "driver_rss_mb": round(peaks.get(proc.pid, 0) / 1024, 1),
        "worker_rss_mb": round(max(workers) / 1024, 1) if workers else None,
        "worker_processes": len(workers),
        # sampled every 50 ms: a process's last 50 ms (or one that lived less) is missed
        "cpu_s": round(sum(cpu.values()), 2),
        "driver_cpu_s": round(cpu.get(proc.pid, 0.0), 2),
        "first_result_s": round(first_result[0], 3) if first_result else None,
        "started_epoch": started_utc,
        "ended_epoch": started_utc + wall,
        "load_average_1min": round(os.getloadavg()[0], 2),  # others' load on a shared box
        "log": str(log),
    }


def warm(path: Path) -> float:
    """Read the image once so every tool starts on a warm page cache; MB/s of the read."""
    started = time.monotonic()
    with path.open("rb", buffering=0) as fh:
        while fh.read(8 << 20):
            pass
    return round(path.stat().st_size / MB / max(1e-9, time.monotonic() - started), 1)


# -- exhibit's phases from its ledger ------------------------------------------------------


def _at(entry: dict[str, Any]) -> float:
    """An entry's UTC time stamp as a POSIX time."""
    return datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=UTC).timestamp()


def first_batch_time(ledger: Path) -> float | None:
    """POSIX time of the first ``batch.analysed`` entry, None if there is none."""
    for line in ledger.read_text(errors="replace").splitlines():
        if '"action":"batch.analysed"' in line:
            try:
                return _at(json.loads(line))
            except (ValueError, KeyError):
                return None
    return None


def ledger_phases(ledger: Path, run: dict[str, Any] | None = None) -> dict[str, Any]:
    """Phases from the ledger; with ``run`` (measure's row: the command's start and end,
    epoch s) also the fixed cost: the time before the case opens, waiting for the cluster
    after the walk and plan, and after the last batch (less any wait for the image hash,
    which is work) — what the issue bounds at 1 s."""
    entries = [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()]
    at = _at

    first = {e["action"]: e for e in reversed(entries)}
    last = {e["action"]: e for e in entries}
    out: dict[str, Any] = {}
    if "acquisition.hashed" in first:
        out["image_hash_s"] = first["acquisition.hashed"]["details"].get("seconds")
    if "evidence.registered" in first and "batches.planned" in first:
        out["walk_and_plan_s"] = round(at(first["batches.planned"])
                                       - at(first["evidence.registered"]), 3)
    if "analysis.started" in first and "batch.analysed" in last:
        out["analysis_s"] = round(at(last["batch.analysed"]) - at(first["analysis.started"]), 3)
    if "batches.planned" in first and "analysis.started" in first:
        out["cluster_start_s"] = round(at(first["analysis.started"])
                                       - at(first["batches.planned"]), 3)
    if run and run.get("started_epoch") and "batch.analysed" in last \
            and "case.created" in first and "analysis.started" in first:
        planned = max(at(first[a]) for a in ("batches.planned", "carve.planned") if a in first)
        last_batch = at(last["batch.analysed"])
        hash_tail = (max(0.0, at(first["acquisition.compared"]) - last_batch)
                     if "acquisition.compared" in first else 0.0)
        parts = {"before_case_s": at(first["case.created"]) - run["started_epoch"],
                 "cluster_wait_s": max(0.0, at(first["analysis.started"]) - planned),
                 "after_analysis_s": run["ended_epoch"] - last_batch - hash_tail}
        out.update({k: round(v, 3) for k, v in parts.items()})
        out["hash_tail_s"] = round(hash_tail, 3)
        out["fixed_s"] = round(sum(parts.values()), 3)
    if "triage.completed" in last:
        summary = last["triage.completed"]["details"]
        out["summary"] = {k: summary.get(k) for k in ("files", "analysed", "images",
                                                      "errors", "skipped", "elapsed_seconds")}
    out["batches"] = sum(1 for e in entries if e["action"] == "batch.analysed")
    return out


# -- one image -----------------------------------------------------------------------------


def command(tool: str, image: Path, work: Path, workers: int) -> tuple[list[str], Path | None]:
    if tool in PROBES:
        return [PY, str(HERE / "probe.py"), str(image), "--jobs", str(workers),
                "--work", PROBES[tool]], None
    if tool in ("exhibit", "baseline"):
        case = work / "case"
        return [*EXHIBIT, "triage", str(image), "--case", str(case), "--no-progress",
                "--examiner", "benchmark", "--create-key", "--workers", str(workers)
                ], case / "ledger.jsonl"
    if tool == "fiwalk":
        return ["fiwalk", "-X", str(work / "fiwalk.xml"), str(image)], None
    if tool == "tsk_loaddb":
        return ["tsk_loaddb", "-h", "-d", str(work / "tsk.db"), str(image)], None
    if tool == "samework":
        return [PY, str(HERE / "samework.py"), str(image), "--jobs", str(workers)], None
    if tool == "naive":
        return [PY, str(HERE / "naive.py"), str(image), "--out", str(work / "naive.jsonl")], None
    raise ValueError(f"unknown tool {tool!r}")


def bench_image(manifest: Manifest, tools: list[str], scratch: Path, workers: int,
                env: dict[str, str] | None = None,
                baseline_env: dict[str, str] | None = None) -> dict[str, Any]:
    image = Path(manifest.image_path)
    result: dict[str, Any] = {"manifest": manifest.__dict__, "tools": {}}
    result["page_cache_read_mb_s"] = warm(image)
    for tool in tools:
        work = scratch / f"{manifest.name}-{tool}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        warm(image)
        cmd, ledger = command(tool, image, work, workers)
        print(f"  {manifest.name}: {tool} …", file=sys.stderr, flush=True)
        row = measure(cmd, work / "output.log", ledger,
                      {"exhibit": env, "baseline": baseline_env}.get(tool), cwd=work)
        row["command"] = cmd
        wall = row["wall_s"]
        ok = row["exit_code"] == 0
        if not ok:  # a failed run has no speed; keep its wall time and log for the record
            print(f"  {tool} FAILED, see {row['log']}:\n"
                  + (work / "output.log").read_text(errors="replace")[-2000:], file=sys.stderr)
            keep = work.with_name(work.name + "-failed.log")
            shutil.copy(work / "output.log", keep)
            row["log"] = str(keep)
        row["files_per_s"] = round(manifest.files / wall, 1) if ok else None
        row["mb_per_s"] = round(manifest.bytes / MB / wall, 1) if ok else None
        row["images_per_s"] = (round(manifest.images / wall, 1)
                               if ok and manifest.images else None)
        if ledger is not None and ledger.exists():
            row["phases"] = ledger_phases(ledger, row)
        if tool in (*PROBES, "samework"):
            row[tool] = _last_json(work / "output.log")
        if tool == "samework" and row[tool]:
            row["first_result_s"] = row[tool].get("first_result_s")
        result["tools"][tool] = row
        print(f"  {manifest.name}: {tool} {wall:.1f} s (exit {row['exit_code']})",
              file=sys.stderr, flush=True)
        shutil.rmtree(work / "case", ignore_errors=True)
        for big in ("tsk.db", "fiwalk.xml", "naive.jsonl"):
            (work / big).unlink(missing_ok=True)
    ex = result["tools"].get("exhibit")
    if ex:
        result["speedup"] = {t: round(r["wall_s"] / ex["wall_s"], 2)
                             for t, r in result["tools"].items()
                             if t != "exhibit" and r["exit_code"] == 0 and ex["exit_code"] == 0}
        analysis = (ex.get("phases") or {}).get("analysis_s")
        if analysis:
            ex["analysis_mb_per_s"] = round(manifest.bytes / MB / analysis, 1)
            ex["analysis_files_per_s"] = round(manifest.files / analysis, 1)
            if manifest.images:
                ex["analysis_images_per_s"] = round(manifest.images / analysis, 1)
        same = result["tools"].get("samework")
        if same and same["exit_code"] == 0 and ex["exit_code"] == 0:
            # throughput ratios (same files, same bytes): > 1 means exhibit is faster
            work_s = (same.get("samework") or {}).get("work_s")
            result["exhibit_vs_samework"] = {
                "end_to_end": round(same["wall_s"] / ex["wall_s"], 3),
                "analysis": round(work_s / analysis, 3) if work_s and analysis else None,
                # CPU seconds of the whole process tree: what a loaded, shared machine
                # distorts least (others' load stretches wall times, not CPU times)
                "cpu": round(same["cpu_s"] / ex["cpu_s"], 3) if ex.get("cpu_s") else None,
            }
    return result


def _last_json(log: Path) -> dict[str, Any] | None:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


def bench_sample(scratch: Path, workers: int, env: dict[str, str] | None = None
                 ) -> dict[str, Any]:
    """Time to first result and total on the bundled sample image."""
    image = scratch / "sample.dd"
    with gzip.open(REPO / "sample_data" / "sample.img.gz", "rb") as src, image.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    work = scratch / "sample-exhibit"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    warm(image)
    cmd, ledger = command("exhibit", image, work, workers)
    row = measure(cmd, work / "output.log", ledger, env, cwd=work)
    if ledger is not None and ledger.exists():
        row["phases"] = ledger_phases(ledger, row)
    image.unlink()
    return row


# -- targets and reports -------------------------------------------------------------------


def targets(images: dict[str, Any], sample: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and pass/fail (None: not run)."""
    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: str, ok: bool | None) -> None:
        out.append({"target": name, "measured": value, "goal": goal, "met": ok})

    def get(img: str, tool: str, key: str) -> float | None:
        row = (images.get(img) or {}).get("tools", {}).get(tool) or {}
        return row.get(key) if row.get("exit_code") == 0 else None

    ex, pr, fw = get("bulk", "exhibit", "mb_per_s"), get("bulk", "probe", "mb_per_s"), None
    if ex and pr:
        add("bulk: exhibit MB/s ÷ probe MB/s", round(ex / pr, 3), "≥ 0.70", ex / pr >= 0.7)
    fw = get("bulk", "fiwalk", "wall_s")
    exw = get("bulk", "exhibit", "wall_s")
    if fw and exw:
        add("bulk: fiwalk time ÷ exhibit time", round(fw / exw, 2), "≥ 2", fw / exw >= 2)
    nv, exw = get("bulk", "naive", "wall_s"), get("bulk", "exhibit", "wall_s")
    if nv and exw:  # the issue: a 240 MB image (bulk at --scale 0.1) no slower than naive
        add("bulk: naive time ÷ exhibit time", round(nv / exw, 2), "≥ 1", nv / exw >= 1)
    hashed = get("bulk", "image_hash", "wall_s")
    if nv and exw and hashed:  # with the custody exhibit keeps: the image hashed as well
        add("bulk: (naive + image hash) time ÷ exhibit time", round((nv + hashed) / exw, 2),
            "≥ 1", (nv + hashed) / exw >= 1)
    ips = get("photos", "exhibit", "images_per_s")
    if ips:
        add("photos: exhibit images/s", ips, "≥ 200", ips >= 200)
    versus = (images.get("photos") or {}).get("exhibit_vs_samework", {})
    if versus.get("end_to_end"):
        add("photos: exhibit throughput ÷ same-work script", versus["end_to_end"],
            "≥ 2/3 (aim 0.85)", versus["end_to_end"] >= 2 / 3)
    if versus.get("cpu"):
        add("photos: samework CPU ÷ exhibit CPU (same work)", versus["cpu"], "≥ 2/3",
            versus["cpu"] >= 2 / 3)
    nv, exw = get("photos", "naive", "wall_s"), get("photos", "exhibit", "wall_s")
    if nv and exw:
        add("photos: naive time ÷ exhibit time", round(nv / exw, 2), "≥ 10", nv / exw >= 10)
    fps = get("many-small", "exhibit", "files_per_s")
    if fps:
        add("many-small: exhibit files/s", fps, "≥ 2,500", fps >= 2500)
    ceiling = get("many-small", "libmagic", "files_per_s")
    if ceiling:  # no tool with file(1)'s types passes libmagic alone on these cores
        add("many-small: libmagic alone, files/s (the ceiling with file(1)'s types)", ceiling,
            "≥ 2,500 for the target to be reachable", ceiling >= 2500)
    if ceiling and fps:
        add("many-small: exhibit files/s ÷ libmagic alone", round(fps / ceiling, 3),
            "(its share of the ceiling)", None)
    fw, exw = get("many-small", "fiwalk", "wall_s"), get("many-small", "exhibit", "wall_s")
    if fw and exw:
        add("many-small: fiwalk time ÷ exhibit time", round(fw / exw, 2), "≥ 1", fw / exw >= 1)
    for name, img in images.items():
        row = img["tools"].get("exhibit") or {}
        if row.get("exit_code") != 0:
            continue
        if row.get("first_result_s") is not None:
            add(f"{name}: time to first result (s)", row["first_result_s"], "≤ 3",
                row["first_result_s"] <= 3)
        fixed = (row.get("phases") or {}).get("fixed_s")
        if fixed is not None:
            add(f"{name}: fixed cost beyond the work (s)", fixed, "≤ 1", fixed <= 1)
    if sample:
        ttfr = sample.get("first_result_s")
        add("sample: time to first result (s)", ttfr, "≤ 3", None if ttfr is None else ttfr <= 3)
        add("sample: total (s)", sample["wall_s"], "≤ 10", sample["wall_s"] <= 10)
    for name, img in images.items():
        row = img["tools"].get("exhibit") or {}
        if row.get("worker_rss_mb"):
            add(f"{name}: worker peak RSS (MB)", row["worker_rss_mb"], "≤ 1,024",
                row["worker_rss_mb"] <= 1024)
        if row.get("driver_rss_mb"):
            add(f"{name}: driver peak RSS (MB)", row["driver_rss_mb"], "≤ 500",
                row["driver_rss_mb"] <= 500)
    return out


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Measured {report['started']} on {m['cpu']} ({m['cores']} cores), "
        f"{m['memory_gb']} GB RAM, {m['system']}; Python {m['python']}, "
        f"{m['tsk']}; scale {report['scale']:g}; warm page cache; "
        f"{report['workers']} exhibit workers; exhibit at {report.get('exhibit_commit')}.",
        "",
        "| image | tool | wall s | CPU s (driver) | files/s | MB/s | images/s | driver RSS MB"
        " | worker RSS MB | exhibit speed-up |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, img in report["images"].items():
        mf = img["manifest"]
        label = (f"{name} ({mf['files']:,} files, {mf['bytes'] / MB:,.0f} MB"
                 + (f", {mf['images']:,} images" if mf["images"] else "") + ")")
        for tool, row in img["tools"].items():
            speed = "" if tool == "exhibit" else _fmt(img.get("speedup", {}).get(tool), 2) + "×"
            lines.append(
                f"| {label} | {tool} | {_fmt(row['wall_s'], 2)} |"
                f" {_fmt(row.get('cpu_s'))} ({_fmt(row.get('driver_cpu_s'))}) |"
                f" {_fmt(row['files_per_s'])} |"
                f" {_fmt(row['mb_per_s'])} | {_fmt(row['images_per_s'])} |"
                f" {_fmt(row['driver_rss_mb'], 0)} | {_fmt(row['worker_rss_mb'], 0)} | {speed} |"
            )
            label = ""
    phases = [(n, img["tools"]["exhibit"].get("phases", {}))
              for n, img in report["images"].items() if "exhibit" in img["tools"]]
    if phases:
        lines += ["", "exhibit's phases (from its ledger), seconds:", "",
                  "| image | image hash (beside) | walk + plan | waiting for the cluster |"
                  " analysis | time to first result | before the case | after the last"
                  " batch | fixed cost |",
                  "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for name, ph in phases:
            ex = report["images"][name]["tools"]["exhibit"]
            lines.append(f"| {name} | {_fmt(ph.get('image_hash_s'), 2)} |"
                         f" {_fmt(ph.get('walk_and_plan_s'), 2)} |"
                         f" {_fmt(ph.get('cluster_start_s'), 2)} |"
                         f" {_fmt(ph.get('analysis_s'), 2)} |"
                         f" {_fmt(ex.get('first_result_s'), 2)} |"
                         f" {_fmt(ph.get('before_case_s'), 2)} |"
                         f" {_fmt(ph.get('after_analysis_s'), 2)} |"
                         f" {_fmt(ph.get('fixed_s'), 2)} |")
    versus = [(n, img["exhibit_vs_samework"]) for n, img in report["images"].items()
              if img.get("exhibit_vs_samework")]
    if versus:
        lines += ["", "exhibit ÷ same-work script, throughput (1 = as fast):", "",
                  "| image | end to end | analysis phase ÷ samework's work | CPU (samework CPU s"
                  " ÷ exhibit CPU s) |", "|---|--:|--:|--:|"]
        lines += [f"| {n} | {_fmt(v['end_to_end'], 3)} | {_fmt(v['analysis'], 3)} |"
                  f" {_fmt(v.get('cpu'), 3)} |" for n, v in versus]
    if report.get("sample"):
        s = report["sample"]
        lines += ["", f"Sample image: first result after {_fmt(s.get('first_result_s'), 2)} s,"
                      f" total {_fmt(s['wall_s'], 2)} s."]
    if report.get("targets"):
        lines += ["", "| target | measured | goal | met |", "|---|--:|--:|:-:|"]
        for t in report["targets"]:
            met = "–" if t["met"] is None else ("yes" if t["met"] else "**no**")
            lines.append(f"| {t['target']} | {_fmt(t['measured'], 2)} | {t['goal']} | {met} |")
    return "\n".join(lines) + "\n"


def _commit(source: Path | None) -> str | None:
    """The commit exhibit ran from: ``source/COMMIT`` if present, else the repo's HEAD."""
    if source is not None and (source / "COMMIT").exists():
        return (source / "COMMIT").read_text().strip()
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                         text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "-uno"],
                           capture_output=True, text=True).stdout.strip()
    head = out.stdout.strip() or None
    return f"{head} (+ uncommitted changes)" if head and dirty and source is None else head


def machine() -> dict[str, Any]:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kb = int(fh.readline().split()[1])
    tsk = subprocess.run(["tsk_loaddb", "-V"], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
            "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "tsk": tsk or "TSK unknown",
            "host": platform.node()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default="bulk,photos,many-small")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--tools", default=",".join(t for t in TOOLS if t != "baseline"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-sample", action="store_true")
    parser.add_argument("--source", type=Path, default=None,
                        help="run exhibit from this source tree (e.g. `git archive HEAD` unpacked)"
                             " instead of the installed one: a shared working tree can be"
                             " mid-edit")
    parser.add_argument("--baseline-source", type=Path, default=None,
                        help="the source tree the `baseline` tool runs exhibit from")
    args = parser.parse_args(argv)
    env = installed_env(args.source or REPO)
    tools = [t for t in args.tools.split(",") if t]
    baseline_env = None
    if "baseline" in tools:
        if args.baseline_source is None:
            parser.error("the baseline tool needs --baseline-source")
        baseline_env = installed_env(args.baseline_source)
    for tool in tools:
        if tool not in TOOLS:
            parser.error(f"unknown tool {tool!r}; choose from {', '.join(TOOLS)}")
    for exe in ("fiwalk", "tsk_loaddb"):
        if exe in tools and shutil.which(exe) is None:
            parser.error(f"{exe} is not installed (Debian package sleuthkit)")
    out_dir = args.out or (args.cache or cache_root()) / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
        "scale": args.scale, "workers": args.workers, "tools": tools, "images": {},
        "exhibit_source": str(args.source or REPO), "exhibit_commit": _commit(args.source),
        "baseline_source": str(args.baseline_source) if args.baseline_source else None,
        "baseline_commit": _commit(args.baseline_source) if args.baseline_source else None,
    }
    with tempfile.TemporaryDirectory(prefix="exhibit-bench-") as tmp:
        scratch = Path(tmp)
        if not args.no_sample:
            print("sample image: time to first result …", file=sys.stderr, flush=True)
            report["sample"] = bench_sample(scratch, args.workers, env)
        for name in [n for n in args.images.split(",") if n]:
            manifest = build(name, args.scale, root=args.cache)
            print(f"{name}: {manifest.files:,} files, {manifest.bytes / MB:,.0f} MB",
                  file=sys.stderr, flush=True)
            report["images"][name] = bench_image(manifest, tools, scratch, args.workers, env,
                                                 baseline_env)
    report["targets"] = targets(report["images"], report.get("sample"))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    table = markdown(report)
    (out_dir / f"bench-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / f"bench-{stamp}.md").write_text(table)
    print(table)
    print(f"results: {out_dir / f'bench-{stamp}.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
