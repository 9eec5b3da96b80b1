"""The ``exhibit`` command line.

Exit codes (documented in the README):
  0  success
  1  acquisition hash mismatch (without --allow-hash-mismatch), or a ledger that fails
     verification
  2  usage error (bad option, unknown analyzer, unreadable hash set, no examiner key)
  3  evidence that cannot be opened (unknown format, unreadable, missing segment)
  4  the case directory cannot be used (e.g. a torn ledger, not a case, another triage
     running on it)
  5  the case directory's disk is full (what was committed is intact; free space and re-run)
  130 interrupted by the examiner (the ledger records where it stopped; re-run resumes)
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from contextlib import suppress

import click

from pipeline.cli.custody import custody, evidence, examiner, ledger
from pipeline.cli.hashset import hashset
from pipeline.cli.outputs import export_cmd, report_cmd
from pipeline.cli.triage import triage


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="exhibit", prog_name="exhibit")
def main() -> None:
    """exhibit — triage seized-media images with a verifiable custody ledger."""


for _command in (triage, examiner, evidence, custody, ledger, export_cmd, report_cmd, hashset):
    main.add_command(_command)


def run() -> None:
    """The ``exhibit`` console script: the command, then a prompt exit.

    A triage leaves Dask, NumPy and the analyzers' libraries loaded; Python's teardown of
    them took 0.2–0.5 s after the summary was printed (issue 18: fixed cost). Everything a
    command writes is closed by the command itself (case database, ledger), so once the
    command has returned, the threads it left have ended and the exit handlers have run
    (multiprocessing's among them, which stops the helper processes), the process ends
    without tearing the interpreter down. An unexpected exception keeps Python's usual
    exit (traceback and full teardown), and so does a run under a profiler, tracer or
    debugger (``python -m cProfile`` writes its output after the command returns)."""
    if _instrumented():
        main()
        return
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    _leave(code)


def _instrumented() -> bool:
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return True
    monitoring = getattr(sys, "monitoring", None)  # Python 3.12+: cProfile, coverage
    return monitoring is not None and any(monitoring.get_tool(i) is not None for i in range(6))


def _leave(code: object) -> None:
    if code is not None and not isinstance(code, int):  # sys.exit("message"), as Python
        print(code, file=sys.stderr)
        code = 1
    # What Python's exit does first, in its order: the threading module's exit hooks (they
    # stop idle concurrent.futures workers), the join of every non-daemon thread; then the
    # exit handlers. Only the teardown of the modules after them is skipped.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a closed pipe: nothing more can reach it
            stream.flush()
    os._exit(code or 0)
