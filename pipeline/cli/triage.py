"""``exhibit triage``: options, the run, and the summary an examiner reads first."""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from chain_of_custody.errors import LedgerError
from ingest.derive import Limits
from ingest.errors import IngestError
from ingest.layers import PASSWORD_ENV, RECOVERY_KEY_ENV
from pipeline.cli.common import (
    EXIT_CASE,
    EXIT_EVIDENCE,
    EXIT_INTERRUPTED,
    EXIT_MISMATCH,
    EXIT_NO_SPACE,
    EXIT_NOTHING_EXAMINED,
    EXIT_USAGE,
    evidence_arguments,
    expected_hashes,
    fail,
)


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC from a write, or SQLite's own word for it."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@click.command()
@click.argument("image", nargs=-1, required=True)
@click.option("--case", "case_dir", required=True, type=click.Path(path_type=Path),
              help="Case directory (created if new; an existing case is resumed).")
@click.option("--examiner", help="Examiner key to sign the ledger with: id, name or key"
              " fingerprint (default: $EXHIBIT_EXAMINER, or the only key there is).")
@click.option("--create-key", is_flag=True, help="Create the examiner key (named --examiner,"
              " or the login name) if it does not exist yet.")
@click.option("--hashset", "hashsets", multiple=True, type=click.Path(path_type=Path,
              exists=True, dir_okay=False), help="Known-hash set: plain list, CSV (also"
              " pHash/dHash/PDQ columns), Project VIC VICS JSON or NSRL RDSv3 SQLite;"
              " repeatable.")
@click.option("--workers", type=click.IntRange(min=1), help="Local worker processes"
              " (default: one per core).")
@click.option("--scheduler", metavar="ADDRESS", help="Use an existing Dask scheduler,"
              " e.g. tls://10.0.0.5:8786; workers must see the image at the same path or URL.")
@click.option("--tls-ca-file", type=click.Path(exists=True, dir_okay=False), help="CA"
              " certificate of the cluster (as for `dask scheduler`); with --tls-cert and"
              " --tls-key, the scheduler is reached over tls:// with mutual certificates.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False),
              help="This client's certificate (PEM).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False),
              help="This client's private key (PEM).")
@click.option("--insecure", is_flag=True, help="Accept a non-local --scheduler without TLS"
              " (evidence in clear text; the scheduler runs whatever it is sent).")
@click.option("--expect-md5", help="MD5 stated for the image (e.g. from the acquisition form).")
@click.option("--expect-sha1", help="SHA-1 stated for the image.")
@click.option("--expect-sha256", help="SHA-256 stated for the image.")
@click.option("--allow-hash-mismatch", is_flag=True, help="Analyse even when the acquisition"
              " hashes do not match (recorded in the ledger).")
@click.option("--analyzers", "analyzer_list", help="Comma-separated analyzers to run"
              " (default: all registered).")
@click.option("--batch-mb", type=click.IntRange(min=1), default=256, show_default=True,
              help="Most bytes in one Dask batch, in MB (batches are planned smaller:"
              " small first ones, then shrinking towards the end).")
