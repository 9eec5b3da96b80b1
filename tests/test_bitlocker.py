"""BitLocker: what can be tested without Windows (no Linux tool writes a BitLocker volume).

A volume carrying BitLocker's OEM id but no metadata libbde accepts (as a damaged or
partially overwritten BitLocker volume would): the walk records, for that volume, that
libbde cannot read it — with or without a recovery password given — the run names the
image as a BitLocker volume (exit 6), and the recovery password is stored nowhere in the
case. Unlocking with a right or wrong password needs a real BitLocker volume: that path
(ingest/layers/bitlocker.py) is not exercised here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import require_tool
from pipeline_helpers import ledger_entries, triage

RECOVERY = "111111-222222-333333-444444-555555-666666-777777-888888"


@pytest.fixture
def bitlocker_looking(tmp_path: Path) -> Path:
    disk = tmp_path / "disk.dd"
    disk.write_bytes(bytes(4 << 20))
    subprocess.run([require_tool("sfdisk"), "-q", str(disk)], check=True, capture_output=True,
                   input=b"label: dos\nstart=2048, type=7\n")
    with disk.open("r+b") as fh:
        fh.seek(2048 * 512)
        fh.write(b"\xeb\x58\x90-FVE-FS-" + b"\x5a" * 500)
    return disk


@pytest.mark.parametrize("key", [None, RECOVERY])
def test_unreadable_bitlocker_metadata_is_recorded(bitlocker_looking: Path, tmp_path: Path,
                                                   key: str | None) -> None:
    case = tmp_path / "case"
    extra = ("--recovery-key", key) if key else ()
    proc = triage(bitlocker_looking, case, *extra, check=False)
    assert proc.returncode == 6 and "Traceback" not in proc.stderr
    assert "BitLocker encrypted volume" in proc.stderr
    errors = [e for e in ledger_entries(case) if e["action"] == "error"]
    assert any("BitLocker volume at byte offset 1048576" in e["details"].get("message", "")
               and "libbde cannot read its metadata" in e["details"]["message"]
               for e in errors), errors
    for stored in case.rglob("*"):
        if stored.is_file():
            assert RECOVERY.encode() not in stored.read_bytes(), stored
