"""The tamper suite: every way of changing a real case's record is caught, and named.

One real case (the sample image triaged in small batches, an exhibit registered, a
hand-over signed by two examiners, an export) is tampered with entry by entry:

* flip a byte (a seeded sample of positions in every line, plus its first byte, its
  last byte and its newline),
* delete the entry, duplicate it, swap it with its neighbour,
* re-sign it with a key the case does not know (alone, and as a forger who rewrites the
  chain from there on with that key),
* and, for every ``batch.analysed`` entry, edit one finding in the database.

Each must be detected by what ``exhibit ledger verify`` runs (:func:`verify_case`) and
by the standalone verifier (``chain_of_custody.verify`` on the ``.jsonl`` with the
case's keys, and on the JSON export), naming the entry. A sample of every kind also goes
through both real command lines. The counts are written to the test log.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import sha256_file
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pipeline_helpers import REPO, exhibit, ledger_entries, triage

from chain_of_custody.canonical import canonical_bytes
from chain_of_custody.entry import entry_hash, signed_bytes
from chain_of_custody.keys import Signer
from chain_of_custody.verify import keys_from_dir, verify_export, verify_ledger
from pipeline.case.custody import verify_case

FLIPS_PER_ENTRY = 10  # sampled positions per line, besides first, last and newline
HIGH_BIT_FLIPS = 3  # of those, also with the high bit flipped (mostly invalid UTF-8)
FOREIGN = Signer(Ed25519PrivateKey.from_private_bytes(b"\x07" * 32),
                 {"examiner_id": "mallory", "name": "Mallory"})
COUNTS: Counter[str] = Counter()


@pytest.fixture(scope="module")
def real_case(sample_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A case with every kind of entry, its pristine bytes and its JSON export."""
    root = tmp_path_factory.mktemp("tamper")
    case = root / "case"
    exhibit("evidence", "register", case, sample_raw, "--exhibit-number", "EX-7",
            "--description", "SD card from the camera", "--seal", "S-1",
            "--authority", "warrant 17/2026", "--location", "locker 3")
    other = root / "other-config"
    other.mkdir()
    second = {"XDG_CONFIG_HOME": str(other), "EXHIBIT_EXAMINER": "second"}
    exhibit("examiner", "init", "--name", "Second Examiner", "--id", "second", env=second)
    exhibit("custody", "transfer", case, "--exhibit-number", "EX-7", "--to", "second",
            "--purpose", "imaging")
    exhibit("custody", "receive", case, "--exhibit-number", "EX-7", "--note", "seal intact",
            env=second)
    triage(sample_raw, case, "--batch-files", "6")
    exhibit("custody", "note", case, "--text", "analysis reviewed", env=second)
    export = root / "ledger.json"
    exhibit("ledger", "export", case, "--format", "json", "-o", export)
    lines = (case / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    document = json.loads(export.read_text(encoding="utf-8"))
    assert verify_case(case).ok and verify_export(document).ok
    keys, problems = keys_from_dir(case / "keys")
    assert len(keys) == 2 and not problems
    return {"case": case, "root": root, "lines": lines, "export": export,
            "document": document, "keys": keys, "entries": ledger_entries(case)}


class Scratch:
    """A copy of the case to damage; :meth:`check` runs every verifier on it."""

    def __init__(self, real: dict[str, Any], name: str) -> None:
        self.real = real
        self.dir = real["root"] / name
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.copytree(real["case"], self.dir, ignore=shutil.ignore_patterns("thumbnails"))
        self.ledger = self.dir / "ledger.jsonl"
        head = sqlite3.connect(self.dir / "case.sqlite").execute(
            "SELECT value FROM case_info WHERE key = 'ledger_head'").fetchone()[0]
        seq, digest = head.split(":")
        self.head = (int(seq), digest)

    def write(self, lines: list[bytes]) -> None:
        self.ledger.write_bytes(b"".join(lines))

    def check(self, kind: str, seq: int, phrase: str | None = None) -> None:
        """``ledger verify`` and the standalone verifier on the .jsonl fail at ``seq``."""
        result = verify_case(self.dir)
        assert not result.ok, (kind, seq)
        assert result.failure_seq == seq, (kind, seq, result.failure)
        if phrase:
            assert phrase in (result.failure or ""), (kind, seq, result.failure)
        report = verify_ledger(self.ledger, self.head, self.real["keys"])
        assert not report.ok and report.first_bad_seq == seq, (kind, seq, report.reason)
        COUNTS[f"{kind}: ledger verify"] += 1
        COUNTS[f"{kind}: standalone .jsonl"] += 1

    def check_export(self, kind: str, entries: list[Any], seq: int,
                     phrase: str | None = None) -> None:
        """The standalone verifier on the JSON export with ``entries`` fails at ``seq``."""
        report = verify_export(dict(self.real["document"], entries=entries))
        assert not report.ok and report.first_bad_seq == seq, (kind, seq, report.reason)
        if phrase:
            assert phrase in (report.reason or ""), (kind, seq, report.reason)
        COUNTS[f"{kind}: standalone export"] += 1


def _parsed(line: bytes) -> Any:
    try:
        return json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def test_every_byte_flip_is_detected(real_case: dict[str, Any]) -> None:
    lines: list[bytes] = real_case["lines"]
    entries = real_case["document"]["entries"]  # the export ends before its own entry
    scratch = Scratch(real_case, "flips")
    rng = random.Random(3)
    for index, line in enumerate(lines):
        seq = index + 1
        sampled = rng.sample(range(len(line) - 1), min(FLIPS_PER_ENTRY, len(line) - 1))
        flips = [(p, 0x01) for p in sorted({0, len(line) - 2, len(line) - 1, *sampled})]
        flips += [(p, 0x80) for p in sampled[:HIGH_BIT_FLIPS]]
        for position, mask in flips:
            damaged = bytearray(line)
            damaged[position] ^= mask
            scratch.write([*lines[:index], bytes(damaged), *lines[index + 1:]])
            scratch.check("byte flipped", seq)
            parsed = _parsed(bytes(damaged))
            if index < len(entries) and isinstance(parsed, dict):
                scratch.check_export("byte flipped", [*entries[:index], parsed,
                                                      *entries[index + 1:]], seq)


def _moves(items: list[Any], index: int) -> dict[str, tuple[list[Any], int, str]]:
    """(damaged list, seq that must be named, phrase) for delete, duplicate and swap."""
    last, seq = len(items), index + 1
    other = index + 1 if seq < last else index - 1
    swapped = list(items)
    swapped[index], swapped[other] = swapped[other], swapped[index]
    return {
        "deleted": ([*items[:index], *items[index + 1:]], seq,
                    "entries removed from the end" if seq == last
                    else f"sequence gap: expected {seq}"),
        "duplicated": ([*items[:seq], items[index], *items[seq:]], seq + 1,
                       f"duplicate sequence number {seq}"),
        "swapped": (swapped, min(index, other) + 1, "out of order"),
    }


def test_deleted_duplicated_swapped_entries_are_detected(real_case: dict[str, Any]) -> None:
    lines: list[bytes] = real_case["lines"]
    entries = real_case["document"]["entries"]
    scratch = Scratch(real_case, "moves")
    for index in range(len(lines)):
        for kind, (damaged, seq, phrase) in _moves(lines, index).items():
            scratch.write(damaged)
            scratch.check(kind, seq, phrase)
    for index in range(len(entries)):
        for kind, (damaged, seq, phrase) in _moves(entries, index).items():
            scratch.check_export(kind, damaged, seq, phrase)


def _resign(entry: dict[str, Any], signer: Signer) -> dict[str, Any]:
    return dict(entry, key_fingerprint=signer.fingerprint,
                signature=signer.sign(signed_bytes(entry)))


def _line(entry: dict[str, Any]) -> bytes:
    return canonical_bytes(entry) + b"\n"


def test_entries_signed_by_a_foreign_key_are_detected(real_case: dict[str, Any]) -> None:
    lines: list[bytes] = real_case["lines"]
    entries = [json.loads(line) for line in lines]
    scratch = Scratch(real_case, "foreign")
    real_fps = sorted(real_case["keys"])
    for index, entry in enumerate(entries):
        seq = index + 1
        # Re-signed as it stands: the actor still names the real key.
        resigned = _resign(entry, FOREIGN)
        scratch.write([*lines[:index], _line(resigned), *lines[index + 1:]])
        scratch.check("re-signed by foreign key", seq, "re-signed by someone else")
        scratch.check_export("re-signed by foreign key",
                             [*entries[:index], resigned, *entries[index + 1:]], seq)
        # A forger who rewrites from here on, as Mallory, re-hashing and re-chaining.
        forged, prev = [], entry["prev_hash"]
        for later in entries[index:]:
            body = dict(later, prev_hash=prev,
                        actor=dict(later["actor"], key_fingerprint=FOREIGN.fingerprint))
            body["hash"] = entry_hash(body)
            forged.append(_resign(body, FOREIGN))
            prev = body["hash"]
        scratch.write([*lines[:index], *map(_line, forged)])
        scratch.check("chain rewritten with foreign key", seq, "signed by unknown key")
        scratch.check_export("chain rewritten with foreign key", [*entries[:index], *forged],
                             seq, "signed by unknown key")
        # Even with Mallory's key slipped into the export, pinning the real keys catches it.
        document = dict(real_case["document"], entries=[*entries[:index], *forged],
                        public_keys=[*real_case["document"]["public_keys"],
                                     FOREIGN.public_record()])
        assert verify_export(document, trusted=real_fps).first_bad_seq == seq
        COUNTS["chain rewritten, forger's key added to export: standalone --trust"] += 1


FINDING_EDITS: dict[str, Callable[[sqlite3.Connection, int], None]] = {
    "results column edited": lambda db, fid: db.execute(
        "UPDATE results SET sha256 = ? WHERE file_id = ?", ("0" * 64, fid)),
    "signed record edited": lambda db, fid: db.execute(  # a carve range has no md5: its bytes
        "UPDATE results SET record = CASE WHEN instr(record, '\"md5\":\"') > 0 THEN"
        " replace(record, '\"md5\":\"', '\"md5\":\"0') ELSE"
        " replace(record, '\"bytes\":', '\"bytes\":1') END WHERE file_id = ?", (fid,)),
    "record and column edited together": lambda db, fid: db.execute(
        "UPDATE results SET record = json_set(record, '$.findings.filetype.mime', 'text/x'),"
        " mime = 'text/x' WHERE file_id = ?", (fid,)),
    "file path edited": lambda db, fid: db.execute(
        "UPDATE files SET path = '/innocent.txt' WHERE id = ?", (fid,)),
    "finding deleted": lambda db, fid: db.execute(
        "DELETE FROM results WHERE file_id = ?", (fid,)),
}


def test_every_batch_detects_an_edited_finding(real_case: dict[str, Any]) -> None:
    batches = [e for e in real_case["entries"] if e["action"] == "batch.analysed"]
    assert len(batches) >= 3, "the fixture should give several batch entries"
    for entry in batches:
        seq, batch_id = entry["seq"], entry["subject"]["batch_id"]
        for kind, edit in FINDING_EDITS.items():
            scratch = Scratch(real_case, "finding")
            db = sqlite3.connect(scratch.dir / "case.sqlite")
            file_id = db.execute("SELECT file_id FROM results WHERE batch_id = ? ORDER BY"
                                 " leaf_index DESC LIMIT 1", (batch_id,)).fetchone()[0]
            with db:
                edit(db, file_id)
            db.close()
            result = verify_case(scratch.dir)
            assert not result.ok and result.failure_seq == seq, (kind, seq, result.failure)
            assert batch_id in (result.failure or "")
            COUNTS[f"finding in database ({kind}): ledger verify"] += 1


def test_a_proof_from_an_edited_database_fails_the_standalone_verifier(
    real_case: dict[str, Any], tmp_path: Path,
) -> None:
    case, export = real_case["case"], real_case["export"]
    batches = [e for e in real_case["entries"] if e["action"] == "batch.analysed"]
    for entry in batches:
        scratch = Scratch(real_case, "proof")
        db = sqlite3.connect(scratch.dir / "case.sqlite")
        file_id, path = db.execute(
            "SELECT r.file_id, f.path FROM results r JOIN files f ON f.id = r.file_id"
            " WHERE r.batch_id = ? ORDER BY r.leaf_index LIMIT 1",
            (entry["subject"]["batch_id"],)).fetchone()
        proof = tmp_path / f"proof-{entry['seq']}.json"
        good = exhibit("ledger", "prove", case, "--path", path, "-o", proof)
        assert "1 proof(s) written" in good.stdout
        ok = _standalone(export, "--proof", proof)
        assert ok.returncode == 0 and f"covered by entry {entry['seq']}" in ok.stdout
        with db:
            db.execute("UPDATE results SET record = json_set(record, '$.findings.hashes.sha256',"
                       " ?) WHERE file_id = ?", ("f" * 64, file_id))
        db.close()
        bad = exhibit("ledger", "prove", scratch.dir, "--path", path, "-o", proof, check=False)
        assert bad.returncode == 1 and f"NOT covered by ledger entry {entry['seq']}" in bad.stderr
        result = _standalone(export, "--proof", proof)
        assert result.returncode == 1
        assert result.stdout.splitlines()[-1].startswith(f"FAILED at entry {entry['seq']}:")
        COUNTS["finding in database: proof checked by standalone CLI"] += 1


def test_a_committed_but_unsigned_batch_is_pending_not_tampering(
    real_case: dict[str, Any],
) -> None:
    """What a SIGKILL between a batch's commit and its entry leaves: said, not failed."""
    scratch = Scratch(real_case, "pending")
    with sqlite3.connect(scratch.dir / "case.sqlite") as db:
        row = db.execute("SELECT evidence_id, volume_offset FROM batches LIMIT 1").fetchone()
        db.execute("INSERT INTO batches (id, evidence_id, volume_offset, file_ids, bytes,"
                   " status) VALUES ('killed-000099', ?, ?, '[]', 0, 'done')", row)
    result = verify_case(scratch.dir)
    assert result.ok and result.pending == 1
    out = exhibit("ledger", "verify", scratch.dir).stdout
    assert out.splitlines()[0].endswith("(1 analysed batches not yet in the ledger: re-run"
                                        " triage)")
    assert "PENDING" in out


def _standalone(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chain_of_custody.verify", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def test_both_command_lines_name_the_entry(real_case: dict[str, Any]) -> None:
    """Every kind of damage, at the first, a middle and the last entry, through both CLIs."""
    lines: list[bytes] = real_case["lines"]
    last = len(lines)
    for index in (0, last // 2, last - 1):
        seq = index + 1
        flipped = bytearray(lines[index])
        flipped[len(flipped) // 2] ^= 0x01
        other = index + 1 if seq < last else index - 1
        swapped = list(lines)
        swapped[index], swapped[other] = swapped[other], swapped[index]
        entry = json.loads(lines[index])
        damages = {
            "byte flipped": ([*lines[:index], bytes(flipped), *lines[index + 1:]], seq),
            "deleted": (lines[:index] + lines[index + 1:], seq),
            "duplicated": ([*lines[:seq], lines[index], *lines[seq:]], seq + 1),
            "swapped": (swapped, min(index, other) + 1),
            "re-signed": ([*lines[:index], _line(_resign(entry, FOREIGN)),
                           *lines[index + 1:]], seq),
        }
        for kind, (damaged, bad_seq) in damages.items():
            scratch = Scratch(real_case, "cli")
            scratch.write(damaged)
            result = exhibit("ledger", "verify", scratch.dir, check=False)
            assert result.returncode == 1, (kind, seq, result.stdout)
            assert result.stdout.splitlines()[0].startswith(f"FAILED at entry {bad_seq}:")
            head = f"{scratch.head[0]}:{scratch.head[1]}"
            result = _standalone(scratch.ledger, "--expect-head", head, "-q")
            assert result.returncode == 1, (kind, seq, result.stdout)
            assert result.stdout.startswith(f"FAILED at entry {bad_seq}:"), (kind, result.stdout)
            COUNTS[f"{kind}: both CLIs"] += 1


def test_the_untouched_case_still_verifies_and_counts_are_reported(
    real_case: dict[str, Any],
) -> None:
    """Runs last: the pristine case verifies through both CLIs; the counts are logged."""
    result = exhibit("ledger", "verify", real_case["case"])
    assert result.stdout.splitlines()[0] == f"OK: {len(real_case['lines'])} entries"
    result = _standalone(real_case["export"])
    assert result.returncode == 0, result.stdout
    digest = sha256_file(real_case["export"])
    summary = {"entries": len(real_case["lines"]), "export_sha256": digest, **COUNTS}
    print("\ntamper suite:", json.dumps(summary, indent=1))
    (real_case["root"] / "tamper-counts.json").write_text(json.dumps(summary, indent=1))


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs to fill, then remount read-only: write-protected media (an archive, a
    write blocker)."""
    mount = tmp_path / "archive"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_an_archived_case_verifies_on_read_only_media(real_case: dict[str, Any],
                                                      read_only_mount: Path) -> None:
    """``ledger verify`` on a case kept on read-only media checks its findings there too
    (SQLite's log would need a shared-memory file beside the database: the file is read
    as immutable), so an edited finding is still caught; a case whose stopped run left a
    log is verified up to its ledger and said to need a writable copy."""
    intact, edited, stopped = (read_only_mount / n for n in ("intact", "edited", "stopped"))
    for target in (intact, edited):
        shutil.copytree(real_case["case"], target, ignore=shutil.ignore_patterns("thumbnails"))
    batch = next(e for e in real_case["entries"] if e["action"] == "batch.analysed")
    db = sqlite3.connect(edited / "case.sqlite")
    with db:
        FINDING_EDITS["results column edited"](db, db.execute(
            "SELECT file_id FROM results WHERE batch_id = ? LIMIT 1",
            (batch["subject"]["batch_id"],)).fetchone()[0])
    db.close()
    shutil.copytree(real_case["case"], stopped, ignore=shutil.ignore_patterns("thumbnails"))
    db = sqlite3.connect(stopped / "case.sqlite")  # a run stopped with rows in the log
    db.execute("PRAGMA wal_autocheckpoint=0")
    with db:
        db.execute("INSERT INTO case_info(key, value) VALUES ('stopped', 'mid-run')")
    shutil.copy(stopped / "case.sqlite-wal", read_only_mount / "left.wal")
    db.close()
    shutil.move(read_only_mount / "left.wal", stopped / "case.sqlite-wal")
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_mount)], check=True)

    result = verify_case(intact)
    assert result.ok, result.failure
    assert ("database findings vs Merkle roots", "ok") in [row[:2] for row in result.rows]
    result = verify_case(edited)
    assert not result.ok and result.failure_seq == batch["seq"], result.failure
    result = verify_case(stopped)
    assert result.ok, result.failure
    skipped = [row for row in result.rows if row[0] == "database findings vs Merkle roots"]
    assert skipped[0][1] == "skipped" and "writable storage" in skipped[0][2]
    proc = exhibit("ledger", "verify", intact)
    assert proc.stdout.startswith("OK:"), proc.stdout
