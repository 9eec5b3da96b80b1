"""Crashes and concurrency: a ledger is never silently damaged, forked or repaired.

* SIGKILL a writer at random moments, many times: afterwards the ledger verifies, or it
  ends in exactly one torn line and everything before it verifies; no acknowledged
  entry is ever lost.
* Power loss (the unsynced tail of the file gone, at any byte): exactly one torn final
  line is reported, the writer refuses to append, and the file is left as it was.
* Several processes appending through ``Case.record`` (ledger + database head) and the
  real CLI at once: the chain stays linear and ``exhibit ledger verify`` passes.
* A second ``triage`` on a case another triage is running refuses, saying so.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pipeline_helpers import REPO, exhibit, ledger_entries, triage

from chain_of_custody.errors import TornLedgerError
from chain_of_custody.keys import Signer
from chain_of_custody.ledger import CustodyLedger, lock_path, read_entries
from chain_of_custody.verify import verify_ledger

KEY_BYTES = bytes(range(100, 132))
SIGNER = Signer(Ed25519PrivateKey.from_private_bytes(KEY_BYTES),
                {"examiner_id": "writer", "name": "Crash Writer"})
KEYS = {SIGNER.fingerprint: SIGNER.public_key}
KILLS = 40

# The writer: appends until killed, printing each seq once append() has returned
# (i.e. after the fsync), so the parent knows which entries were acknowledged.
WRITER = """
import sys
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from chain_of_custody.keys import Signer
from chain_of_custody.ledger import CustodyLedger, lock_path, read_entries
signer = Signer(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(sys.argv[2])),
                {"examiner_id": "writer", "name": "Crash Writer"})
ledger = CustodyLedger(Path(sys.argv[1]), signer, {"name": "crash-test", "version": "1"})
print("ready", flush=True)
i = 0
while True:
    entry = ledger.append("batch.analysed", None, {"i": i, "pad": "x" * (i % 700)})
    print(entry["seq"], flush=True)
    i += 1