@click.option("--batch-files", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Maximum files per Dask batch.")
@click.option("--file-timeout", type=click.FloatRange(min=0), default=120.0,
              show_default=True, help="Seconds one file may take before its analysis is"
              " stopped and recorded as timed out (0: no limit).")
@click.option("--task-timeout", type=click.FloatRange(min=1), default=3600.0,
              show_default=True, help="Seconds one Dask task may run before its worker is"
              " restarted.")
@click.option("--walk-timeout", type=click.FloatRange(min=1), default=300.0,
              show_default=True, help="Seconds a filesystem's walk may go without progress"
              " inside The Sleuth Kit before it is stopped (what it walked is kept, the"
              " stall is recorded, the run goes on).")
@click.option("--worker-memory", default="3GiB", show_default=True,
              help="Memory limit of each local worker process; a worker over it is"
              " restarted and the file it was on is recorded.")
@click.option("--expand/--no-expand", default=True, show_default=True,
              help="Open archives, documents, mail and pictures inside files, recursively,"
              " and analyse what they hold.")
@click.option("--limit", "limits", multiple=True, metavar="NAME=VALUE",
              help="Change an expansion limit (repeatable): depth, members, container_bytes,"
              " member_bytes, ratio, seconds, case_bytes; see the README.")
@click.option("--setting", "settings", multiple=True, metavar="ANALYZER.KEY=VALUE",
              help="Change an analyzer's setting (repeatable), e.g. video.seconds_per_hash=2"
              " or video.max_seconds=300; see the README.")
@click.option("--carve", type=click.Choice(["none", "pictures", "all"]), default="pictures",
              show_default=True, help="Carve unallocated space: pictures and videos, also"
              " name other file headers found there (all), or not at all (none).")
@click.option("--carve-range-mb", default=64, show_default=True, type=click.IntRange(1),
              help="Unallocated space per carve task (a picture may run into the next).")
@click.option("--allow-empty", is_flag=True, help="Exit 0 even when no volume or filesystem"
              " could be read (still stated first in the summary and recorded in the ledger).")
@click.option("--snapshots", type=click.Choice(["all", "none"]), default="all",
              show_default=True, help="Walk and analyse every volume shadow copy of each NTFS"
              " volume as its own snapshot (none: the live volumes only).")
@click.option("--volume-password", envvar=PASSWORD_ENV, metavar="TEXT",
              help="Password of encrypted APFS or BitLocker volumes (or the EXHIBIT_VOLUME_PASSWORD"
              " environment variable); never recorded, only that one was given.")
@click.option("--recovery-key", envvar=RECOVERY_KEY_ENV, metavar="TEXT",
              help="Recovery key (APFS) or recovery password (BitLocker) of encrypted"
              " volumes (or EXHIBIT_RECOVERY_KEY).")
@click.option("--no-progress", is_flag=True, help="Do not draw progress bars.")
def triage(image: tuple[str, ...], case_dir: Path, examiner: str | None, create_key: bool,
           hashsets: tuple[Path, ...], workers: int | None, scheduler: str | None,
           tls_ca_file: str | None, tls_cert: str | None, tls_key: str | None, insecure: bool,
           expect_md5: str | None, expect_sha1: str | None, expect_sha256: str | None,
           allow_hash_mismatch: bool, analyzer_list: str | None, batch_mb: int,
           batch_files: int, file_timeout: float, task_timeout: float, walk_timeout: float,
           worker_memory: str, expand: bool, limits: tuple[str, ...],
           settings: tuple[str, ...], carve: str,
           carve_range_mb: int, allow_empty: bool, snapshots: str,
           volume_password: str | None, recovery_key: str | None,
           no_progress: bool) -> None:
    """Ingest IMAGE (raw/dd, split set, E01, VMDK/VHD/VHDX/QCOW/DMG), analyse every file.

    IMAGE is a path or a URL of an object store (s3://bucket/key, also gs://, az://,
    https://), read-only with the store's standard configuration (AWS_ENDPOINT_URL,
    AWS_PROFILE, ~/.aws/credentials).

    Paths after the first name the image's parts stored elsewhere (a parent, a backing
    file, extents); those beside it are found.

    \b
    Exit status: 0 done; 1 acquisition hashes differ; 2 usage error or no examiner key;
    3 the image cannot be opened; 4 the case is unusable or busy; 5 disk full;
    6 nothing examined: the image was hashed and recorded but no volume or filesystem
      in it could be read (the summary says first what it looks like, e.g. "VDI",
      "APFS container", "LUKS"; --allow-empty exits 0 instead);
    130 interrupted (run the same command to resume).
    """
    from pipeline.case.store import CaseError, NoExaminerKeyError, load_signer
    from pipeline.run.acquisition import HashMismatchError
    from pipeline.run.triage import Triage, TriageOptions
    from pipeline.secure.tls import TlsOptions, cluster_security

    tls = TlsOptions(tls_ca_file, tls_cert, tls_key, insecure)
    try:
        cluster_security(scheduler, tls)  # an insecure cluster is refused before anything
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    if scheduler is None:  # issue 18: the local workers' Dask import begins now, beside ours
        from pipeline.run.cluster import prepare_local_cluster

        prepare_local_cluster()
    try:
        load_signer(examiner, create=create_key)  # refuse before touching anything
    except NoExaminerKeyError as exc:
        fail(str(exc), EXIT_USAGE)

    expected = expected_hashes(expect_md5, expect_sha1, expect_sha256)
    analyzers = analyzer_list.split(",") if analyzer_list else None
    options = TriageOptions(
        images=evidence_arguments(image),
        case_dir=case_dir, examiner=examiner, hashsets=list(hashsets),
        workers=workers, scheduler=scheduler, expected_hashes=expected,
        allow_hash_mismatch=allow_hash_mismatch,
        analyzers=analyzers,
        batch_bytes=batch_mb << 20, batch_files=batch_files, progress=not no_progress,
        file_timeout=file_timeout, task_timeout=task_timeout, worker_memory=worker_memory,
        walk_timeout=walk_timeout, expand=expand, limits=parse_limits(limits),
        allow_empty=allow_empty, snapshots=snapshots == "all", tls=tls,
        carve=carve, carve_range_bytes=carve_range_mb << 20,
        settings=parse_settings(settings, analyzers),
    )
    for name, value in ((PASSWORD_ENV, volume_password), (RECOVERY_KEY_ENV, recovery_key)):
        if value:  # the walk's child and the local workers inherit it (ingest/layers/apfs.py)
            os.environ[name] = value
    try:
        result = Triage(options).run()
    except HashMismatchError as exc:
        fail(str(exc), EXIT_MISMATCH)
    except IngestError as exc:
        fail(str(exc), EXIT_EVIDENCE)
    except (OSError, sqlite3.OperationalError, LedgerError) as exc:
        if not is_disk_full(exc):
            if isinstance(exc, LedgerError):
                fail(f"case {case_dir}: {exc}", EXIT_CASE)
            raise
        fail(f"no space left in the case directory {case_dir} ({exc}); committed work is"
              " intact: free space and run the same command to resume", EXIT_NO_SPACE)
    except CaseError as exc:
        fail(f"case {case_dir}: {exc}", EXIT_CASE)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    print_summary(result.summary, result.hash_verified, result.case_dir)
    empty = result.nothing_examined
    if empty is not None and not allow_empty:
        fail(f"{empty['statement']} Its hashes are recorded; convert, decrypt or unpack it and"
             " triage again, or pass --allow-empty to accept an empty result.",
             EXIT_NOTHING_EXAMINED)
    if empty is not None:
        click.echo(f"exhibit: {empty['statement']} (accepted: --allow-empty)", err=True)
    if result.interrupted:
        click.echo("Interrupted: finished batches are saved; run the same command to resume.",
                   err=True)
        sys.exit(EXIT_INTERRUPTED)


def parse_limits(given: tuple[str, ...]) -> Limits:
    """``--limit NAME=VALUE`` options over the default expansion limits."""
    values: dict[str, int | float] = {}
    fields = Limits().to_dict()
    for item in given:
        name, _, text = item.partition("=")
        name = name.strip()
        if name not in fields or not text:
            fail(f"--limit {item!r}: expected NAME=VALUE with NAME one of"
                 f" {', '.join(fields)}", EXIT_USAGE)
        try:
            value = type(fields[name])(text)
        except ValueError:
            fail(f"--limit {item!r}: {text!r} is not a number", EXIT_USAGE)
        if value < 0:
            fail(f"--limit {item!r}: must not be negative", EXIT_USAGE)
        values[name] = value
    return Limits(**values)


def parse_settings(given: tuple[str, ...],
                   analyzers: list[str] | None) -> dict[str, dict[str, str]]:
    """``--setting ANALYZER.KEY=VALUE`` options, checked by the analyzers they are for."""
    from analyzers import registry

    settings: dict[str, dict[str, str]] = {}
    for item in given:
        name, _, text = item.partition("=")
        analyzer, _, key = name.strip().partition(".")
        if not analyzer or not key or not text:
            fail(f"--setting {item!r}: expected ANALYZER.KEY=VALUE", EXIT_USAGE)
        settings.setdefault(analyzer, {})[key] = text.strip()
    try:
        registry.create(analyzers, settings)
    except ValueError as exc:
        fail(f"--setting: {exc}", EXIT_USAGE)
    return settings


def print_summary(summary: dict[str, Any], verified: bool, case_dir: Path) -> None:
    console = Console()
    table = Table(title=f"exhibit triage — {case_dir}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    rows: list[tuple[str, str | Text]] = []
    if empty := summary.get("nothing_examined"):  # first: the one line that must not be missed
        rows.append(("NOTHING EXAMINED", Text(empty["statement"].removeprefix(
            "Nothing examined: "), style="bold red")))
    rows += [
        ("evidence", summary["evidence_id"]),
        ("media SHA-256", summary["evidence_sha256"] or Text(
            "NOT COMPUTED (unreadable or interrupted: see the ledger)", style="bold red")),
        ("acquisition hashes", "verified" if verified else
         "not compared" if not summary["evidence_sha256"] else
         "NOT VERIFIED (mismatch allowed)"),
        ("volumes", str(summary["volumes"])),
        ("filesystems", f"{summary['filesystems_walked']} walked: "
                        f"{', '.join(summary['filesystems']) or '-'}"),
        *((("volumes holding several filesystems", "\n".join(
            f"volume {idx}: {', '.join(types)}"
            for idx, types in summary["volumes_with_several_filesystems"].items())),)
          if summary.get("volumes_with_several_filesystems") else ()),
        *((("APFS volumes", "\n".join(
            f"{fs}: {v['name'] or '(no name)'}" + (" (encrypted)" if v["encrypted"] else "")
            for fs, v in summary["apfs_volumes"].items())),)
          if summary.get("apfs_volumes") else ()),
        *((("entries in shadow copies", f"{summary['snapshot_entries']:,}"),)
          if summary.get("snapshot_entries") else ()),
        *((("filesystem walks stalled (stopped)", str(summary["walks_stalled"])),)
          if summary.get("walks_stalled") else ()),
        ("entries", f"{summary['entries']:,}"),
        ("files", f"{summary['files']:,}"),
        ("deleted entries", f"{summary['deleted']:,}"),
        ("derived entries (inside files)", f"{summary.get('derived', 0):,}"),
        ("  of them carved (unallocated)", f"{summary.get('carved', 0):,}"),
        ("bytes in files", f"{summary['bytes']:,}"),
        ("files analysed", f"{summary['analysed']:,}"),
        ("images", f"{summary['images']:,}"),
        ("type mismatches", f"{summary['type_mismatches']:,}"),
        ("known-hash matches", f"{summary['known_hash_matches']:,}" + "".join(
            f"\n  {label}: {n:,}"
            for label, n in summary.get("known_hash_matches_by_category", {}).items())),
        ("  of them near (altered) copies", f"{summary.get('near_matches', 0):,}"),
        ("known-good files (e.g. NSRL)", f"{summary.get('known_good_files', 0):,}"),
        ("near-duplicate groups", f"{summary.get('near_duplicate_groups', 0):,}"),
        ("errors", f"{summary['errors']:,}"),
        ("analyses skipped (size limits)", f"{summary.get('skipped', 0):,}"),
        ("elapsed", f"{summary.get('elapsed_seconds', 0):.1f} s"),
    ]
    for what, value in rows:
        table.add_row(what, value)
    console.print(table)
