"""Custody exports for people outside the lab: JSON, a PDF report, CASE/UCO JSON-LD.

* ``json`` — the ledger itself, self-contained: every entry as written, the public key
  records of every signer, the head the case database recorded, a verification summary,
  and an export seal (the exporting examiner's signature over the whole document).
  ``python -m chain_of_custody.verify FILE.json`` checks it with nothing else of exhibit.
* ``pdf`` — the custody report for the court: case, evidence items with their hashes
  and verification, a chronological who/what/when/where/why table, tools and versions,
  key fingerprints and the verification verdict; written for a non-technical reader.
* ``case`` — CASE/UCO 1.x JSON-LD (an ``investigation:Investigation`` with a
  ``ProvenanceRecord`` per exhibit, the media as ``uco-observable:Disk``/``File`` with
  ``ContentDataFacet`` hashes, and each ledger step as an ``InvestigativeAction``).

Everything shown comes from the signed ledger and the case database; strings that came
from the evidence or from examiners are escaped for the target format (PDF markup,
JSON-LD is plain JSON). Each export is written atomically, then recorded in the ledger
(``ledger.exported``) with its SHA-256.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chain_of_custody.canonical import canonical_bytes, sha256_hex
from chain_of_custody.keys import read_key_dir
from chain_of_custody.ledger import read_entries
from chain_of_custody.verify import EXPORT_FORMAT
from pipeline.case.custody import CaseVerification, items, verify_case
from pipeline.case.store import Case

FORMATS = ("json", "pdf", "case")


def export_ledger(case: Case, fmt: str, output: Path) -> dict[str, Any]:
    """Write the export, record it in the ledger, return its digest and verdict."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown ledger export format {fmt!r}; expected one of {FORMATS}")
    verification = verify_case(case.directory)
    writer: Callable[[Case, CaseVerification], bytes] = {
        "json": build_json, "pdf": build_pdf, "case": build_case}[fmt]
    data = writer(case, verification)
    _write_atomic(output, data)
    digest = sha256_hex(data)
    case.record("ledger.exported", None, {
        "format": fmt, "path": str(output.resolve()), "sha256": digest, "bytes": len(data),
        "entries": verification.ledger.entries, "verified": verification.ok,
        "verification": verification.failure or "ok",
    })
    return {"sha256": digest, "verified": verification.ok, "bytes": len(data)}


def _write_atomic(output: Path, data: bytes) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _entries(case: Case, verification: CaseVerification) -> list[dict[str, Any]]:
    return list(read_entries(case.ledger_path))


