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

