"""A file that crashes or hangs native code costs that analyzer on that file, nothing more."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool, sha256_file
from fault_analyzers import CRASH, GIL, SLEEP, SPIN
from pipeline_helpers import REPO, exhibit, export_jsonl, ledger_entries

FAULTS = {"crash.bin": (CRASH, "crashed"), "sleep.bin": (SLEEP, "timed out"),
          "gil.bin": (GIL, "timed out")}


@pytest.fixture(scope="module")
def faulty_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("mke2fs")
    root = tmp_path_factory.mktemp("faulty")
    src = root / "src"
    src.mkdir()
    rng = random.Random(6)
    for i in range(14):
        (src / f"ok{i:02d}.bin").write_bytes(rng.randbytes(rng.randint(10, 5000)))
    for name, (marker, _) in FAULTS.items():
        (src / name).write_bytes(marker + rng.randbytes(100))
    (src / "spin.bin").write_bytes(SPIN + rng.randbytes(100))
    image = root / "faulty.dd"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(src), str(image), "8M"],
                   check=True)
    image.chmod(0o444)
    return image


def test_crashing_and_hanging_files_are_contained(faulty_image: Path, tmp_path: Path) -> None:
    before = sha256_file(faulty_image)
    case = tmp_path / "case"
    env = {"EXHIBIT_ANALYZER_MODULES": "fault_analyzers",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)])}
    exhibit("triage", faulty_image, "--case", case, "--workers", "2", "--no-progress",
            "--batch-files", "6", "--file-timeout", "2", env=env, timeout=600)
    records = {r["name"]: r for r in export_jsonl(case) if r["kind"] == "file"
               and r["allocated"] and r["name"].endswith(".bin")}
    assert len(records) == 18
    for name, record in records.items():
        # Every file keeps the findings of the analyzers that did not fail on it.
        assert record["sha256"] and record["mime"], name
    for name, (_, label) in FAULTS.items():
        errors = records[name]["errors"]
        assert [(e["analyzer"], e["error"]) for e in errors] == [("fault", label)], name
    spin = records["spin.bin"]["errors"]
    assert [(e["analyzer"], e["error"]) for e in spin] == [("fault", "AnalysisTimeout")]
    assert all(not r["errors"] for n, r in records.items() if n.startswith("ok"))
    exhibit("ledger", "verify", case)
    batch_errors = [err for e in ledger_entries(case) if e["action"] == "batch.analysed"
                    for err in e["details"]["errors"]]
    assert {(err["analyzer"], err["error"]) for err in batch_errors} == {
        ("fault", "crashed"), ("fault", "timed out"), ("fault", "AnalysisTimeout")}
    assert sha256_file(faulty_image) == before


def test_crashes_on_a_one_worker_cluster_blame_only_their_analyzer(tmp_path: Path) -> None:
    """With one worker every crash leaves the cluster without one until it is replaced,
    and a task sent meanwhile may be reported dead with it without having begun (sent
    again unchanged, no start event). Whatever the order, each crash blames its own
    analyzer and no clean file gets an error. (On an idle machine this did not fail
    before the re-send either; the loaded runs in the README are the evidence for it.)"""
    require_tool("mke2fs")
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(7)
    for i in range(6):
        (src / f"crash{i}.bin").write_bytes(CRASH + rng.randbytes(100))
        (src / f"ok{i}.bin").write_bytes(rng.randbytes(rng.randint(10, 5000)))
    image = tmp_path / "crashes.dd"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(src), str(image), "8M"],
                   check=True)
    case = tmp_path / "case"
    env = {"EXHIBIT_ANALYZER_MODULES": "fault_analyzers",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)])}
    exhibit("triage", image, "--case", case, "--workers", "1", "--no-progress",
            "--batch-files", "1", "--analyzers", "hashes,filetype,fault",
            "--carve", "none", env=env, timeout=600)
    records = {r["name"]: r for r in export_jsonl(case) if r["kind"] == "file"
               and r["allocated"] and r["name"].endswith(".bin")}
    assert len(records) == 12
    errors = {name: [(e["analyzer"], e["error"]) for e in r["errors"]]
              for name, r in records.items()}
    assert errors == {name: [("fault", "crashed")] if name.startswith("crash") else []
                      for name in records}
    assert all(r["sha256"] and r["mime"] for r in records.values())


def _announce(key: str) -> float:
    import time

    from pipeline.run.watchdog import announce_start

    began = time.monotonic()
    announce_start(key)
    return time.monotonic() - began


def test_a_task_start_is_at_the_scheduler_when_announce_start_returns() -> None:
    """The start event has been written when ``announce_start`` returns (the driver reads
    it to tell a hang from a crash, and a task that never began from one that did), and
    it returns at once on an idle worker: it waits for the write it can see in Dask's
    batched stream, so a Dask whose stream no longer shows it would cost 10 s a task."""
    from distributed import Client, LocalCluster

    from pipeline.run.watchdog import START_TOPIC

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        took = [client.submit(_announce, f"k{i}", pure=False).result() for i in range(3)]
        keys = [m.get("task_key") for _, m in client.get_events(START_TOPIC)]
    assert keys == ["k0", "k1", "k2"]
    assert max(took) < 1.0, took


def _start_then_crash(key: str) -> None:
    import time

    from pipeline.run.watchdog import announce_start

    announce_start(key)
    time.sleep(0.3)
    os.abort()


def test_a_crash_learnt_late_is_timed_to_its_worker_end() -> None:
    """A crash the driver learns of seconds later (a loaded machine) ran as long as its
    worker lived, not until the driver looked: else a crash reads as a file over its
    time limit (`timed out`). A task that never reported a start ran for no time known."""
    import time

    import dask
    from distributed import Client, LocalCluster

    from pipeline.run.cluster import BatchRunner

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster, Client(cluster) as client:
        failed = client.submit(_start_then_crash, "crash-key", key="crash-key", pure=False)
        exc = failed.exception()
        time.sleep(3)  # the driver looks late
        runner = BatchRunner(1)
        runner.client = client
        ran = runner._ran_for("crash-key", exc)
        never = runner._ran_for("never-started", exc)
        runner.client = None
    assert type(exc).__name__ == "KilledWorker"
    assert ran is not None and 0.25 < ran < 2.0, ran
    assert never is None
