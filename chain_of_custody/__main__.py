"""Verify a custody ledger with nothing but this package.

Usage::

    python -m chain_of_custody verify LEDGER.jsonl [--expect-head SEQ:HASH]

Prints ``OK: N entries`` and exits 0 when every check holds; prints
``FAILED at entry N: reason`` and exits 1 at the first entry that fails. Exit status 2
means the command was used wrongly or the file could not be read. ``--expect-head``
takes the last entry's seq and hash as recorded outside the ledger (the case database),
which is what reveals entries removed from the end.
"""

from __future__ import annotations

import argparse
import sys

from chain_of_custody.entry import HASH_RE
from chain_of_custody.verify import verify_ledger


def _head(text: str) -> tuple[int, str]:
    seq, sep, digest = text.partition(":")
    if not sep or not seq.isdigit() or not HASH_RE.fullmatch(digest):
        raise argparse.ArgumentTypeError("expected SEQ:HASH (HASH = 64 lower-case hex digits)")
    return int(seq), digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chain_of_custody", description="Verify an exhibit custody ledger."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="check every entry of a ledger")
    verify.add_argument("ledger", help="path to the ledger (.jsonl)")
    verify.add_argument("--expect-head", type=_head, metavar="SEQ:HASH", default=None)
    args = parser.parse_args(argv)

    try:
        report = verify_ledger(args.ledger, args.expect_head)
    except OSError as exc:
        print(f"error: cannot read {args.ledger}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if report.ok:
        print(f"OK: {report.entries} entries")
        return 0
    reason = report.reason or "unknown failure"
    reason = reason.removeprefix(f"entry {report.first_bad_seq}: ")
    print(f"FAILED at entry {report.first_bad_seq}: {reason}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
