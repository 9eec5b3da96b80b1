"""Helpers for end-to-end tests: run the real CLI, read exports and ledgers, ask oracles."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMINER = "Test Examiner"


def _config_home() -> Path:
    """A session-private $XDG_CONFIG_HOME holding the test examiner's key.

    Every ledger entry is signed, so every run — the CLI in a subprocess and a ``Case``
    opened in the test process alike — needs a key; tests must never read or write the
    real user's keys. Set on import, for the whole test process and its children.
    """
    from chain_of_custody.keys import KeyStore

    home = Path(tempfile.mkdtemp(prefix="exhibit-test-config-"))
    atexit.register(shutil.rmtree, home, True)
    os.environ["XDG_CONFIG_HOME"] = str(home)
    os.environ["EXHIBIT_EXAMINER"] = EXAMINER
    os.environ.pop("EXHIBIT_KEY_PASSPHRASE", None)
    KeyStore(home / "exhibit").create(EXAMINER, agency="Test Lab", badge_id="T-1")
    return home


CONFIG_HOME = _config_home()


def exhibit(*args: str | Path, check: bool = True, timeout: float = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``exhibit`` exactly as an examiner would (a separate process)."""
    cmd = [sys.executable, "-m", "pipeline.cli", *map(str, args)]
    full_env = dict(os.environ, EXHIBIT_EXAMINER=EXAMINER, COLUMNS="120",
                    XDG_CONFIG_HOME=str(CONFIG_HOME))
    full_env.pop("EXHIBIT_KEY_PASSPHRASE", None)
    full_env.update(env or {})
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"exhibit {' '.join(map(str, args))} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def triage(image: Path | list[Path], case: Path, *extra: str | Path,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    images = image if isinstance(image, list) else [image]
    return exhibit("triage", *images, "--case", case, "--workers", "2", "--no-progress",
                   *extra, check=check)


def export_jsonl(case: Path) -> list[dict[str, Any]]:
    out = case / "export-test.jsonl"
    exhibit("export", case, "--format", "jsonl", "-o", out)
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def ledger_entries(case: Path) -> list[dict[str, Any]]:
    text = (case / "ledger.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def fls_entries(image: Path, sector_offset: int) -> set[tuple[bytes, int, bool]]:
    """(raw path bytes, inode, allocated) for every line of ``fls -r -p``."""
    out = subprocess.run(["fls", "-r", "-p", "-o", str(sector_offset), str(image)],
                         capture_output=True, check=True).stdout
    entries = set()
    for line in out.split(b"\n"):
        if not line:
            continue
        head, _, path = line.partition(b"\t")
        fields = head.split()
        allocated = b"*" not in fields
        inode = int(fields[-1].rstrip(b":").split(b"-")[0].replace(b"(realloc)", b""))
        entries.add((path, inode, allocated))
    return entries


def icat(image: Path, sector_offset: int, inode: int) -> bytes:
    return subprocess.run(["icat", "-o", str(sector_offset), str(image), str(inode)],
                          capture_output=True, check=True).stdout

def wal_commits(wal: Path) -> int:
    """Commit frames in a SQLite write-ahead log (a frame header's second word is the
    database size after a commit, 0 for the other frames of a transaction)."""
    data = wal.read_bytes()
    if len(data) < 32:
        return 0
    page_size = struct.unpack(">I", data[8:12])[0]
    commits = 0
    for at in range(32, len(data) - 23, 24 + page_size):
        commits += struct.unpack(">I", data[at + 4:at + 8])[0] != 0
    return commits
