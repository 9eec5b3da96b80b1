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


def evidence_arguments(given: tuple[str, ...]) -> list[Path | str]:
    """IMAGE arguments: local paths (``file://`` too) as paths, object-store URLs as given
    (``click.Path`` would fold ``s3://b/k`` into ``s3:/b/k``)."""
    from ingest.remote import is_url, local_path_of

    return [p if is_url(p) else Path(local_path_of(p)) for p in given]


def expected_hashes(md5: str | None, sha1: str | None, sha256: str | None) -> dict[str, str]:
    """The ``--expect-*`` digests, normalised; a malformed one stops the command (exit 2)."""
    expected: dict[str, str] = {}
    for algo, value in (("md5", md5), ("sha1", sha1), ("sha256", sha256)):
        if value is None:
            continue
        value = value.strip().lower()
        if len(value) != HEX_LENGTHS[algo] or any(c not in "0123456789abcdef" for c in value):
            fail(f"--expect-{algo} is not a {HEX_LENGTHS[algo]}-digit hex digest", EXIT_USAGE)
        expected[algo] = value
    return expected


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
