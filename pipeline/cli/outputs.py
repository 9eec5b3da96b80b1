"""``exhibit report`` and ``exhibit export``: what leaves the case for people and tools.

Both read the case database only (never the evidence), write their output atomically and
append an ``export.written``/``report.written`` entry with the output's SHA-256 to the
ledger, so what was handed over can be matched to the case later.

Exit codes are those of :mod:`pipeline.cli.common` (4: not a usable case).
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.common import EXIT_USAGE, default_output, fail, open_case


@click.command("export")
@click.argument("case_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(
    ["jsonl", "csv", "bodyfile", "dfxml", "geojson", "kml"]), default="jsonl",
    show_default=True, help="jsonl/csv: every entry; bodyfile: for TSK's mactime -b;"
    " dfxml: Digital Forensics XML; geojson/kml: photos with GPS positions.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Output file (default: CASE/exports/files.<suffix>).")
@click.option("--bom", is_flag=True, help="CSV: start with a UTF-8 byte-order mark for"
              " spreadsheet programs.")
@click.option("--examiner", help="Examiner name for the ledger entry.")
def export_cmd(case_dir: Path, fmt: str, output: Path | None, bom: bool,
               examiner: str | None) -> None:
    """Write the case's entries for other tools, and record it in the ledger."""
    from chain_of_custody.canonical import sha256_hex
    from pipeline.outputs.export import SUFFIXES, export

    if bom and fmt != "csv":
        fail("--bom applies to --format csv only", EXIT_USAGE)
    case = open_case(case_dir, examiner)
    try:
        if output is None:
            output = default_output(case_dir, f"files.{SUFFIXES[fmt]}")
        count = export(case.db, fmt, output, bom=bom)
        digest = sha256_hex(output.read_bytes())
        case.record("export.written", None, {"format": fmt, "path": str(output.resolve()),
                                             "records": count, "sha256": digest})
    finally:
        case.close()
    click.echo(f"{count} records written to {output} (sha256 {digest})")


@click.command("report")
@click.argument("case_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Output file (default: CASE/exports/report.html).")
@click.option("--thumbnails", type=click.Choice(["matched", "images", "none"]),
              default="matched", show_default=True,
              help="Which thumbnails to embed: of matched files only, of every image"
              " (large cases make large reports), or none.")
@click.option("--examiner", help="Examiner name for the ledger entry.")
def report_cmd(case_dir: Path, output: Path | None, thumbnails: str,
               examiner: str | None) -> None:
    """Write one self-contained HTML report (no network) and record it in the ledger."""
    from chain_of_custody.canonical import sha256_hex
    from pipeline.outputs.report import write_report

    case = open_case(case_dir, examiner)
    try:
        if output is None:
            output = default_output(case_dir, "report.html")
        stats = write_report(case.db, case.directory, output, thumbnails=thumbnails)
        digest = sha256_hex(output.read_bytes())
        case.record("report.written", None, {
            "format": "html", "path": str(output.resolve()), "sha256": digest, **stats,
        })
    finally:
        case.close()
    click.echo(f"report of {stats['files']} entries written to {output}"
               f" ({output.stat().st_size:,} bytes, sha256 {digest})")
