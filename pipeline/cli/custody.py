"""``exhibit examiner|evidence|custody|ledger``: identity, custody events, verification.

Exit codes are those of :mod:`pipeline.cli.common`:

  0  success (verification: everything checked holds)
  1  verification failed: a ledger, a finding or an image is not what was recorded
     (``evidence register``: the stated hashes do not match; the item is still recorded)
  2  usage error, no examiner key, or a custody step refused (wrong holder, unknown
     exhibit number, transfer not addressed to you …)
  3  evidence that cannot be opened
  4  the case directory cannot be used (not a case, torn ledger, busy)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from chain_of_custody.errors import LedgerError
from pipeline.cli.common import (
    EXIT_CASE,
    EXIT_EVIDENCE,
    EXIT_MISMATCH,
    EXIT_USAGE,
    evidence_arguments,
    expected_hashes,
    fail,
)

_examiner_option = click.option(
    "--examiner", help="Examiner key to sign with: id, name or fingerprint (default:"
    " $EXHIBIT_EXAMINER, or the only key there is).")
_case_argument = click.argument("case_dir", metavar="CASE",
                                type=click.Path(path_type=Path, file_okay=False))



@contextmanager
def _open_case(case_dir: Path, examiner: str | None, create: bool = False,
               create_key: bool = False) -> Iterator[Any]:
    """The case, signed as ``examiner``; custody refusals become exit 2, not tracebacks."""
    from ingest.errors import IngestError
    from pipeline.case.custody import CustodyError
    from pipeline.case.store import Case, CaseError, NoExaminerKeyError, load_signer

    try:
        signer = load_signer(examiner, create=create_key)
        case = Case(case_dir, examiner, create=create, signer=signer)
    except NoExaminerKeyError as exc:
        fail(str(exc), EXIT_USAGE)
    except (CaseError, LedgerError) as exc:
        fail(f"case {case_dir}: {exc}", EXIT_CASE)
    try:
        yield case
    except (CustodyError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)
    except IngestError as exc:
        fail(str(exc), EXIT_EVIDENCE)
    finally:
        case.close()


# -- examiner ----------------------------------------------------------------------------


@click.group()
def examiner() -> None:
    """Examiner identities: the Ed25519 keys that sign every ledger entry."""


@examiner.command("init")
@click.option("--name", required=True, help="Full name, as it should appear in court.")
@click.option("--agency", help="Agency or laboratory.")
@click.option("--badge-id", help="Badge or staff number.")
@click.option("--id", "examiner_id", help="Short id (default: from the name, e.g. jane-doe).")
@click.option("--encrypt", is_flag=True, help="Protect the private key with a passphrase"
              " (asked for, or $EXHIBIT_KEY_PASSPHRASE; that variable alone also encrypts).")
def examiner_init(name: str, agency: str | None, badge_id: str | None,
                  examiner_id: str | None, encrypt: bool) -> None:
    """Create an examiner key in $XDG_CONFIG_HOME/exhibit/examiners (private key 0600)."""
    from chain_of_custody.keys import ExaminerKeyError, KeyStore

    secret = os.environ.get("EXHIBIT_KEY_PASSPHRASE")
    if encrypt and not secret:
        secret = click.prompt("Passphrase for the new key", hide_input=True,
                              confirmation_prompt=True)
    store = KeyStore()
    try:
        signer = store.create(name, examiner_id, agency, badge_id,
                              passphrase=secret.encode("utf-8") if secret else None)
    except (ExaminerKeyError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)
    click.echo(f"examiner {signer.examiner_id} ({signer.name}) created")
    click.echo(f"  key fingerprint: {signer.fingerprint}")
    click.echo(f"  private key:     {store.directory / (signer.examiner_id + '.key')}"
               f" ({'encrypted' if secret else 'not encrypted'}, mode 0600)")
    click.echo("Give the fingerprint to whoever will verify your ledgers (e.g. on your"
               " statement); they compare it with the one in the export.")


@examiner.command("list")
def examiner_list() -> None:
    """The examiner keys of this login."""
    from chain_of_custody.keys import KeyStore

    store = KeyStore()
    found = store.identities()
    if not found:
        click.echo(f"no examiner keys in {store.directory}; create one with"
                   " `exhibit examiner init --name \"Your Name\"`")
        return
    for identity in found:
        click.echo(f"{identity.get('examiner_id')}\t{identity.get('name')}\t"
                   f"{identity.get('agency') or '-'}\t{identity.get('badge_id') or '-'}\t"
                   f"{identity.get('fingerprint')}")


# -- evidence ----------------------------------------------------------------------------


@click.group()
def evidence() -> None:
    """Evidence items: register them as a custody form would, re-verify their images."""


@evidence.command("register")
@_case_argument
@click.argument("image", nargs=-1, required=True)
@click.option("--exhibit-number", required=True, help="The exhibit's label, unique in the case.")
@click.option("--description", required=True, help="What the item is (make, model, serial…).")
@click.option("--seal", help="Seal or bag number(s).")
@click.option("--authority", help="Legal authority, e.g. \"warrant no. 2026-117\".")
@click.option("--seized-from", help="Person or place it was seized from.")
@click.option("--seized-at", help="When it was seized (ISO 8601 with offset).")
@click.option("--location", help="Where the item is now.")
@click.option("--expect-md5", help="MD5 stated on the acquisition form.")
@click.option("--expect-sha1", help="SHA-1 stated on the acquisition form.")
@click.option("--expect-sha256", help="SHA-256 stated on the acquisition form.")
@_examiner_option
@click.option("--create-key", is_flag=True, help="Create the examiner key (named --examiner)"
              " if it does not exist yet.")
def evidence_register(case_dir: Path, image: tuple[str, ...], exhibit_number: str,
                      description: str, seal: str | None, authority: str | None,
                      seized_from: str | None, seized_at: str | None, location: str | None,
                      expect_md5: str | None, expect_sha1: str | None,
                      expect_sha256: str | None, examiner: str | None,
                      create_key: bool) -> None:
    """Register IMAGE (a path or an object-store URL, as for triage) as exhibit
    --exhibit-number of CASE (created if new); hashes it."""
    from pipeline.case.custody import register_evidence

    expected = expected_hashes(expect_md5, expect_sha1, expect_sha256)
    with _open_case(case_dir, examiner, create=True, create_key=create_key) as case:
        done = register_evidence(
            case, evidence_arguments(image), exhibit_number=exhibit_number, description=description,
            seal=seal, authority=authority, seized_from=seized_from, seized_at=seized_at,
            location=location, expected=expected)
    acq = done["acquisition"]
    click.echo(f"exhibit {exhibit_number} registered (item {done['item_id']}, ledger entry"
               f" {done['entry']['seq']})")
    for algo in ("md5", "sha1", "sha256"):
        click.echo(f"  {algo:6} {acq[algo]}")
    for comparison in acq["stated"]:
        click.echo(f"  stated {comparison['algorithm']} ({comparison['source']}):"
                   f" {comparison['status']}")
    if not done["verified"]:
        fail("the computed hashes do not match those stated (recorded in the ledger)",
              EXIT_MISMATCH)


@evidence.command("verify")
@_case_argument
@_examiner_option
def evidence_verify(case_dir: Path, examiner: str | None) -> None:
    """Re-hash every image of CASE and record same / different / unavailable."""
    from pipeline.case.custody import verify_evidence

    with _open_case(case_dir, examiner) as case:
        results = verify_evidence(case)
    bad = 0
    for result in results:
        click.echo(f"{result['evidence_id']}  {result['result'].upper()}"
                   f"  (ledger entry {result['entry']['seq']})")
        if result["result"] != "same":
            bad += 1
            click.echo(f"  {result.get('error') or result.get('computed')}")
    if not results:
        click.echo("no evidence registered in this case")
    if bad:
        fail(f"{bad} image(s) differ from or cannot be compared with what was recorded",
              EXIT_MISMATCH)


@evidence.command("list")
@_case_argument
def evidence_list(case_dir: Path) -> None:
    """The evidence items of CASE and where their custody stands (read-only)."""
    from pipeline.case.custody import items
    from pipeline.case.database import CaseDatabase
    from pipeline.case.store import DB_NAME

    if not (case_dir / DB_NAME).exists():
        fail(f"{case_dir} is not an exhibit case", EXIT_CASE)
    db = CaseDatabase(case_dir / DB_NAME)
    try:
        from pipeline.case.store import CUSTODY_SCHEMA

        db.conn.executescript(CUSTODY_SCHEMA)
        rows = items(db)
    finally:
        db.close()
    for row in rows:
        state = row["status"] + (f" → {row['pending_to']}" if row["pending_to"] else "")
        click.echo(f"{row['exhibit_number']}\t{row['description']}\t{state}\t"
                   f"holder {row['holder']}\t{row['location'] or '-'}\t"
                   f"verified: {row['last_verification'] or 'never'}")


# -- custody -----------------------------------------------------------------------------


@click.group()
def custody() -> None:
    """Hand-overs, check-out/check-in and notes: each a signed ledger entry."""


_exhibit_option = click.option("--exhibit-number", required=True, help="The exhibit.")
_at_option = click.option("--at", help="When it happened, if not now (ISO 8601 with offset).")


@custody.command("transfer")
@_case_argument
@_exhibit_option
@click.option("--to", "to", required=True, help="Receiving examiner (id, name or key"
              " fingerprint), who acknowledges with `custody receive`.")
@click.option("--purpose", required=True, help="Why the item changes hands.")
@click.option("--location", help="Where the hand-over takes place.")
@_at_option
@_examiner_option
def custody_transfer(case_dir: Path, exhibit_number: str, to: str, purpose: str,
                     location: str | None, at: str | None, examiner: str | None) -> None:
    """Release an exhibit you hold to another examiner (signed by you)."""
    from pipeline.case.custody import transfer

    with _open_case(case_dir, examiner) as case:
        entry = transfer(case, exhibit_number, to, purpose, location, at)
    click.echo(f"exhibit {exhibit_number} released to {to} (entry {entry['seq']});"
               " awaiting their `exhibit custody receive`")


@custody.command("receive")
@_case_argument
@_exhibit_option
@click.option("--location", help="Where you now keep it.")
@click.option("--note", help="Condition on receipt, seal intact …")
@_at_option
@_examiner_option
def custody_receive(case_dir: Path, exhibit_number: str, location: str | None,
                    note: str | None, at: str | None, examiner: str | None) -> None:
    """Acknowledge a transfer addressed to you (a second entry, signed by you)."""
    from pipeline.case.custody import receive

    with _open_case(case_dir, examiner) as case:
        entry = receive(case, exhibit_number, location, at, note)
    click.echo(f"exhibit {exhibit_number} received (entry {entry['seq']}, acknowledging"
               f" entry {entry['details']['transfer_seq']})")


@custody.command("check-out")
@_case_argument
@_exhibit_option
@click.option("--purpose", required=True, help="Why it leaves the store.")
@click.option("--location", help="Where it is taken.")
@_at_option
@_examiner_option
def custody_check_out(case_dir: Path, exhibit_number: str, purpose: str,
                      location: str | None, at: str | None, examiner: str | None) -> None:
    """Take an exhibit out of the evidence store."""
    from pipeline.case.custody import check_out

    with _open_case(case_dir, examiner) as case:
        entry = check_out(case, exhibit_number, purpose, location, at)
    click.echo(f"exhibit {exhibit_number} checked out (entry {entry['seq']})")


@custody.command("check-in")
@_case_argument
@_exhibit_option
@click.option("--location", required=True, help="Store, shelf, locker.")
@click.option("--note", help="Condition, seal number …")
@_at_option
@_examiner_option
def custody_check_in(case_dir: Path, exhibit_number: str, location: str, note: str | None,
                     at: str | None, examiner: str | None) -> None:
    """Return an exhibit you hold to the evidence store."""
    from pipeline.case.custody import check_in

    with _open_case(case_dir, examiner) as case:
        entry = check_in(case, exhibit_number, location, at, note)
    click.echo(f"exhibit {exhibit_number} checked in at {location} (entry {entry['seq']})")


@custody.command("note")
@_case_argument
@click.option("--exhibit-number", help="The exhibit it concerns (default: the case).")
@click.option("--text", required=True, help="The remark.")
@_examiner_option
def custody_note(case_dir: Path, exhibit_number: str | None, text: str,
                 examiner: str | None) -> None:
    """Add a signed remark to the ledger."""
    from pipeline.case.custody import add_note

    with _open_case(case_dir, examiner) as case:
        entry = add_note(case, text, exhibit_number)
    click.echo(f"note recorded (entry {entry['seq']})")


# -- ledger ------------------------------------------------------------------------------


@click.group()
def ledger() -> None:
    """Verify a case's custody ledger, prove findings, export it for court."""


