"""Custody events and the court exports, through the real CLI on the real sample image.

An exhibit is registered as a custody form would record it (with a hostile description),
checked in and out, handed from one examiner to another (two keys, two signatures),
re-verified (same, different, unavailable), triaged, and exported: the JSON export
verifies with the standalone verifier, the PDF reads back through ``pdftotext`` with the
exhibit numbers, the hashes and the verdict, and the CASE/UCO export passes
``case_validate`` from case-utils.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import require_tool, sha256_file
from pipeline_helpers import EXAMINER, REPO, exhibit, ledger_entries, triage

HOSTILE = '<img src=x onerror=alert(1)> & =cmd|\' calc\'!A0 <b>bold</b> "Käse"'


def _second(root: Path) -> dict[str, str]:
    """Another examiner, with their own key in their own config directory."""
    home = root / "second-config"
    env = {"XDG_CONFIG_HOME": str(home), "EXHIBIT_EXAMINER": "det-b"}
    if not home.exists():
        exhibit("examiner", "init", "--name", "Det. Bea Smith", "--id", "det-b",
                "--agency", "County Forensic Unit", "--badge-id", "4471", env=env)
    return env


@pytest.fixture(scope="module")
def custody_case(sample_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("custody")
    case = root / "case"
    image = root / "card.dd"
    shutil.copyfile(sample_raw, image)
    sha256 = sha256_file(image)
    register = exhibit(
        "evidence", "register", case, image, "--exhibit-number", "EX-2026-0042/1",
        "--description", HOSTILE, "--seal", "S-88812", "--authority", "warrant no. 117/26",
        "--seized-from", "Flat 3, 12 High Street", "--seized-at", "2026-03-01T14:30+01:00",
        "--location", "Property room locker 7", "--expect-sha256", sha256)
    assert "stated sha256 (examiner): match" in register.stdout
    second = _second(root)
    steps = [
        (["custody", "check-in", case, "--exhibit-number", "EX-2026-0042/1",
          "--location", "Evidence store B, shelf 4", "--note", "seal S-88812 intact"], None),
        (["custody", "check-out", case, "--exhibit-number", "EX-2026-0042/1",
          "--purpose", "imaging", "--location", "Lab 2"], second),
        (["custody", "transfer", case, "--exhibit-number", "EX-2026-0042/1", "--to",
          "test-examiner", "--purpose", "analysis", "--location", "Lab 2",
          "--at", "2026-03-02T09:15:00Z"], second),
        (["custody", "receive", case, "--exhibit-number", "EX-2026-0042/1",
          "--note", "seal intact on receipt"], None),
        (["custody", "note", case, "--exhibit-number", "EX-2026-0042/1",
          "--text", HOSTILE], None),
    ]
    for args, env in steps:
        exhibit(*args, env=env)
    triage(image, case)
    exhibit("evidence", "verify", case)
    return {"root": root, "case": case, "image": image, "sha256": sha256, "second": second}


def test_registration_records_what_a_custody_form_does(custody_case: dict[str, Any]) -> None:
    entries = ledger_entries(custody_case["case"])
    registered = next(e for e in entries if e["action"] == "evidence.registered")
    details = registered["details"]
    assert details["exhibit_number"] == "EX-2026-0042/1"
    assert details["description"] == HOSTILE, "stored as given, escaped only when shown"
    assert details["seal"] == "S-88812" and details["authority"] == "warrant no. 117/26"
    assert details["seized_from"] == "Flat 3, 12 High Street"
    assert details["seized_at"] == "2026-03-01T14:30:00+01:00"
    assert details["collected_by"]["name"] == EXAMINER
    acquisition = details["acquisition"]
    assert acquisition["sha256"] == custody_case["sha256"]
    # The evidence is named by its containers, the triage found it by them (no second hash).
    triaged = [e for e in entries if e["action"].startswith(("evidence.", "acquisition."))
               and e["subject"].get("evidence_id") == registered["subject"]["evidence_id"]]
    assert [e["action"] for e in triaged][:2] == ["evidence.registered", "evidence.reopened"]
    assert "acquisition.started" not in [e["action"] for e in triaged]
    assert acquisition["result"] == "match"
    assert registered["actor"]["key_fingerprint"] == registered["key_fingerprint"]
    assert registered["subject"]["item_id"] == details["item_id"]


def test_a_transfer_is_signed_by_both_examiners(custody_case: dict[str, Any]) -> None:
    entries = ledger_entries(custody_case["case"])
    transfer = next(e for e in entries if e["action"] == "custody.transferred")
    received = next(e for e in entries if e["action"] == "custody.received")
    assert transfer["actor"]["examiner_id"] == "det-b"
    assert received["actor"]["examiner_id"] == "test-examiner"
    assert transfer["key_fingerprint"] != received["key_fingerprint"]
    assert transfer["details"]["to"] == "test-examiner"
    assert transfer["details"]["purpose"] == "analysis"
    assert transfer["details"]["stated_time"] == "2026-03-02T09:15:00+00:00"
    assert received["details"]["transfer_seq"] == transfer["seq"]
    assert received["details"]["transfer_hash"] == transfer["hash"]
    keys = sorted(p.stem for p in (custody_case["case"] / "keys").glob("*.json"))
    assert keys == sorted({transfer["key_fingerprint"], received["key_fingerprint"]})
    added = [e for e in entries if e["action"] == "examiner.key_added"]
    assert {e["details"]["public_key"]["name"] for e in added} == {EXAMINER, "Det. Bea Smith"}


def test_custody_steps_out_of_turn_are_refused(custody_case: dict[str, Any],
                                               tmp_path: Path) -> None:
    case = tmp_path / "case"
    shutil.copytree(custody_case["case"], case)
    before = (case / "ledger.jsonl").read_bytes()
    second = custody_case["second"]
    refused = [
        (["custody", "transfer", case, "--exhibit-number", "EX-2026-0042/1", "--to", "x",
          "--purpose", "p"], second, "held by 'test-examiner'"),
        (["custody", "check-out", case, "--exhibit-number", "EX-2026-0042/1",
          "--purpose", "p"], None, "is not in store"),
        (["custody", "receive", case, "--exhibit-number", "EX-2026-0042/1"], None,
         "no transfer awaiting"),
        (["custody", "note", case, "--exhibit-number", "NOPE", "--text", "t"], None,
         "no evidence item with exhibit number 'NOPE'"),
        (["evidence", "register", case, custody_case["image"], "--exhibit-number",
          "EX-2026-0042/1", "--description", "again"], None, "already registered"),
        (["custody", "check-in", case, "--exhibit-number", "EX-2026-0042/1",
          "--location", "x", "--at", "yesterday"], None, "is not ISO 8601"),
    ]
    for args, env, message in refused:
        result = exhibit(*args, env=env, check=False)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (message, result.stderr)
    assert (case / "ledger.jsonl").read_bytes() == before, "a refusal writes nothing"
    exhibit("custody", "transfer", case, "--exhibit-number", "EX-2026-0042/1", "--to",
            "det-b", "--purpose", "court")
    result = exhibit("custody", "receive", case, "--exhibit-number", "EX-2026-0042/1",
                     check=False)
    assert result.returncode == 2 and "addressed to 'det-b'" in result.stderr
    exhibit("custody", "receive", case, "--exhibit-number", "EX-2026-0042/1", env=second)
    listing = exhibit("evidence", "list", case).stdout
    assert "holder det-b" in listing and "verified: same" in listing


def test_evidence_verify_records_same_different_and_unavailable(
    custody_case: dict[str, Any], tmp_path: Path,
) -> None:
    entries = ledger_entries(custody_case["case"])
    same = [e for e in entries if e["action"] == "evidence.verified"]
    assert [e["details"]["result"] for e in same] == ["same"]
    assert same[0]["details"]["computed"]["sha256"] == custody_case["sha256"]

    image = tmp_path / "copy.dd"
    shutil.copyfile(custody_case["image"], image)
    case = tmp_path / "case"
    exhibit("evidence", "register", case, image, "--exhibit-number", "A1", "--description", "d")
    with image.open("r+b") as handle:  # one bit changes on the stored image
        handle.seek(5_000_000)
        byte = handle.read(1)
        handle.seek(5_000_000)
        handle.write(bytes([byte[0] ^ 1]))
    result = exhibit("evidence", "verify", case, check=False)
    assert result.returncode == 1 and "DIFFERENT" in result.stdout
    image.unlink()
    result = exhibit("evidence", "verify", case, check=False)
    assert result.returncode == 1 and "UNAVAILABLE" in result.stdout
    results = [e["details"]["result"] for e in ledger_entries(case)
               if e["action"] == "evidence.verified"]
    assert results == ["different", "unavailable"]
    exhibit("ledger", "verify", case)


def test_json_export_verifies_standalone_with_proofs(custody_case: dict[str, Any],
                                                     tmp_path: Path) -> None:
    case = custody_case["case"]
    export = tmp_path / "custody.json"
    exhibit("ledger", "export", case, "--format", "json", "-o", export)
    document = json.loads(export.read_text(encoding="utf-8"))
    assert document["verification"]["ok"] and document["verification"]["case_ok"]
    assert len(document["public_keys"]) == 2
    assert document["evidence"][0]["items"][0]["exhibit_number"] == "EX-2026-0042/1"
    proof = tmp_path / "proof.json"
    exhibit("ledger", "prove", case, "--path", "/DCIM/100EXHIB/IMG_0001.JPG", "-o", proof)
    # The standalone verifier needs only this package, cryptography and rfc8785: run it
    # from a directory holding a copy of chain_of_custody and nothing else of exhibit.
    alone = tmp_path / "alone"
    shutil.copytree(REPO / "chain_of_custody", alone / "chain_of_custody",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-m", "chain_of_custody.verify",
                             str(export), "--proof", str(proof)], cwd=alone, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Det. Bea Smith (det-b, County Forensic Unit)" in result.stdout
    assert result.stdout.splitlines()[-1] == f"OK: {len(document['entries'])} entries"
    fingerprints = [k["fingerprint"] for k in document["public_keys"]]
    result = subprocess.run([sys.executable, "-m", "chain_of_custody.verify", "-q",
                             str(export), "--trust", fingerprints[0]], cwd=alone, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "which is not trusted" in result.stdout


def test_pdf_report_reads_back(custody_case: dict[str, Any], tmp_path: Path) -> None:
    case = custody_case["case"]
    pdf = tmp_path / "custody.pdf"
    exhibit("ledger", "export", case, "--format", "pdf", "-o", pdf)
    text = subprocess.run([require_tool("pdftotext"), str(pdf), "-"],
                          capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())  # table cells wrap: compare words, and hashes unspaced
    dense = "".join(text.split())
    for needle in ("Chain of custody report", "VERIFIED", "EX-2026-0042/1", "S-88812",
                   "warrant no. 117/26", "Det. Bea Smith",
                   "Released exhibit EX-2026-0042/1 to test-examiner",
                   "Evidence store B, shelf 4", "Re-verified image hashes", "SAME"):
        assert needle in flat, needle
    assert "<img src=x onerror=alert(1)>" in flat, "hostile text shown literally"
    assert "Käse" in flat
    entries = ledger_entries(case)
    registered = next(e for e in entries if e["action"] == "evidence.registered")
    acquisition = registered["details"]["acquisition"]
    for digest in (acquisition["md5"], acquisition["sha1"], custody_case["sha256"]):
        assert digest in dense
    for entry in entries:  # every key fingerprint that signed is in the report
        assert entry["key_fingerprint"] in dense

    broken = tmp_path / "broken"
    shutil.copytree(case, broken)
    import sqlite3

    with sqlite3.connect(broken / "case.sqlite") as db:
        db.execute("UPDATE results SET md5 = ? WHERE rowid = 1", ("0" * 32,))
    exhibit("ledger", "export", broken, "--format", "pdf", "-o", pdf)
    text = subprocess.run([require_tool("pdftotext"), str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "VERIFICATION FAILED" in " ".join(text.split())


def test_case_uco_export_passes_case_validate(custody_case: dict[str, Any],
                                              tmp_path: Path) -> None:
    out = tmp_path / "custody.jsonld"
    exhibit("ledger", "export", custody_case["case"], "--format", "case", "-o", out)
    validate = Path(sys.executable).with_name("case_validate")
    assert validate.exists(), "case-utils is a test dependency (make test installs it)"
    result = subprocess.run([str(validate), str(out)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Conforms: True" in result.stdout
    graph = json.loads(out.read_text(encoding="utf-8"))["@graph"]
    types: dict[str, list[dict[str, Any]]] = {}
    for node in graph:
        for kind in node["@type"] if isinstance(node["@type"], list) else [node["@type"]]:
            types.setdefault(kind, []).append(node)
    assert len(types["case-investigation:Investigation"]) == 1
    record = types["case-investigation:ProvenanceRecord"][0]
    assert record["case-investigation:exhibitNumber"] == "EX-2026-0042/1"
    hashes = {h["uco-types:hashMethod"]: h["uco-types:hashValue"]["@value"]
              for h in types["uco-types:Hash"]}
    assert hashes["SHA256"] == custody_case["sha256"]
    actions = types["case-investigation:InvestigativeAction"]
    assert len(actions) == len(ledger_entries(custody_case["case"])) - 1  # not its own
    assert all("uco-action:performer" in a and "uco-action:instrument" in a for a in actions)
    assert {"uco-observable:File", "uco-observable:Disk"} <= types.keys()
