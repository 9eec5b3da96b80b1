"""Verify a custody ledger with nothing but this package.

Usage::

    python -m chain_of_custody verify EXPORT.json|LEDGER.jsonl [--keys DIR]
        [--expect-head SEQ:HASH] [--trust FINGERPRINT …] [--proof PROOF.json …]

The same as ``python -m chain_of_custody.verify`` (see :mod:`chain_of_custody.verify`).
Prints what was checked and who signed, then ``OK: N entries`` (exit 0) or
``FAILED at entry N: reason`` (exit 1). Exit status 2 means the command was used wrongly
or a file could not be read.
"""

from __future__ import annotations

import argparse
import sys

from chain_of_custody.verify import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chain_of_custody", description="Verify an exhibit custody ledger."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_arguments(commands.add_parser("verify", help="check every entry of a ledger"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
