"""The custody ledger: canonical bytes, Merkle proofs, the chain, tampering, concurrency.

Every tamper test edits a real ledger on disk the way someone with a text editor would,
and checks that verification names the right entry and the right kind of damage.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chain_of_custody import (
    GENESIS_HASH,
    CanonicalizationError,
    CustodyLedger,
    LedgerError,
    TornLedgerError,
    canonical_bytes,
    entry_hash,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    read_entries,
    sha256_hex,
    verify_inclusion,
    verify_ledger,
)
from chain_of_custody.entry import ENTRY_FIELDS, signed_bytes
from chain_of_custody.keys import Signer

REPO = Path(__file__).resolve().parent.parent
ACTOR = {"user": "jdoe", "host": "ws-01"}  # added to what the key's identity says
# A fixed key, so spawned writer processes sign as the same examiner.
SIGNER = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32))),
                {"examiner_id": "jane-doe", "name": "Jane Doe"})
KEYS = {SIGNER.fingerprint: SIGNER.public_key}
TOOL: dict[str, Any] = {"name": "exhibit", "version": "0.1.0", "libraries": {"rfc8785": "0.1.4"}}
LOCATION = {
    "evidence_id": "ab" * 32,
    "volume_index": 0,
    "volume_offset": 1048576,
    "fs_type": "fat32",
    "inode": 7,
    "path": "/DCIM/IMG_0001.JPG",
    "stream": None,
}


# --- canonical form -------------------------------------------------------------------


def test_rfc8785_section_3_2_2_example() -> None:
    """The worked example of RFC 8785 §3.2.2, byte for byte."""
    source = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_bytes(json.loads(source)) == expected.encode("utf-8")


def test_keys_sort_by_utf16_code_units() -> None:
    """RFC 8785 §3.2.3: 😀 (surrogates D83D…) sorts before U+FB33, unlike code points."""
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    obj = {key: i for i, key in enumerate(keys)}
    order = [key for key in json.loads(canonical_bytes(obj))]
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_gps_floats_are_shortest_round_trip() -> None:
    gps = {"lat": 52.370216, "lon": -4.0, "alt": 1e-7, "big": 1e21, "zero": -0.0}
    data = canonical_bytes(gps)
    assert data == b'{"alt":1e-7,"big":1e+21,"lat":52.370216,"lon":-4,"zero":0}'
    assert json.loads(data)["lat"] == 52.370216


def test_non_ascii_and_escaped_names_round_trip() -> None:
    """UTF-8 stays literal; ingest's reversible ``\\xNN`` escapes are plain text."""
    name = "Ångström/日本語/caf\\xe9\\\\x.jpg"
    data = canonical_bytes({"path": name})
    assert data == ('{"path":"' + name.replace("\\", "\\\\") + '"}').encode("utf-8")
    assert json.loads(data)["path"] == name


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"path": "a\udcffb"}, "$.path"),
        ({"gps": [1.0, float("nan")]}, "$.gps[1]"),
        ({"size": 2**53}, "$.size"),
        ({"when": {1, 2}}, "$.when"),
        ({1: "x"}, "$"),
    ],
)
def test_non_json_values_are_refused_with_their_path(value: Any, where: str) -> None:
    with pytest.raises(CanonicalizationError) as info:
        canonical_bytes(value)
    assert str(info.value).startswith(where)
    assert isinstance(info.value, ValueError)


