"""What every ``exhibit`` subcommand shares: its exit codes and how it fails.

The codes are documented in the README ("Exit codes"); scripts and the tests rely on
them, so they live in one place.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from pipeline.case.store import Case

EXIT_MISMATCH = 1  # acquisition hashes differ, or a ledger/export failed verification
EXIT_USAGE = 2  # bad arguments, missing examiner key
EXIT_EVIDENCE = 3  # the image cannot be opened or read
EXIT_CASE = 4  # the case is unusable or another run holds it
EXIT_NO_SPACE = 5  # the case directory's disk is full (committed work is kept)
# The image was opened, hashed and registered, but no volume or filesystem in it could be
# read (a VMDK, QCOW2, APFS container, encrypted volume…): nothing was examined. Not 3,
# which means the evidence could not even be opened (nothing recorded about it), nor 0,
# which a batch script reads as "examined".
EXIT_NOTHING_EXAMINED = 6
EXIT_INTERRUPTED = 130  # Ctrl-C; the run can be resumed

HEX_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}


def fail(message: str, code: int) -> NoReturn:
    """Say what went wrong on stderr, in one line, and exit with ``code``."""
    click.echo(f"exhibit: error: {message}", err=True)
    sys.exit(code)


def open_case(case_dir: Path, examiner: str | None) -> Case:
    """An existing case, opened to record what a command did; exit 4 when unusable."""
    from chain_of_custody.errors import LedgerError
    from pipeline.case.store import Case, CaseError

    try:
        return Case(case_dir, examiner, create=False)
    except (CaseError, LedgerError) as exc:
        fail(str(exc), EXIT_CASE)


def default_output(case_dir: Path, name: str) -> Path:
    """Where an export goes when no ``-o`` is given: ``CASE/exports/NAME``."""
    (case_dir / "exports").mkdir(exist_ok=True)
    return case_dir / "exports" / name
