"""Run fuzz cases through ``triage`` and check what must hold after each one.

Two paths, both the real code: ``run_inprocess`` drives ``pipeline.run.triage.Triage`` on one
long-lived local cluster (``BatchRunner``, the same settings ``triage`` uses), so a case
costs a walk and a few tasks rather than a cluster start; ``run_cli`` runs
``exhibit triage`` in a subprocess with its own cluster, exactly as an examiner does.

After every case: the exit is success or a documented failure (pipeline/cli/common.py) and
never a Python traceback; the ledger verifies; every regular file the walk found has a
row in ``results`` or ``errors`` (else it is *lost*); no process is left behind (each CLI
run carries a token in its environment, inherited by every process it starts, and no
process may still carry it afterwards).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]
EXAMINER = "Fuzz Examiner"
DOCUMENTED_EXITS = {0: "ok", 1: "mismatch", 3: "evidence unreadable", 6: "nothing examined"}
TOKEN_VAR = "EXHIBIT_FUZZ_TOKEN"


@dataclass
class CaseOutcome:
    label: str
    mode: str  # inprocess | cli
    status: str = "ok"  # ok | documented | uncaught | hung
    exit_code: int | None = 0
    files: int = 0
    results: int = 0
    lost: int = 0
    crashed: int = 0
    timed_out: int = 0
    read_errors: int = 0
    walk_notes: int = 0
    recovered: int = 0
    baseline: int = 0  # files analysed on the unmutated image
    ledger_ok: bool = True
    leftovers: int = 0
    seconds: float = 0.0
    detail: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def ensure_examiner_key() -> None:
    """A private config home with a signing key, unless the caller set one up."""
    if os.environ.get("EXHIBIT_EXAMINER") and os.environ.get("XDG_CONFIG_HOME"):
        return
    from chain_of_custody.keys import KeyStore

    home = Path(tempfile.mkdtemp(prefix="exhibit-fuzz-config-"))
    os.environ["XDG_CONFIG_HOME"] = str(home)
    os.environ["EXHIBIT_EXAMINER"] = EXAMINER
    os.environ.pop("EXHIBIT_KEY_PASSPHRASE", None)
    KeyStore(home / "exhibit").create(EXAMINER, agency="Fuzz Lab", badge_id="F-1")


class _CaseTimeout(Exception):
    pass


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """A hung in-process case ends in ``_CaseTimeout`` (the main thread's SIGALRM)."""
    def fire(signum: int, frame: Any) -> None:
        raise _CaseTimeout

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def inspect_case(case_dir: Path, outcome: CaseOutcome,
                 baseline: set[tuple[str, str]] | None) -> None:
    """Fill the counts from the case database and check the invariants."""
    db_path = case_dir / "case.sqlite"
    if not db_path.exists():
        return
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        outcome.files = one("SELECT COUNT(*) FROM files WHERE kind = 'file'")
        outcome.results = one("SELECT COUNT(*) FROM results WHERE file_id NOT IN"
                              " (SELECT file_id FROM carve_ranges)")  # carving's own records
        outcome.lost = one(
            "SELECT COUNT(*) FROM files f WHERE kind = 'file'"
            " AND NOT EXISTS (SELECT 1 FROM results r"  # a shadow copy's shared entry:
            "  WHERE r.file_id = coalesce(f.same_as, f.id))"  # its live twin's result
            " AND NOT EXISTS (SELECT 1 FROM errors e"
            "  WHERE e.file_id = coalesce(f.same_as, f.id))")
        outcome.crashed = one(
            "SELECT COUNT(*) FROM errors WHERE error IN ('crashed', 'WalkCrashed')")
        outcome.timed_out = one("SELECT COUNT(*) FROM errors WHERE error IN"
                                " ('timed out', 'AnalysisTimeout', 'WalkStalled')")
        outcome.read_errors = one("SELECT COUNT(*) FROM errors WHERE stage = 'read'")
        outcome.walk_notes = one("SELECT COUNT(*) FROM errors WHERE stage = 'walk'")
        if baseline:
            found = set(conn.execute(
                "SELECT f.path, r.sha256 FROM files f JOIN results r ON r.file_id = f.id"
                " WHERE r.sha256 IS NOT NULL"))
            outcome.recovered = len(baseline & found)
    finally:
        conn.close()
    if outcome.lost:
        outcome.problems.append(f"{outcome.lost} walked files have neither results nor errors")


def baseline_of(case_dir: Path) -> set[tuple[str, str]]:
    """(path, sha256) of every analysed file of a clean run: what a mutation may cost."""
    conn = sqlite3.connect(f"file:{case_dir / 'case.sqlite'}?mode=ro", uri=True)
    try:
        return set(conn.execute(
            "SELECT f.path, r.sha256 FROM files f JOIN results r ON r.file_id = f.id"
            " WHERE r.sha256 IS NOT NULL"))
    finally:
        conn.close()


def product_analyzers() -> list[str]:
    """exhibit's own analyzers: test-only ones another test registered in this process
    (``tests/fault_analyzers.py``) are not known to the shared cluster's workers."""
    from analyzers import registry

    return [name for name, cls in registry.registered().items()
            if cls.__module__.startswith("analyzers.")]


def leftover_processes(token: str) -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(TOKEN_VAR) == token:
                out.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return out


class FuzzHarness:
    """One local cluster for many in-process cases; CLI cases start their own."""

    def __init__(self, workdir: Path, *, workers: int = 2, file_timeout: float = 10.0,
                 task_timeout: float = 120.0, worker_memory: str = "1GiB",
                 case_timeout: float = 600.0, walk_timeout: float = 10.0) -> None:
        self.workdir = workdir
        self.workers = workers
        self.file_timeout = file_timeout
        self.task_timeout = task_timeout
        self.worker_memory = worker_memory
        self.case_timeout = case_timeout
        self.walk_timeout = walk_timeout
        self.runner: Any = None

    def __enter__(self) -> FuzzHarness:
        ensure_examiner_key()
        from pipeline.run.cluster import BatchRunner

        self.runner = BatchRunner(self.workers, worker_memory=self.worker_memory,
                                  file_timeout=self.file_timeout,
                                  task_timeout=self.task_timeout)
        self.runner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None:
            self.runner.__exit__(*exc)
            self.runner = None

    def run_inprocess(self, image: Path, case_dir: Path, label: str,
                      baseline: set[tuple[str, str]] | None = None) -> CaseOutcome:
        from ingest.errors import IngestError
        from pipeline.case.custody import verify_case
        from pipeline.run.acquisition import HashMismatchError
        from pipeline.run.triage import Triage, TriageOptions

        outcome = CaseOutcome(label, "inprocess")
        options = TriageOptions(images=[image], case_dir=case_dir, progress=False,
                                analyzers=product_analyzers(),
                                batch_files=16, file_timeout=self.file_timeout,
                                task_timeout=self.task_timeout, walk_timeout=self.walk_timeout)
        started = time.monotonic()
        try:
            with _alarm(self.case_timeout):
                result = Triage(options, runner=self.runner).run()
            if result.nothing_examined is not None:  # the CLI's exit 6
                outcome.status, outcome.exit_code = "documented", 6
                outcome.detail = result.nothing_examined["statement"]
        except _CaseTimeout:
            outcome.status, outcome.exit_code = "hung", None
            outcome.problems.append(f"run exceeded {self.case_timeout} s")
        except IngestError as exc:  # the CLI's exit 3
            outcome.status, outcome.exit_code, outcome.detail = "documented", 3, str(exc)
        except HashMismatchError as exc:  # exit 1; not expected without stated hashes
            outcome.status, outcome.exit_code, outcome.detail = "documented", 1, str(exc)
        except Exception as exc:  # would reach the examiner as a traceback
            import traceback

            outcome.status, outcome.exit_code = "uncaught", None
            outcome.detail = "".join(traceback.format_exception(exc))
            outcome.problems.append(f"uncaught {type(exc).__name__}: {exc}")
        outcome.seconds = time.monotonic() - started
        if (case_dir / "ledger.jsonl").exists():
            verdict = verify_case(case_dir)
            outcome.ledger_ok = verdict.ok
            if not verdict.ok:
                outcome.problems.append(f"ledger verify failed: {verdict.failure}")
        inspect_case(case_dir, outcome, baseline)
        return outcome

    def run_cli(self, image: Path, case_dir: Path, label: str,
                baseline: set[tuple[str, str]] | None = None) -> CaseOutcome:
        outcome = CaseOutcome(label, "cli")
        token = uuid.uuid4().hex
        env = dict(os.environ, COLUMNS="120", **{TOKEN_VAR: token})
        cmd = [sys.executable, "-m", "pipeline.cli", "triage", str(image), "--case",
               str(case_dir), "--no-progress", "--workers", "1", "--batch-files", "16",
               "--file-timeout", str(self.file_timeout), "--task-timeout",
               str(self.task_timeout), "--worker-memory", self.worker_memory,
               "--walk-timeout", str(self.walk_timeout)]
        started = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env,
                                  timeout=self.case_timeout)
            outcome.exit_code = proc.returncode
            stderr = proc.stderr
        except subprocess.TimeoutExpired as exc:
            outcome.status, outcome.exit_code = "hung", None
            outcome.problems.append(f"exhibit triage exceeded {self.case_timeout} s")
            stderr = (exc.stderr or b"").decode("utf-8", "replace") if isinstance(
                exc.stderr, bytes) else (exc.stderr or "")
        outcome.seconds = time.monotonic() - started
        if outcome.exit_code is not None:
            if outcome.exit_code not in DOCUMENTED_EXITS:
                outcome.status = "uncaught"
                outcome.problems.append(f"exit status {outcome.exit_code}")
            elif outcome.exit_code:
                outcome.status = "documented"
        if "Traceback (most recent call last)" in stderr:
            outcome.status = "uncaught"
            outcome.problems.append("a Python traceback reached the examiner")
        outcome.detail = stderr[-2000:]
        deadline = time.monotonic() + 20.0  # the cluster's processes wind down
        while (left := leftover_processes(token)) and time.monotonic() < deadline:
            time.sleep(0.5)
        if left:
            outcome.leftovers = len(left)
            outcome.problems.append(f"{len(left)} processes left behind: "
                                    f"{[p.pid for p in left]}")
            for proc in left:
                proc.kill()
        if (case_dir / "ledger.jsonl").exists():
            verify = subprocess.run([sys.executable, "-m", "pipeline.cli", "ledger", "verify",
                                     "-q", str(case_dir)], cwd=REPO, capture_output=True,
                                    text=True, env=env, timeout=300)
            outcome.ledger_ok = verify.returncode == 0
            if not outcome.ledger_ok:
                outcome.problems.append(f"exhibit ledger verify: {verify.stdout.strip()}"
                                        f" {verify.stderr.strip()}")
        inspect_case(case_dir, outcome, baseline)
        return outcome


def media_image(cases: list[Any], directory: Path, name: str) -> Path:
    """Pack media cases as files into one ext4 image (one triage run covers them all)."""
    src = directory / f"{name}-src"
    src.mkdir(parents=True)
    total = 0
    for case in cases:
        (src / case.name).write_bytes(case.data)
        total += len(case.data)
    image = directory / f"{name}.img"
    size_kib = max(4096, (total * 2) // 1024 + 2048)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(src), str(image),
                    f"{size_kib}K"], check=True, capture_output=True,
                   env=dict(os.environ, E2FSPROGS_FAKE_TIME="1733011200"))
    image.chmod(0o444)
    for path in src.iterdir():
        path.unlink()
    src.rmdir()
    return image