"""


def test_sigkill_at_random_points_never_loses_or_silently_damages(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    rng = random.Random(11)
    acknowledged = 0
    torn = intact = 0
    for _ in range(KILLS):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), KEY_BYTES.hex()],
                                cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        seqs = [int(s) for s in out.split()]
        acknowledged = max([acknowledged, *seqs])
        report = verify_ledger(path, keys=KEYS)
        if report.ok:
            intact += 1
            assert report.entries >= acknowledged, "an acknowledged entry was lost"
        else:
            torn += 1
            assert "torn final line" in (report.reason or ""), report.reason
            assert report.first_bad_seq == report.entries + 1
            assert report.entries >= acknowledged
            with pytest.raises(TornLedgerError):
                CustodyLedger(path, SIGNER, {"name": "t", "version": "1"})
            return  # a torn ledger is left for a person to examine; nothing more to add
    assert intact == KILLS and torn == 0
    assert acknowledged > KILLS, "the kills should land while entries are being written"
    print(f"\ncrash test: {KILLS} SIGKILLs, {acknowledged} acknowledged entries, all intact")


def _written_ledger(path: Path, count: int) -> tuple[CustodyLedger, bytes, int]:
    """A ledger of ``count`` entries: the ledger, its bytes, where its last line starts."""
    ledger = CustodyLedger(path, SIGNER, {"name": "t", "version": "1"})
    for i in range(count):
        ledger.append("batch.analysed", None, {"i": i})
    data = path.read_bytes()
    return ledger, data, data.rindex(b"\n", 0, len(data) - 1) + 1


def test_power_loss_at_any_byte_reports_exactly_one_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger, data, last_start = _written_ledger(path, 6)
    cuts = range(last_start + 1, len(data))  # every cut inside the final line
    for cut in cuts:
        path.write_bytes(data[:cut])
        report = verify_ledger(path, keys=KEYS)
        assert not report.ok and report.entries == 5 and report.first_bad_seq == 6
        assert "torn final line" in (report.reason or "")
        with pytest.raises(TornLedgerError):
            ledger.append("error")
        assert path.read_bytes() == data[:cut], "never repaired"
    print(f"\npower-loss test: {len(cuts)} cut points, each one torn final line")


def test_readers_wait_for_an_append_in_progress(tmp_path: Path) -> None:
    """A reader meeting a line still being written (lock held) waits instead of calling
    the ledger torn, and reads exactly the entries that were complete."""
    import fcntl
    import threading

    path = tmp_path / "ledger.jsonl"
    _, whole, last_start = _written_ledger(path, 3)
    path.write_bytes(whole[:last_start])
    lock_fd = os.open(lock_path(path), os.O_RDWR)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)  # a writer, half-way through its line
    with path.open("ab") as out:
        out.write(whole[last_start : last_start + 40])
    seen: dict[str, Any] = {}

    def read() -> None:
        try:
            seen["entries"] = list(read_entries(path))
            seen["head"] = CustodyLedger(path, SIGNER, {"name": "t", "version": "1"}).head
        except Exception as exc:
            seen["error"] = exc

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(0.5)
    assert reader.is_alive(), "the reader waits while the line is being written"
    with path.open("ab") as out:
        out.write(whole[last_start + 40 :])
    os.close(lock_fd)  # the append is complete
    reader.join(10)
    assert "error" not in seen, seen.get("error")
    assert [e["details"]["i"] for e in seen["entries"]] == [0, 1, 2]
    assert seen["head"][0] == 3


def _record_many(case_dir: str, config_home: str, worker: int, count: int) -> None:
    os.environ["XDG_CONFIG_HOME"] = config_home
    from pipeline.case.store import Case

    for i in range(count):  # a fresh open each time: opening checks the head too
        case = Case(Path(case_dir), "Test Examiner", create=False)
        try:
            case.record("custody.note", None, {"worker": worker, "i": i})
        finally:
            case.close()


def test_concurrent_writers_keep_one_linear_chain(tmp_path: Path) -> None:
    case = tmp_path / "case"
    from pipeline.case.store import Case

    Case(case).close()  # create it (signed case.created)
    config_home = os.environ["XDG_CONFIG_HOME"]
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_record_many, args=(str(case), config_home, w, 60))
               for w in range(4)]
    for process in workers:
        process.start()
    with ThreadPoolExecutor(4) as pool:  # and the real CLI at the same time
        results = list(pool.map(lambda n: exhibit("custody", "note", case, "--text",
                                                  f"note {n}"), range(4)))
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0
    assert all(r.returncode == 0 for r in results)
    entries = ledger_entries(case)
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    for worker in range(4):
        mine = [e["details"]["i"] for e in entries if e["details"].get("worker") == worker]
        assert mine == list(range(60))
    assert sum(1 for e in entries if e["details"].get("text", "").startswith("note ")) == 4
    result = exhibit("ledger", "verify", case)
    assert result.stdout.splitlines()[0] == f"OK: {len(entries)} entries"


def test_a_second_triage_on_a_running_case_says_so(sample_raw: Path, tmp_path: Path) -> None:
    case = tmp_path / "case"
    env = dict(os.environ, COLUMNS="120")
    first = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "triage", str(sample_raw), "--case", str(case),
         "--workers", "1", "--no-progress"], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ((case / "run.lock").exists() and (case / "run.lock").read_text()):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    second = triage(sample_raw, case, check=False)
    assert second.returncode == 4, second.stderr
    assert "another exhibit run is processing this case (triage pid" in second.stderr
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert triage(sample_raw, case).returncode == 0, "free again once the first has finished"
    exhibit("ledger", "verify", case)


def test_triage_refuses_without_a_key_and_says_how(sample_raw: Path, tmp_path: Path) -> None:
    empty = {"XDG_CONFIG_HOME": str(tmp_path / "empty"), "EXHIBIT_EXAMINER": ""}
    result = exhibit("triage", sample_raw, "--case", tmp_path / "case", "--no-progress",
                     env=empty, check=False)
    assert result.returncode == 2
    assert "exhibit examiner init --name" in result.stderr and "--create-key" in result.stderr
    assert not (tmp_path / "case").exists(), "nothing written before the refusal"
    for command in (["custody", "note", tmp_path / "case", "--text", "x"],
                    ["evidence", "verify", tmp_path / "case"]):
        assert exhibit(*command, env=empty, check=False).returncode == 2


def test_encrypted_key_needs_its_passphrase(tmp_path: Path) -> None:
    home = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "EXHIBIT_EXAMINER": "",
            "EXHIBIT_KEY_PASSPHRASE": "correct horse"}
    exhibit("examiner", "init", "--name", "Ann Lee", "--agency", "Unit 5", env=home)
    key = tmp_path / "cfg" / "exhibit" / "examiners" / "ann-lee.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    case = tmp_path / "case"
    wrong: dict[str, Any] = dict(home, EXHIBIT_KEY_PASSPHRASE="wrong")
    result = exhibit("evidence", "register", case, "/nonexistent", "--exhibit-number", "1",
                     "--description", "d", env=wrong, check=False)
    assert result.returncode == 2 and "wrong or missing passphrase" in result.stderr
    result = exhibit("examiner", "init", "--name", "Ann Lee", env=home, check=False)
    assert result.returncode == 2 and "never overwritten" in result.stderr