def test_sha256_hex_known_vector() -> None:
    assert sha256_hex(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


# --- Merkle trees ---------------------------------------------------------------------

# Certificate Transparency's reference test vectors (RFC 6962 trees over these inputs).
CT_INPUTS = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _ct_leaf(hex_input: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(hex_input)).digest()


@pytest.mark.parametrize("n", range(1, 9))
def test_merkle_root_matches_certificate_transparency_vectors(n: int) -> None:
    assert merkle_root([_ct_leaf(x) for x in CT_INPUTS[:n]]) == CT_ROOTS[n - 1]


def test_empty_tree_is_hash_of_empty_string() -> None:
    assert merkle_root([]) == hashlib.sha256(b"").hexdigest()


def test_leaf_hash_is_domain_separated_canonical_record() -> None:
    record = {"b": 1, "a": "x"}
    assert leaf_hash(record) == hashlib.sha256(b'\x00{"a":"x","b":1}').digest()


@pytest.mark.parametrize("n", range(1, 10))
def test_every_leaf_proves_and_tampering_fails(n: int) -> None:
    records = [{"location": dict(LOCATION, inode=i), "sha256": f"{i:064x}"} for i in range(n)]
    leaves = [leaf_hash(r) for r in records]
    root = merkle_root(leaves)
    for i, leaf in enumerate(leaves):
        proof = inclusion_proof(leaves, i)
        assert verify_inclusion(leaf, proof, root), (n, i)
        tampered = leaf_hash(dict(records[i], sha256="f" * 64))
        assert not verify_inclusion(tampered, proof, root)
        if n > 1:
            other = leaves[(i + 1) % n]
            assert not verify_inclusion(other, proof, root), "a proof must pin the position"
    if n > 1:
        changed = [*leaves]
        changed[n // 2] = leaf_hash({"forged": True})
        assert merkle_root(changed) != root


def test_malformed_proof_is_not_proof() -> None:
    leaves = [leaf_hash({"i": i}) for i in range(3)]
    root = merkle_root(leaves)
    proof = inclusion_proof(leaves, 0)
    assert not verify_inclusion(leaves[0], [dict(proof[0], side="up"), *proof[1:]], root)
    assert not verify_inclusion(leaves[0], [{"hash": "zz"}], root)
    with pytest.raises(ValueError):
        inclusion_proof(leaves, 3)
    with pytest.raises(ValueError):
        merkle_root([b"short"])


# --- writing and reading ----------------------------------------------------------------


def make_ledger(path: Path, count: int = 10) -> list[dict[str, Any]]:
    ledger = CustodyLedger(path, SIGNER, TOOL, ACTOR)
    written = [ledger.append("case.created", None, {"case": "2026-0042"})]
    for i in range(2, count + 1):
        written.append(ledger.append("batch.analysed", LOCATION, {"files": 1230 + i}))
    return written


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_append_read_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "case" / "custody.jsonl"
    path.parent.mkdir()
    ledger = CustodyLedger(path, SIGNER, TOOL, ACTOR)
    assert ledger.head == (0, GENESIS_HASH) == (0, "0" * 64)
    first = ledger.append("case.created", None, {"case": "2026-0042", "lat": 52.370216})
    second = ledger.append("evidence.registered", LOCATION, {"sha256": "ab" * 32})
    third = ledger.append("error")

    assert list(read_entries(path)) == [first, second, third]
    assert [e["seq"] for e in (first, second, third)] == [1, 2, 3]
    assert first["prev_hash"] == GENESIS_HASH
    assert second["prev_hash"] == first["hash"] and third["prev_hash"] == second["hash"]
    assert ledger.head == (3, third["hash"])
    assert CustodyLedger(path, SIGNER, TOOL, ACTOR).head == (3, third["hash"]), "reopen reads tail"

    assert list(first) == sorted(ENTRY_FIELDS)  # canonical order on disk and back
    assert first["v"] == 2
    assert first["actor"] == {**ACTOR, **SIGNER.actor()} and first["tool"] == TOOL
    assert first["actor"]["key_fingerprint"] == first["key_fingerprint"] == SIGNER.fingerprint
    assert first["host"] == socket.gethostname()
    assert second["subject"] == LOCATION and first["subject"] is None
    assert third["details"] == {}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first["time"])
    assert first["time"] <= second["time"] <= third["time"]
    for raw, entry in zip(lines_of(path), (first, second, third), strict=True):
        assert raw == canonical_bytes(entry) + b"\n"
        body = {k: v for k, v in entry.items() if k not in ("hash", "signature",
                                                            "key_fingerprint")}
        assert entry["hash"] == sha256_hex(canonical_bytes(body))
        SIGNER.public_key.verify(bytes.fromhex(entry["signature"]), canonical_bytes(body))
    assert (tmp_path / "case" / "custody.jsonl.lock").exists()
    assert verify_ledger(path, ledger.head, KEYS).ok


def test_group_append_is_consecutive_chained_and_synced_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Group commit (issue 17): several entries in one write and one fsync, each
    exactly what a single append would have written, the chain unbroken."""
    path = tmp_path / "custody.jsonl"
    ledger = CustodyLedger(path, SIGNER, TOOL, ACTOR)
    first = ledger.append("case.created", None, {"case": "2026-0042"})
    syncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (syncs.append(fd), real_fsync(fd))[1])
    group = ledger.append_many([("batch.analysed", LOCATION, {"files": n}) for n in (3, 1, 4)])
    assert len(syncs) == 1, "one fsync for the whole group"
    assert ledger.append_many([]) == [] and len(syncs) == 1
    last = ledger.append("triage.completed", LOCATION, {})
    entries = [first, *group, last]
    assert list(read_entries(path)) == entries
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert [e["details"].get("files") for e in group] == [3, 1, 4]
    for before, after in itertools.pairwise(entries):
        assert after["prev_hash"] == before["hash"]
    for raw, entry in zip(lines_of(path), entries, strict=True):
        assert raw == canonical_bytes(entry) + b"\n"
    assert verify_ledger(path, ledger.head, KEYS).ok
    # One bad step refuses the whole group before anything is written.
    before = path.read_bytes()
    with pytest.raises(CanonicalizationError):
        ledger.append_many([("batch.analysed", None, {"n": 1}),
                            ("batch.analysed", None, {"path": "bad\udcff"})])
    with pytest.raises(ValueError):
        ledger.append_many([("batch.analysed", None, {}), ("Not An Action", None, {})])
    assert path.read_bytes() == before


def test_seal_fields_are_outside_the_hash(tmp_path: Path) -> None:
    """A future signature can be added to an entry without changing its hash."""
    entry = make_ledger(tmp_path / "l.jsonl", 1)[0]
    sealed = dict(entry, signature="AAAA", key_fingerprint="SHA256:xyz")
    assert entry_hash(sealed) == entry["hash"]
    assert entry_hash(dict(entry, details={"case": "other"})) != entry["hash"]


def test_bad_arguments_leave_the_ledger_untouched(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    make_ledger(path, 2)
    before = path.read_bytes()
    ledger = CustodyLedger(path, SIGNER, TOOL, ACTOR)
    with pytest.raises(ValueError):
        ledger.append("Batch Analysed")
    with pytest.raises(CanonicalizationError):
        ledger.append("batch.analysed", None, {"path": "bad\udcff"})
    with pytest.raises(ValueError):
        CustodyLedger(path, SIGNER, TOOL, {"examiner": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="signed"):
        CustodyLedger(path, ACTOR, TOOL)  # type: ignore[arg-type]
    assert path.read_bytes() == before


def test_torn_last_line_refuses_open_and_append(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    make_ledger(path, 3)
    ledger = CustodyLedger(path, SIGNER, TOOL, ACTOR)
    data = path.read_bytes()
    path.write_bytes(data[:-40])
    with pytest.raises(TornLedgerError) as info:
        CustodyLedger(path, SIGNER, TOOL, ACTOR)
    assert info.value.offset == len(b"".join(lines_of(path)[:2]))
    with pytest.raises(TornLedgerError):
        ledger.append("error")  # opened before the tear: the append re-reads the tail
    with pytest.raises(TornLedgerError):
        list(read_entries(path))
    assert path.read_bytes() == data[:-40], "never repaired"

    path.write_bytes(data[:-40] + b"\n")  # newline present but the JSON is cut
    with pytest.raises(TornLedgerError):
        CustodyLedger(path, SIGNER, TOOL, ACTOR)


def test_edited_tail_refuses_append(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    make_ledger(path, 3)
    path.write_bytes(path.read_bytes().replace(b'"files":1233', b'"files":1234'))
    with pytest.raises(LedgerError, match="does not match its hash"):
        CustodyLedger(path, SIGNER, TOOL, ACTOR)


# --- tampering --------------------------------------------------------------------------


@pytest.fixture
def ledger10(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    path = tmp_path / "custody.jsonl"
    written = make_ledger(path, 10)
    report = verify_ledger(path, (10, written[-1]["hash"]), KEYS)
    assert report.ok and report.entries == 10 and report.first_bad_seq is None
    return path, written


def assert_fails(path: Path, seq: int, *phrases: str, head: tuple[int, str] | None = None) -> None:
    report = verify_ledger(path, head, KEYS)
    assert not report.ok
    assert report.first_bad_seq == seq, report.reason
    assert report.reason is not None
    for phrase in phrases:
        assert phrase in report.reason, report.reason
    assert report.entries == seq - 1


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def test_edited_byte_is_a_hash_mismatch(ledger10: tuple[Path, list[dict[str, Any]]]) -> None:
    path, _ = ledger10
    lines = lines_of(path)
    assert b'"files":1235' in lines[4]
    lines[4] = lines[4].replace(b'"files":1235', b'"files":1239')
    write_lines(path, lines)
    assert_fails(path, 5, "entry 5: hash mismatch (entry was edited)")


def test_deleted_line_is_a_sequence_gap(ledger10: tuple[Path, list[dict[str, Any]]]) -> None:
    path, _ = ledger10
    lines = lines_of(path)
    del lines[3]
    write_lines(path, lines)
    assert_fails(path, 4, "entry 4: sequence gap: expected 4, found 5 (entry removed)")


def test_swapped_lines_are_out_of_order(ledger10: tuple[Path, list[dict[str, Any]]]) -> None:
    path, _ = ledger10
    lines = lines_of(path)
    lines[2], lines[3] = lines[3], lines[2]
    write_lines(path, lines)
    assert_fails(path, 3, "entry 3: out of order: expected 3, found 4 (entries reordered)")


def test_truncated_last_line_is_torn(ledger10: tuple[Path, list[dict[str, Any]]]) -> None:
    path, _ = ledger10
    data = path.read_bytes()
    last_start = data.rindex(b"\n", 0, len(data) - 1) + 1
    path.write_bytes(data[: last_start + (len(data) - last_start) // 2])
    assert_fails(path, 10, "entry 10: truncated/torn final line")
    path.write_bytes(data[: last_start + 30] + b"\n")
    assert_fails(path, 10, "entry 10: truncated/torn final line")


def test_garbage_line_in_the_middle(ledger10: tuple[Path, list[dict[str, Any]]]) -> None:
    path, _ = ledger10
    lines = lines_of(path)
    lines[6] = lines[6][:50] + b"\n"
    write_lines(path, lines)
    assert_fails(path, 7, "line 7: not valid JSON")


def test_rewritten_in_non_canonical_form(ledger10: tuple[Path, list[dict[str, Any]]]) -> None:
    """Same content, different bytes: the line is no longer what was hashed and signed."""
    path, _ = ledger10
    lines = lines_of(path)
    lines[1] = json.dumps(json.loads(lines[1])).encode() + b"\n"
    write_lines(path, lines)
    assert_fails(path, 2, "entry 2: not in RFC 8785 canonical form")


def forge(entry: dict[str, Any], **changes: Any) -> bytes:
    """An entry changed, re-hashed and re-signed, as an insider holding the key could."""
    forged = dict(entry, **changes)
    forged["hash"] = entry_hash(forged)
    forged["signature"] = SIGNER.sign(signed_bytes(forged))
    return canonical_bytes(forged) + b"\n"


def test_forged_inserted_line_breaks_the_chain(
    ledger10: tuple[Path, list[dict[str, Any]]],
) -> None:
    path, written = ledger10
    lines = lines_of(path)
    # Well forged: correct seq and prev_hash, so it is the original entry 6 that breaks.
    bogus = forge(written[5], details={"files": 0})
    write_lines(path, [*lines[:5], bogus, *lines[5:]])
    assert_fails(path, 7, "entry 7: duplicate sequence number 6 (an entry was inserted")
    # Carelessly forged: its prev_hash does not link to entry 5.
    bogus = forge(written[5], prev_hash=written[2]["hash"])
    write_lines(path, [*lines[:5], bogus, *lines[5:]])
    assert_fails(path, 6, "entry 6: prev_hash does not match the hash of entry 5")
    # Replaced outright (same seq, re-hashed): the next entry no longer links to it.
    write_lines(path, [*lines[:5], forge(written[5], details={"files": 0}), *lines[6:]])
    assert_fails(path, 7, "entry 7: prev_hash does not match the hash of entry 6")


def test_time_going_backwards_is_flagged(ledger10: tuple[Path, list[dict[str, Any]]]) -> None:
    """A re-chained ledger whose clock stepped back at entry 6 still fails, at entry 6."""
    path, written = ledger10
    out, prev = [], GENESIS_HASH
    for entry in written:
        changes: dict[str, Any] = {"prev_hash": prev}
        if entry["seq"] == 6:
            changes["time"] = "2001-01-01T00:00:00.000000Z"
        line = forge(entry, **changes)
        prev = json.loads(line)["hash"]
        out.append(line)
    write_lines(path, out)
    assert_fails(path, 6, "entry 6: time goes backwards")


def test_deleted_last_line_needs_the_recorded_head(
    ledger10: tuple[Path, list[dict[str, Any]]],
) -> None:
    path, written = ledger10
    head = (10, written[-1]["hash"])
    write_lines(path, lines_of(path)[:-1])
    assert verify_ledger(path, keys=KEYS).ok, "the chain alone cannot see a cut end"
    assert_fails(
        path,
        10,
        "ledger ends at entry 9 but the case records 10 entries (entries removed from the end)",
        head=head,
    )


def test_recorded_head_with_other_hash_fails(
    ledger10: tuple[Path, list[dict[str, Any]]],
) -> None:
    path, written = ledger10
    assert verify_ledger(path, (8, written[7]["hash"]), KEYS).ok, "later entries may follow"
    assert_fails(
        path, 8, "entry 8: hash differs from the head the case recorded", head=(8, "f" * 64)
    )


# --- concurrency ------------------------------------------------------------------------


def _append_many(path: str, worker: int, count: int) -> None:
    """Worker 0 appends one entry at a time, worker 1 in groups of 1-5 (group commit)."""
    ledger = CustodyLedger(Path(path), SIGNER, TOOL, {"worker": f"worker-{worker}"})
    i = group = 0
    while i < count:
        size = 1 if worker == 0 else min(count - i, 1 + group % 5)
        ledger.append_many([("batch.analysed", None, {"worker": worker, "i": i + k,
                                                      "group": i, "size": size})
                            for k in range(size)])
        i += size
        group += 1


@pytest.mark.slow
def test_two_processes_never_fork_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "custody.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(path), w, 200)) for w in (0, 1)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0
    entries = list(read_entries(path))
    assert [e["seq"] for e in entries] == list(range(1, 401))
    report = verify_ledger(path, keys=KEYS)
    assert report.ok and report.entries == 400, report.reason
    for worker in (0, 1):
        mine = [e["details"]["i"] for e in entries if e["details"]["worker"] == worker]
        assert mine == list(range(200))
    groups: dict[int, list[int]] = {}
    sizes: dict[int, int] = {}
    for e in entries:
        if e["details"]["worker"] == 1:
            groups.setdefault(e["details"]["group"], []).append(e["seq"])
            sizes[e["details"]["group"]] = e["details"]["size"]
    assert max(sizes.values()) == 5
    for group, seqs in groups.items():  # whole, and never split by another writer
        assert len(seqs) == sizes[group]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


# --- command line -----------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chain_of_custody", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def write_key_dir(directory: Path, signer: Signer = SIGNER) -> None:
    """What a case keeps in keys/: the signer's self-signed public key record."""
    directory.mkdir(exist_ok=True)
    record = signer.public_record()
    (directory / f"{signer.fingerprint}.json").write_text(json.dumps(record), encoding="utf-8")


def test_cli_exit_codes(ledger10: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    path, written = ledger10
    head = f"10:{written[-1]['hash']}"
    result = run_cli("verify", str(path), "--expect-head", head)
    assert result.returncode == 1, "no keys/ beside the ledger: nothing can be trusted"
    assert "signed by unknown key" in result.stdout
    write_key_dir(tmp_path / "keys")
    result = run_cli("verify", str(path), "--expect-head", head)
    assert (result.returncode, result.stdout.splitlines()[-1]) == (0, "OK: 10 entries")
    assert f"signer: {SIGNER.fingerprint}  Jane Doe (jane-doe" in result.stdout
    assert run_cli("verify", str(path), "-q").stdout == "OK: 10 entries\n"

    write_lines(path, lines_of(path)[:-1])
    result = run_cli("verify", str(path), "--expect-head", head)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].startswith(
        "FAILED at entry 10: ledger ends at entry 9"), result.stdout
    assert run_cli("verify", str(path)).returncode == 0

    lines = lines_of(path)
    lines[4] = lines[4].replace(b'"files":1235', b'"files":1239')
    write_lines(path, lines)
    result = run_cli("verify", str(path), "-q")
    assert result.returncode == 1
    assert result.stdout == "FAILED at entry 5: hash mismatch (entry was edited)\n"

    assert run_cli("verify", str(tmp_path / "missing.jsonl")).returncode == 2
    assert run_cli("verify", str(path), "--expect-head", "ten:abc").returncode == 2
    assert run_cli().returncode == 2


def test_empty_ledger_verifies_and_reports_missing_entries(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    report = verify_ledger(path, (0, GENESIS_HASH), KEYS)
    assert report.ok and report.entries == 0
    assert_fails(
        path, 1, "ledger ends at entry 0 but the case records 3 entries", head=(3, "a" * 64)
    )


def test_read_entries_rejects_a_damaged_middle_line(
    ledger10: tuple[Path, list[dict[str, Any]]],
) -> None:
    path, _ = ledger10
    lines = lines_of(path)
    lines[2] = b"{not json\n"
    write_lines(path, lines)
    with pytest.raises(LedgerError, match="line 3 is not valid JSON") as info:
        list(read_entries(path))
    assert not isinstance(info.value, TornLedgerError)


def test_package_stands_alone() -> None:
    """A court's expert verifies with this package only: no exhibit layer gets imported."""
    code = (
        "import sys, chain_of_custody, chain_of_custody.__main__\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'ingest', 'analyzers', 'pipeline', 'dask', 'pytsk3', 'PIL'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
