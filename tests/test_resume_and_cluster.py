"""A run killed mid-analysis resumes to identical results; a real Dask cluster works too."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_tool, sha256_file, stop_processes
from pipeline_helpers import REPO, exhibit, export_jsonl, ledger_entries, triage


@pytest.fixture(scope="module")
def many_files_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ext4 image of 1,200 small files (text and binary) in nested folders."""
    require_tool("mke2fs")
    root = tmp_path_factory.mktemp("many")
    src = root / "src"
    rng = random.Random(20261128)
    for i in range(1200):
        folder = src / f"d{i % 7}" / f"e{i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        if i % 3 == 0:
            data = " ".join(rng.choice(["alpha", "beta", "gamma", "delta"])
                            for _ in range(rng.randint(10, 800))).encode()
            name = f"note{i}.txt"
        else:
            data = rng.randbytes(rng.randint(0, 12000))
            name = f"blob{i}.bin"
        (folder / name).write_bytes(data)
        os.utime(folder / name, (1_700_000_000 + i, 1_700_000_000 + i))
    image = root / "many.dd"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-U", "0b4d6a2e-0000-4000-8000-000000000001",
                    "-E", "hash_seed=0b4d6a2e-0000-4000-8000-000000000002", "-d", str(src),
                    str(image), "40M"], check=True,
                   env=dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000"))
    image.chmod(0o444)
    return image


def _batches_done(case: Path, action: str = "batch.analysed") -> int:
    """Entries of ``action`` in the ledger's complete lines.

    A line being appended is visible to a reader page by page, its action among the first
    bytes (canonical JSON sorts the keys); counting it would send the kill into the middle
    of that write, which tears the line (a documented outcome of a crash mid-append,
    tested in ``test_ledger_durability``) instead of testing resume after N batches.
    """
    ledger = case / "ledger.jsonl"
    if not ledger.exists():
        return 0
    data = ledger.read_bytes()
    return data[: data.rfind(b"\n") + 1].count(f'"{action}"'.encode())


# Where to kill: before the walk is recorded, right after planning, and at 20 points in
# the analysis drawn once from a fixed seed (the reference run has 60 batches).
KILL_POINTS = [("acquisition.started", 1), ("acquisition.hashed", 1), ("batches.planned", 1)] + [
    ("batch.analysed", n) for n in sorted(random.Random(20261128).sample(range(1, 56), 20))]


@pytest.fixture(scope="module")
def reference_export(many_files_image: Path, tmp_path_factory: pytest.TempPathFactory
                     ) -> tuple[list[dict], int]:
    """The export and batch count of an uninterrupted run."""
    reference = tmp_path_factory.mktemp("reference") / "case"
    triage(many_files_image, reference, "--batch-files", "20")
    entries = ledger_entries(reference)
    total = next(e for e in entries if e["action"] == "batches.planned")["details"]["batches"]
    total += next(e for e in entries if e["action"] == "carve.planned")["details"]["ranges"]
    return export_jsonl(reference), total


@pytest.mark.parametrize(("action", "kill_after"), KILL_POINTS)
def test_sigkill_then_resume_gives_identical_results(
        many_files_image: Path, reference_export: tuple[list[dict], int], tmp_path: Path,
        action: str, kill_after: int) -> None:
    expected, total = reference_export
    before = sha256_file(many_files_image)
    case = tmp_path / "killed"
    cmd = [sys.executable, "-m", "pipeline.cli", "triage", str(many_files_image), "--case",
           str(case), "--workers", "2", "--no-progress", "--batch-files", "20"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while _batches_done(case, action) < kill_after:
        assert proc.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _batches_done(case) < total, "killed mid-analysis"

    exhibit("ledger", "verify", case)
    triage(many_files_image, case, "--batch-files", "20")
    assert export_jsonl(case) == expected
    exhibit("ledger", "verify", case)
    analysed = [e["subject"]["batch_id"] for e in ledger_entries(case)
                if e["action"] == "batch.analysed"]
    assert len(analysed) == len(set(analysed)) == total, "no batch analysed twice or lost"
    assert sha256_file(many_files_image) == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[str]:
    """A real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1."""
    dask_cli = Path(sys.executable).parent / "dask"
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(dask_cli), "scheduler", "--host", "127.0.0.1", "--port",
                               str(port), "--no-dashboard"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    for name in ("w1", "w2"):
        procs.append(subprocess.Popen(
            [str(dask_cli), "worker", address, "--nthreads", "1", "--nworkers", "1",
             "--name", name, "--no-dashboard", "--host", "127.0.0.1"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONPATH=str(REPO))))
    try:
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout="5s") as client:
                    client.wait_for_workers(2, timeout=30)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield address
    finally:
        stop_processes(procs)