def _evidence(case: Case) -> list[dict[str, Any]]:
    """Evidence rows with their custody item (if registered) — informative, unsigned."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for row in items(case.db):
        by_id.setdefault(row["evidence_id"], []).append(row)
    out = []
    for row in case.db.all_evidence():
        out.append({
            "evidence_id": row["id"], "format": row["format"], "paths": json.loads(row["paths"]),
            "size": row["size"], "md5": row["md5"], "sha1": row["sha1"],
            "sha256": row["sha256"], "acquisition_verified": bool(row["verified"]),
            "comparisons": json.loads(row["verification"]),
            "items": by_id.get(row["id"], []),
        })
    return out


# -- json --------------------------------------------------------------------------------


def build_json(case: Case, verification: CaseVerification) -> bytes:
    report = verification.ledger
    head = report.head
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "format_version": 1,
        "exported_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "exported_by": case.signer.actor(),
        "case": {"case_id": case.case_id, "created_by": case.db.info("created_by")},
        "evidence": _evidence(case),
        "public_keys": [r for r in read_key_dir(case.keys_dir) if isinstance(r, dict)],
        "head": None if head is None else {"seq": head[0], "hash": head[1]},
        "verification": {**report.summary(), "case_ok": verification.ok,
                         "case_failure": verification.failure,
                         "rows": [list(r) for r in verification.rows]},
        "entries": _entries(case, verification)[: report.entries],
        "how_to_verify": "python -m chain_of_custody.verify THIS_FILE (exhibit's standalone"
                         " verifier; needs only Python, cryptography and rfc8785); compare"
                         " the signers' key fingerprints with those the examiners attest.",
    }
    if case.signer.fingerprint not in {r.get("fingerprint") for r in document["public_keys"]}:
        document["public_keys"].append(case.signer.public_record())
    document["export_seal"] = {
        "key_fingerprint": case.signer.fingerprint,
        "signature": case.signer.sign(canonical_bytes(document)),
    }
    return (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


# -- the custody narrative shared by pdf and case ----------------------------------------


def _who(actor: dict[str, Any] | None) -> str:
    if not isinstance(actor, dict):
        return "?"
    return f"{actor.get('name') or actor.get('examiner', '?')} ({actor.get('examiner_id', '?')})"


def describe(entry: dict[str, Any]) -> tuple[str, str, str]:
    """(what, where, why) in plain words for one ledger entry."""
    action = entry.get("action", "")
    d = entry.get("details") or {}
    s = entry.get("subject") or {}
    exhibit = s.get("exhibit_number")
    ex = f"exhibit {exhibit}" if exhibit else (
        f"evidence {str(s.get('evidence_id'))[:16]}…" if s.get("evidence_id") else "the case")
    where = d.get("location") or ""
    why = d.get("purpose") or ""
    if action == "case.created":
        what = "Case opened"
    elif action == "examiner.key_added":
        key = d.get("public_key") or {}
        what = f"Examiner key added: {key.get('name')} ({key.get('fingerprint', '')[:16]}…)"
    elif action == "evidence.registered":
        acq = d.get("acquisition") or {}
        what = (f"Registered exhibit {exhibit}: {d.get('description')};"
                f" seal {d.get('seal') or '-'};"
                f" seized from {d.get('seized_from') or '-'} at {d.get('seized_at') or '-'};"
                f" SHA-256 {acq.get('sha256')}; stated hashes: {acq.get('result')}")
        why = d.get("authority") or ""
    elif action == "custody.transferred":
        what = f"Released {ex} to {d.get('to')}"
    elif action == "custody.received":
        what = f"Received {ex} from {_who(d.get('from'))} (acknowledges entry" \
               f" {d.get('transfer_seq')})"
        why = d.get("note") or ""
    elif action == "custody.checked_out":
        what = f"Checked out {ex} from {d.get('from_location') or 'store'}"
    elif action == "custody.checked_in":
        what = f"Checked in {ex}"
        why = d.get("note") or ""
    elif action == "custody.note":
        what = f"Note on {ex}: {d.get('text')}"
    elif action == "evidence.verified":
        what = f"Re-verified image hashes of {ex}: {str(d.get('result', '')).upper()}"
    elif action == "acquisition.hashed":
        what = f"Hashed image: SHA-256 {d.get('sha256')}"
    elif action == "acquisition.compared":
        what = f"Compared stated hashes: {d.get('result')} ({d.get('compared')} compared)"
    elif action == "batch.analysed":
        what = (f"Analysed batch {s.get('batch_id')}: {d.get('files')} files, Merkle root"
                f" {str(d.get('merkle_root'))[:16]}…")
    elif action == "triage.started":
        what = f"Triage started: {d.get('command', '')}"
    elif action == "evidence.reopened":
        what = f"Reopened already registered {ex} ({d.get('note', '')})"
    elif action == "volumes.found":
        what = (f"Found {len(d.get('volumes') or [])} volumes"
                f" ({d.get('partition_table') or 'no partition table'})")
    elif action == "filesystem.walked":
        what = (f"Walked {d.get('fs_type')} filesystem at byte {s.get('volume_offset')}:"
                f" {d.get('entries')} entries")
    elif action == "volume.skipped":
        what = f"Volume at byte {s.get('volume_offset')} not walked ({d.get('status')})"
    elif action == "batches.planned":
        what = f"Planned {d.get('batches')} batches: {d.get('files')} files"
    elif action == "analysis.started":
        what = f"Analysis started: {d.get('batches')} batches, {d.get('files')} files"
    elif action in ("hashset.loaded", "hashset.imported"):
        what = f"Loaded hash set {d.get('name') or d.get('path') or ''} (SHA-256 {d.get('sha256')})"
    elif action == "matches.found":
        what = f"Matched against known hashes: {d.get('files', d.get('matched_files', ''))}"
    elif action in ("export.written", "report.written"):
        what = f"Wrote {d.get('format', 'report')} export, SHA-256 {d.get('sha256')}"
    elif action == "ledger.exported":
        what = f"Exported custody record ({d.get('format')}), SHA-256 {d.get('sha256')}"
    elif action == "triage.nothing_examined":
        what = str(d.get("statement") or f"Nothing examined ({d.get('kind')})")
        if d.get("allowed"):
            what += " Accepted by the examiner (--allow-empty)."
    elif action in ("triage.completed", "triage.interrupted"):
        what = f"Triage {action.split('.')[1]}: {d.get('files')} files, {d.get('errors')} errors"
    else:
        what = action
    if d.get("stated_time"):
        what += f" (stated time {d['stated_time']})"
    return what, where, why


# -- pdf ---------------------------------------------------------------------------------


def build_pdf(case: Case, verification: CaseVerification) -> bytes:
    from pipeline.outputs.custody_export.pdf import render_pdf

    return render_pdf(case, verification, _entries(case, verification), _evidence(case))


# -- CASE/UCO ----------------------------------------------------------------------------


def build_case(case: Case, verification: CaseVerification) -> bytes:
    from pipeline.outputs.custody_export.case_uco import render_case

    return render_case(case, verification, _entries(case, verification), _evidence(case))
