"""``exhibit hashset``: import known-hash sets into a case, list them, export found media.

Exit codes as for the rest of the CLI: 2 for a set that cannot be imported (the message
names the line or record; nothing of it is imported), 4 for a directory that is not a
case.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from chain_of_custody.errors import LedgerError
from pipeline.cli.common import EXIT_CASE, EXIT_USAGE, default_output, fail, open_case


@click.group("hashset")
def hashset() -> None:
    """Known-hash sets: import (plain, CSV, VICS JSON, NSRL RDSv3), list, export matches."""


@hashset.command("import")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--case", "case_dir", required=True, type=click.Path(path_type=Path),
              help="Case directory (created if new).")
@click.option("--name", help="Name of the set in the case (default: the file name).")
@click.option("--source", help="Where the set came from (default: the file's path).")
@click.option("--set-version", "set_version", help="The set's version (default: what the"
              " file states, e.g. the VICS data model or the NSRL RDS version).")
@click.option("--category-map", help="Category labels: a built-in profile (projectvic-us,"
              " none) or a JSON ({\"1\": \"label\"}) or CSV (value,label) file.")
@click.option("--known-good", is_flag=True, default=None, help="Treat matches as known-good"
              " files to hide from review (NSRL sets are known-good by default).")
@click.option("--skip-invalid", is_flag=True, help="Plain lists and CSV: skip lines that are"
              " not hashes (counted in the ledger) instead of refusing the set.")
@click.option("--examiner", help="Examiner name for the ledger.")
def import_cmd(file: Path, case_dir: Path, name: str | None, source: str | None,
               set_version: str | None, category_map: str | None, known_good: bool | None,
               skip_invalid: bool, examiner: str | None) -> None:
    """Import FILE into the case, atomically, with a ledger entry."""
    from pipeline.case.store import Case, CaseError
    from pipeline.matching.hashsets import HashSetError, import_hashset

    try:
        case = Case(case_dir, examiner)
    except (CaseError, LedgerError) as exc:
        fail(f"case {case_dir}: {exc}", EXIT_CASE)
    try:
        summary = import_hashset(case, file, name=name, source=source, version=set_version,
                                 category_map=category_map, known_good=known_good,
                                 strict=not skip_invalid)
    except HashSetError as exc:
        fail(f"{exc} (nothing was imported)", EXIT_USAGE)
    finally:
        case.close()
    if summary.get("already_loaded"):
        click.echo(f"{file}: already in the case as set {summary['id']} ({summary['name']})")
        return
    counts = ", ".join(f"{k} {v:,}" for k, v in summary["counts"].items() if v)
    click.echo(f"imported {summary['name']} ({summary['format']}"
               f"{' ' + summary['version'] if summary['version'] else ''}, {summary['kind']},"
               f" categories: {summary['category_profile']}): {counts}")


@hashset.command("list")
@click.option("--case", "case_dir", required=True,
              type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_cmd(case_dir: Path, as_json: bool) -> None:
    """List the sets imported into the case."""
    from rich.console import Console
    from rich.table import Table

    from pipeline.case.store import Case, CaseError
    from pipeline.matching.hashsets import list_hashsets

    try:
        case = Case(case_dir, create=False)
    except (CaseError, LedgerError) as exc:
        fail(str(exc), EXIT_CASE)
    try:
        sets = list_hashsets(case)
    finally:
        case.close()
    if as_json:
        click.echo(json.dumps(sets, indent=1))
        return
    table = Table(title=f"hash sets — {case_dir}")
    for column in ("id", "name", "format", "version", "kind", "entries", "hashes",
                   "categories", "sha256"):
        table.add_column(column)
    for s in sets:
        hashes = ", ".join(f"{k} {v:,}" for k, v in s["counts"].items()
                           if v and k not in ("entries", "rejected_lines"))
        table.add_row(str(s["id"]), s["name"], s["format"], s["version"] or "-", s["kind"],
                      f"{s['counts'].get('entries', 0):,}", hashes,
                      s["category_profile"] or "-", s["sha256"][:16] + "…")
    Console().print(table)


@hashset.command("export")
@click.argument("case_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["vics", "csv"]), default="vics",
              show_default=True, help="vics: VICS 2.0 JSON of found media; csv: one row"
              " per match.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Output file (default: CASE/exports/found_media.json or matches.csv).")
@click.option("--examiner", help="Examiner name for the ledger entry.")
def export_cmd(case_dir: Path, fmt: str, output: Path | None, examiner: str | None) -> None:
    """Export the media that matched known sets, and record it in the ledger."""
    from chain_of_custody.canonical import sha256_hex
    from pipeline.outputs.found_media import write_matches_csv, write_vics

    case = open_case(case_dir, examiner)
    try:
        if output is None:
            output = default_output(case_dir, "found_media.json" if fmt == "vics"
                                    else "matches.csv")
        tmp = output.with_name(output.name + ".partial")
        with tmp.open("w", encoding="utf-8", newline="") as out:
            count = (write_vics(case.db, out, case.case_id) if fmt == "vics"
                     else write_matches_csv(case.db, out))
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(output)
        digest = sha256_hex(output.read_bytes())
        case.record("export.written", None, {"format": f"found-media-{fmt}",
                                             "path": str(output.resolve()),
                                             "records": count, "sha256": digest})
    finally:
        case.close()
    what = "media" if fmt == "vics" else "matches"
    click.echo(f"{count} {what} written to {output} (sha256 {digest})")