def test_triage_on_existing_dask_scheduler(dask_cluster: str, sample_raw: Path,
                                           tmp_path: Path) -> None:
    local = tmp_path / "local"
    triage(sample_raw, local, "--batch-files", "3")
    remote = tmp_path / "remote"
    triage(sample_raw, remote, "--scheduler", dask_cluster, "--batch-files", "3")
    assert export_jsonl(remote) == export_jsonl(local)
    entries = ledger_entries(remote)
    started = next(e for e in entries if e["action"] == "analysis.started")["details"]
    assert started["cluster"]["scheduler"] == dask_cluster
    assert started["cluster"]["workers"] == 2
    pids = {e["details"]["worker"]["pid"] for e in entries if e["action"] == "batch.analysed"}
    assert len(pids) == 2, "both workers analysed batches"
    exhibit("ledger", "verify", remote)


def test_ctrl_c_finishes_batches_in_flight_and_stops_cleanly(
        many_files_image: Path, reference_export: tuple[list[dict], int], tmp_path: Path) -> None:
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it."""
    expected, total = reference_export
    case = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "pipeline.cli", "triage", str(many_files_image), "--case",
           str(case), "--workers", "2", "--no-progress", "--batch-files", "20"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, text=True)
    deadline = time.monotonic() + 120
    while _batches_done(case) < 3:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "resume" in err
    entries = ledger_entries(case)
    assert entries[-1]["action"] == "triage.interrupted"
    done = [e for e in entries if e["action"] == "batch.analysed"]
    assert 3 <= len(done) < total
    assert not [e for e in entries if e["action"] == "batch.analysed"
                and e["details"]["errors"]], "batches in flight finished, not failed"
    exhibit("ledger", "verify", case)
    triage(many_files_image, case, "--batch-files", "20")
    assert export_jsonl(case) == expected


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a case directory on a disk that fills up."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_stops_clearly_and_leaves_a_sound_case(
        many_files_image: Path, reference_export: tuple[list[dict], int], small_disk: Path,
        tmp_path: Path) -> None:
    import shutil
    import sqlite3

    expected, _ = reference_export
    case = small_disk / "case"
    proc = triage(many_files_image, case, "--batch-files", "20", check=False)
    assert proc.returncode == 5, proc.stderr
    assert "no space left" in proc.stderr and "Traceback" not in proc.stderr
    conn = sqlite3.connect(case / "case.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # Full after the walk, in the analysis, which leaves the results' hash indexes out
    # until it ends: the case opens and verifies on the full disk without them.
    assert conn.execute("SELECT COUNT(*) FROM files").fetchone()[0] > 0
    conn.close()
    exhibit("ledger", "verify", case)
    moved = tmp_path / "moved"
    shutil.copytree(case, moved)
    triage(many_files_image, moved, "--batch-files", "20")
    assert export_jsonl(moved) == expected


def test_first_batches_start_while_the_walk_runs(
        many_files_image: Path, reference_export: tuple[list[dict], int], tmp_path: Path) -> None:
    """With the cluster up before the walk ends (here: before it starts), the plan's
    first batches are sent as the walk stores their files, and taken as planned:
    the export is the ordinary run's. A result sent early for a task the plan does not
    give is cancelled, never taken."""
    from fuzz.harness import product_analyzers

    from ingest.image import open_image
    from pipeline.case.database import CaseDatabase
    from pipeline.run.cluster import BatchRunner
    from pipeline.run.triage import Triage, TriageOptions
    from pipeline.run.worker import BatchTask

    expected, _ = reference_export
    case = tmp_path / "quick"
    # The CLI's analyzers, not test-only ones another test registered in this process.
    options = TriageOptions([many_files_image], case, workers=2, batch_files=20,
                            analyzers=product_analyzers(), progress=False)
    with BatchRunner(2) as runner:
        Triage(options, runner=runner).run()
        entries = ledger_entries(case)
        actions = [e["action"] for e in entries]
        started = entries[actions.index("analysis.started")]["details"]
        # Past the two quick-start batches: those the walk decided (on --batch-files).
        sent = started["batches_sent_during_walk"]
        assert sent > 2 and runner.taken_early == sent and runner.prestarted == 0
        # The ledger's order stays the custody order: a batch is ledgered (cut during the
        # walk, or planned) before its results.
        ledgered: set[str] = set()
        for entry in entries:
            if entry["action"] == "batches.quick_start":
                ledgered |= {b["batch_id"] for b in entry["details"]["batches"]}
            elif entry["action"] == "batches.planned":
                ledgered = {"*"}
            elif entry["action"] == "batch.analysed":
                assert ledgered & {"*", entry["subject"]["batch_id"]}
        assert actions.index("batches.planned") < actions.index("analysis.started")
        assert export_jsonl(case) == expected
        exhibit("ledger", "verify", case)

        db = CaseDatabase(case / "case.sqlite")
        rows = db.conn.execute("SELECT * FROM files WHERE kind = 'file' ORDER BY id LIMIT 2"
                               ).fetchall()
        one, other = (BatchTask("probe-1", open_image([many_files_image]).spec, 0,
                                db.batch_items([r["id"]]), ("hashes",)) for r in rows)
        db.close()
        runner.prestart(one)
        finished = [out for group in runner.run([other], _Never()) for _, out in group]
        assert runner.taken_early == sent and runner.prestarted == 0  # "one" was not taken
        assert [r["file_id"] for r in finished[0]["records"]] == [rows[1]["id"]]


class _Never:
    def is_set(self) -> bool:
        return False


def test_a_resumed_walk_keeps_the_entries_committed_and_refuses_a_different_walk(
        many_files_image: Path, tmp_path: Path) -> None:
    """A walk interrupted after results of its first batches were stored (issue 18) is
    walked again, keeping the entries committed: the new walk must give them again, in
    order; where it does not, the run stops with an error entry and nothing changes."""
    from ingest.image import open_image
    from pipeline.case.store import Case
    from pipeline.run.progress import Reporter
    from pipeline.run.walk import WalkDiverged, walk_evidence

    case_dir = tmp_path / "case"
    triage(many_files_image, case_dir, "--batch-files", "20")
    case = Case(case_dir, "Test Examiner", create=False)
    try:
        db = case.db
        evidence_id = db.all_evidence()[0]["id"]
        before = [tuple(r) for r in db.conn.execute("SELECT * FROM files ORDER BY id")]
        volumes = [tuple(r) for r in db.conn.execute("SELECT * FROM volumes")]
        assert len(before) > 1200 and db.batches(evidence_id)

        def interrupted() -> None:
            with db.atomic():
                db.conn.execute("UPDATE evidence SET walk_complete = 0")
                db.conn.execute("DELETE FROM volumes")

        interrupted()
        walk_evidence(case, open_image([many_files_image]), evidence_id, Reporter(False))
        assert [tuple(r) for r in db.conn.execute("SELECT * FROM files ORDER BY id")] == before
        assert [tuple(r) for r in db.conn.execute("SELECT * FROM volumes")] == volumes
        assert db.evidence(evidence_id)["walk_complete"] == 1

        interrupted()
        middle = before[len(before) // 2][0]
        db.conn.execute("UPDATE files SET entry_key = entry_key || '~' WHERE id = ?", (middle,))
        with pytest.raises(WalkDiverged, match="interrupted walk stored"):
            walk_evidence(case, open_image([many_files_image]), evidence_id, Reporter(False))
        assert db.conn.execute("SELECT count(*) FROM files").fetchone()[0] == len(before)
        assert db.evidence(evidence_id)["walk_complete"] == 0
        db.conn.execute("UPDATE files SET entry_key = rtrim(entry_key, '~') WHERE id = ?",
                        (middle,))  # the test's change undone: the case verifies again
    finally:
        case.close()
    last = ledger_entries(case_dir)[-1]
    assert last["action"] == "error" and last["details"]["error"] == "WalkDiverged"
    exhibit("ledger", "verify", case_dir)