@ledger.command("verify")
@click.argument("case_dir", metavar="CASE", type=click.Path(path_type=Path, exists=True))
@click.option("-q", "--quiet", is_flag=True, help="Print only the verdict.")
def ledger_verify(case_dir: Path, quiet: bool) -> None:
    """Check chain, hashes, signatures, sequence, time and the database's findings.

    The first line is the verdict (``OK: N entries`` or ``FAILED at entry N: why``), then a
    table of what was checked. Exit 0 when everything holds; 1 naming the first entry that
    fails; 4 when CASE has no ledger.
    """
    from pipeline.case.custody import verify_case
    from pipeline.case.store import LEDGER_NAME

    path = case_dir / LEDGER_NAME if case_dir.is_dir() else case_dir
    if not path.exists():
        fail(f"{path} does not exist", EXIT_CASE)
    result = verify_case(case_dir)
    if result.ok:
        pending = (f" ({result.pending} analysed batches not yet in the ledger: re-run triage)"
                   if result.pending else "")
        click.echo(f"OK: {result.ledger.entries} entries{pending}")
    else:
        reason = result.failure or "unknown failure"
        if result.failure_seq is not None:
            reason = reason.removeprefix(f"entry {result.failure_seq}: ")
            click.echo(f"FAILED at entry {result.failure_seq}: {reason}")
        else:
            click.echo(f"FAILED: {reason}")
    if not quiet:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"exhibit ledger verify — {path}", expand=True)
        table.add_column("check", ratio=5)
        table.add_column("result", ratio=2)
        table.add_column("detail", ratio=4)
        for row in result.rows:
            table.add_row(*row)
        Console(width=max(120, Console().width)).print(table)
    if not result.ok:
        sys.exit(EXIT_MISMATCH)


