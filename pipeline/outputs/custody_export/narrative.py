"""The custody narrative shared by the PDF and CASE/UCO exports: each ledger entry in words."""

from __future__ import annotations

from typing import Any


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