@ledger.command("prove")
@_case_argument
@click.option("--path", "file_path", help="File path in the evidence, e.g. /DCIM/IMG_0001.JPG.")
@click.option("--sha256", help="Content SHA-256 of the file(s).")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the proof (JSON) here; with several files, a JSON list.")
def ledger_prove(case_dir: Path, file_path: str | None, sha256: str | None,
                 output: Path | None) -> None:
    """Print a file's result record and its Merkle inclusion proof (exit 1 if uncovered)."""
    from pipeline.case.custody import prove
    from pipeline.case.store import DB_NAME

    if not (case_dir / DB_NAME).exists():
        fail(f"{case_dir} is not an exhibit case", EXIT_CASE)
    try:
        proofs = prove(case_dir, file_path, sha256)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    if not proofs:
        wanted = f"path {file_path!r}" if file_path else f"sha256 {sha256}"
        fail(f"no analysed file with {wanted}", EXIT_USAGE)
    document: Any = proofs[0] if len(proofs) == 1 else proofs
    text = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if output is not None:
        output.write_text(text, encoding="utf-8")
        click.echo(f"{len(proofs)} proof(s) written to {output}")
    else:
        click.echo(text, nl=False)
    uncovered = [p for p in proofs if not p["covered"]]
    if uncovered:
        first = uncovered[0]
        fail(f"file {first['record']['location'].get('path')!r} in batch {first['batch_id']}"
              f" is NOT covered by ledger entry {first['ledger_seq']}: the database's records"
              " no longer match the signed Merkle root", EXIT_MISMATCH)


@ledger.command("export")
@_case_argument
@click.option("--format", "fmt", type=click.Choice(["json", "pdf", "case"]), required=True,
              help="json: self-contained signed ledger with keys; pdf: custody report for"
                   " the court; case: CASE/UCO JSON-LD.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path, dir_okay=False))
@_examiner_option
def ledger_export(case_dir: Path, fmt: str, output: Path, examiner: str | None) -> None:
    """Export the custody record (recorded in the ledger with the file's SHA-256)."""
    from pipeline.outputs.custody_export import export_ledger

    with _open_case(case_dir, examiner) as case:
        done = export_ledger(case, fmt, output)
    click.echo(f"{fmt} export written to {output} (sha256 {done['sha256']}); verification:"
               f" {'OK' if done['verified'] else 'FAILED'}")
