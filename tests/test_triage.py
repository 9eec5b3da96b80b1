"""End to end: ``exhibit triage`` on the sample image, checked against the reference tools.

Oracles: The Sleuth Kit's ``fls``/``icat`` for the walk and file content, coreutils'
digests and ``hashdeep`` for hashes, ``file`` for MIME types, ``exiftool -n`` for EXIF.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import require_tool, sha256_file
from pipeline_helpers import (
    REPO,
    exhibit,
    export_jsonl,
    fls_entries,
    icat,
    ledger_entries,
    triage,
)
from test_ingest_images import make_fat, run

from ingest.location import decode_name, encode_name

HASHSETS = (REPO / "sample_data" / "known_hashes.txt", REPO / "sample_data" / "known_hashes.csv")


@pytest.fixture(scope="session")
def raw_case(sample_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    before = sha256_file(sample_raw)
    mtime = sample_raw.stat().st_mtime_ns
    case = tmp_path_factory.mktemp("raw") / "case"
    hs_args = [a for h in HASHSETS for a in ("--hashset", str(h))]
    proc = triage(sample_raw, case, *hs_args)
    return {"case": case, "stdout": proc.stdout, "records": export_jsonl(case),
            "before": before, "mtime": mtime}


def _by_key(records: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {(r["volume_offset"], r["inode"], r["path"], r["allocated"]): r for r in records}


def test_summary_is_printed(raw_case: dict[str, Any]) -> None:
    out = raw_case["stdout"]
    for label in ("volumes", "filesystems", "files", "deleted entries", "images",
                  "type mismatches", "known-hash matches", "errors", "elapsed"):
        assert label in out


def test_evidence_is_unchanged(raw_case: dict[str, Any], sample_raw: Path) -> None:
    assert sha256_file(sample_raw) == raw_case["before"]
    assert sample_raw.stat().st_mtime_ns == raw_case["mtime"]


def test_walk_equals_fls_on_every_filesystem(raw_case: dict[str, Any], sample_raw: Path) -> None:
    require_tool("fls")
    records = [r for r in raw_case["records"] if not r["path"].startswith("/$Unallocated/")]
    offsets = sorted({r["volume_offset"] for r in records})
    assert len(offsets) >= 2, "the sample image has a FAT32 and an ext4 volume"
    for offset in offsets:
        ours = {(encode_name(r["path"].lstrip("/")), r["inode"], r["allocated"])
                for r in records if r["volume_offset"] == offset and r["stream"] is None}
        assert ours == fls_entries(sample_raw, offset // 512)
    assert any(not r["allocated"] for r in records), "deleted entries are walked"


def test_paths_are_rooted_and_names_lossless(raw_case: dict[str, Any]) -> None:
    records = raw_case["records"]
    assert all(r["path"].startswith("/") for r in records)
    assert all(r["path"].rsplit("/", 1)[-1] == r["name"] for r in records)
    undecodable = [r for r in records if "\\x" in r["name"]]
    assert undecodable, "the sample holds a file name that is not valid UTF-8"
    for r in undecodable:
        raw = encode_name(r["name"])
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        assert decode_name(raw) == r["name"]


def test_hashes_equal_icat(raw_case: dict[str, Any], sample_raw: Path) -> None:
    require_tool("icat")
    checked = 0
    for r in raw_case["records"]:
        if r["kind"] != "file" or r["md5"] is None:
            continue
        data = icat(sample_raw, r["volume_offset"] // 512, r["inode"])
        assert r["md5"] == hashlib.md5(data).hexdigest(), r["path"]
        assert r["sha1"] == hashlib.sha1(data).hexdigest(), r["path"]
        assert r["sha256"] == hashlib.sha256(data).hexdigest(), r["path"]
        checked += 1
    assert checked >= 10


def test_hashes_equal_hashdeep(raw_case: dict[str, Any], sample_raw: Path,
                               tmp_path: Path) -> None:
    require_tool("hashdeep")
    files = [r for r in raw_case["records"] if r["kind"] == "file" and r["allocated"]
             and r["md5"] and not r["name"].startswith("$")][:8]
    for i, r in enumerate(files):
        (tmp_path / f"{i}.bin").write_bytes(icat(sample_raw, r["volume_offset"] // 512,
                                                 r["inode"]))
    out = subprocess.run(["hashdeep", "-c", "md5,sha1,sha256", "-b", *sorted(
        str(p) for p in tmp_path.iterdir())], capture_output=True, text=True, check=True).stdout
    rows = {line.split(",")[-1]: line.split(",") for line in out.splitlines()
            if line and not line.startswith(("%", "#"))}
    for i, r in enumerate(files):
        size, md5, sha1, sha256, _ = rows[f"{i}.bin"]
        assert (int(size), md5, sha1, sha256) == (r["size"], r["md5"], r["sha1"], r["sha256"])


def test_mime_equals_file(raw_case: dict[str, Any], sample_raw: Path) -> None:
    require_tool("file")
    checked = 0
    for r in raw_case["records"]:
        if r["kind"] != "file" or r["mime"] is None or r["name"].startswith("$"):
            continue
        data = icat(sample_raw, r["volume_offset"] // 512, r["inode"])
        mime = subprocess.run(["file", "-b", "--mime-type", "-"], input=data,
                              capture_output=True, check=True).stdout.decode().strip()
        assert r["mime"] == mime, r["path"]
        checked += 1
    assert checked >= 10


def test_extension_mismatch_flags_renamed_jpeg(raw_case: dict[str, Any]) -> None:
    flagged = [r for r in raw_case["records"] if r["extension_mismatch"]]
    assert any(r["name"].endswith(".txt") and r["mime"] == "image/jpeg" for r in flagged)
    jpgs = [r for r in raw_case["records"] if r["name"].upper().endswith(".JPG")
            and r["mime"] == "image/jpeg"]
    assert jpgs and not any(r["extension_mismatch"] for r in jpgs)


def test_exif_equals_exiftool(raw_case: dict[str, Any], sample_raw: Path) -> None:
    require_tool("exiftool")
    photos = [r for r in raw_case["records"] if r["exif"] is not None]
    assert len(photos) >= 4
    with_gps = 0
    for r in photos:
        data = icat(sample_raw, r["volume_offset"] // 512, r["inode"])
        tool = json.loads(subprocess.run(["exiftool", "-n", "-j", "-"], input=data,
                                         capture_output=True, check=True).stdout)[0]
        exif = r["exif"]
        assert exif["make"] == tool.get("Make")
        assert exif["model"] == tool.get("Model")
        assert exif["datetime_original"] == tool.get("DateTimeOriginal")
        assert exif["orientation"] == tool.get("Orientation")
        assert exif["has_thumbnail"] == ("ThumbnailImage" in tool or "ThumbnailOffset" in tool)
        if "GPSLatitude" in tool:
            with_gps += 1
            assert exif["gps_latitude"] == pytest.approx(tool["GPSLatitude"], abs=1e-6)
            assert exif["gps_longitude"] == pytest.approx(tool["GPSLongitude"], abs=1e-6)
            assert exif["gps_altitude"] == pytest.approx(tool["GPSAltitude"], abs=0.01)
        else:
            assert exif["gps_latitude"] is None
    assert with_gps >= 2


def test_perceptual_hashes_for_images(raw_case: dict[str, Any]) -> None:
    images = [r for r in raw_case["records"] if (r["mime"] or "").startswith("image/")]
    assert images
    for r in images:
        if not r["errors"]:
            assert len(r["phash"]) == 16 and len(r["dhash"]) == 16, r["path"]


def test_known_hash_matches(raw_case: dict[str, Any]) -> None:
    """Every value in the sample lists that equals a file digest is reported, no others."""
    known: dict[str, set[str]] = {"md5": set(), "sha1": set(), "sha256": set()}
    lengths = {32: "md5", 40: "sha1", 64: "sha256"}
    for line in HASHSETS[0].read_text().splitlines():
        value = line.split("#")[0].strip().lower()
        if len(value) in lengths:
            known[lengths[len(value)]].add(value)
    csv_lines = HASHSETS[1].read_text().splitlines()[1:]
    known["sha256"] |= {ln.split(",")[0].strip().lower() for ln in csv_lines if ln.strip()}
    expected = {r["path"] for r in raw_case["records"]
                if any(r[a] in known[a] for a in known if r[a])}
    matched = {r["path"] for r in raw_case["records"] if r["matches"]}
    assert expected and matched == expected
    categories = {m["category"] for r in raw_case["records"] for m in r["matches"]}
    assert categories - {None}, "the CSV set's categories are carried into matches"


def test_ledger_verifies_and_records_every_step(raw_case: dict[str, Any]) -> None:
    case = raw_case["case"]
    proc = exhibit("ledger", "verify", case)
    assert proc.stdout.startswith("OK: ")
    actions = [e["action"] for e in ledger_entries(case)]
    for action in ("case.created", "triage.started", "hashset.loaded", "acquisition.hashed",
                   "acquisition.compared", "evidence.registered", "volumes.found",
                   "filesystem.walked", "batches.planned", "batch.analysed", "matches.found",
                   "triage.completed", "export.written"):
        assert action in actions, action


def test_batch_entries_cover_every_result(raw_case: dict[str, Any]) -> None:
    """The Merkle roots in the ledger match the result records in the database."""
    import sqlite3

    from chain_of_custody.merkle import leaf_hash, merkle_root

    case = raw_case["case"]
    roots = {e["subject"]["batch_id"]: e["details"]["merkle_root"]
             for e in ledger_entries(case) if e["action"] == "batch.analysed"}
    conn = sqlite3.connect(case / "case.sqlite")
    for batch_id, root in roots.items():
        records = [json.loads(rec) for (rec,) in conn.execute(
            "SELECT record FROM results WHERE batch_id = ? ORDER BY leaf_index", (batch_id,))]
        assert merkle_root([leaf_hash(r) for r in records]) == root
    analysed = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    files = conn.execute("SELECT COUNT(*) FROM files WHERE kind = 'file' OR id IN"
                         " (SELECT file_id FROM carve_ranges)").fetchone()[0]
    assert analysed == files


def test_every_result_names_location_and_analyzer_versions(raw_case: dict[str, Any]) -> None:
    import sqlite3

    conn = sqlite3.connect(raw_case["case"] / "case.sqlite")
    for (text,) in conn.execute("SELECT record FROM results"):
        record = json.loads(text)
        loc = record["location"]
        assert {"evidence_id", "volume_offset", "inode", "path", "fs_type"} <= loc.keys()
        assert record["analyzers"]["hashes"]
    for (worker,) in conn.execute("SELECT worker FROM batches"):
        libraries = json.loads(worker)["libraries"]
        assert libraries["pillow"] and libraries["libtsk"]


def test_split_and_e01_give_identical_results(raw_case: dict[str, Any], sample_split: list[Path],
                                              sample_e01: Path,
                                              tmp_path: Path) -> None:
    expected = raw_case["records"]
    hs_args = [a for h in HASHSETS for a in ("--hashset", str(h))]
    triage(sample_split[0], tmp_path / "split", *hs_args)
    assert export_jsonl(tmp_path / "split") == expected
    proc = triage(sample_e01, tmp_path / "e01", *hs_args)
    assert export_jsonl(tmp_path / "e01") == expected
    compared = next(e for e in ledger_entries(tmp_path / "e01") if e["action"] ==
                "acquisition.compared")["details"]["comparisons"]
    container_md5 = [c for c in compared if c["source"] == "container" and c["algorithm"] == "md5"]
    assert len(container_md5) == 1 and container_md5[0]["status"] == "match"
    assert "verified" in proc.stdout
    hashed = {name: next(e for e in ledger_entries(tmp_path / name)
                         if e["action"] == "acquisition.hashed")["details"]
              for name in ("split", "e01")}
    # The E01's media (every worker's reads, the hash's) came through the system's libewf.
    assert hashed["e01"]["media_read_by"] == "libewf-system"
    assert "media_read_by" not in hashed["split"]


def test_stated_hash_mismatch_fails_loudly(sample_raw: Path, tmp_path: Path) -> None:
    wrong = "0" * 32
    proc = triage(sample_raw, tmp_path / "c", "--expect-md5", wrong, check=False)
    assert proc.returncode == 1
    assert "hash" in proc.stderr.lower()
    actions = [e["action"] for e in ledger_entries(tmp_path / "c")]
    # The hash runs beside the analysis: batches may come before the comparison, none after
    # the refusal, and the run never completes.
    assert actions.index("acquisition.compared") < actions.index("triage.refused")
    assert "batch.analysed" not in actions[actions.index("triage.refused"):]
    assert "triage.completed" not in actions
    exhibit("ledger", "verify", tmp_path / "c")
    proc = triage(sample_raw, tmp_path / "d", "--expect-md5", wrong, "--allow-hash-mismatch")
    entries = ledger_entries(tmp_path / "d")
    assert any(e["action"] == "acquisition.mismatch_allowed" for e in entries)
    assert any(e["action"] == "triage.completed" for e in entries)


def test_stated_hash_match_is_recorded(sample_raw: Path, tmp_path: Path) -> None:
    md5 = hashlib.md5(sample_raw.read_bytes()).hexdigest()
    triage(sample_raw, tmp_path / "c", "--expect-md5", md5, "--analyzers", "hashes")
    compared = next(e for e in ledger_entries(tmp_path / "c")
                if e["action"] == "acquisition.compared")["details"]
    assert compared["result"] == "match"
    assert compared["comparisons"] == [{"algorithm": "md5", "expected": md5, "computed": md5,
                                        "status": "match", "source": "examiner"}]


def test_unknown_input_is_rejected_clearly(tmp_path: Path) -> None:
    empty = tmp_path / "empty.dd"
    empty.write_bytes(b"")
    proc = triage(empty, tmp_path / "c", check=False)
    assert proc.returncode == 3
    assert "empty.dd" in proc.stderr and "Traceback" not in proc.stderr
    proc = triage(tmp_path / "missing.E01", tmp_path / "c", check=False)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr


def test_rerun_resumes_without_duplicates(raw_case: dict[str, Any], sample_raw: Path) -> None:
    case = raw_case["case"]
    before = ledger_entries(case)
    triage(sample_raw, case)
    after = ledger_entries(case)
    new_actions = [e["action"] for e in after[len(before):]]
    assert "batch.analysed" not in new_actions
    assert "evidence.reopened" in new_actions
    assert export_jsonl(case) == raw_case["records"]


def test_csv_export_neutralises_formulas(raw_case: dict[str, Any], tmp_path: Path) -> None:
    import csv

    out = tmp_path / "files.csv"
    exhibit("export", raw_case["case"], "--format", "csv", "-o", out)
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert len(rows) == len(raw_case["records"])
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "@", "\t", "\r")) or value == "", value
    formula_names = [r for r in raw_case["records"] if r["name"].startswith("=")]
    assert formula_names, "the sample holds a file named like a spreadsheet formula"
    assert any(row["name"] == "'" + formula_names[0]["name"] for row in rows)


# -- input exhibit cannot read: said first, recorded, non-zero exit ----------------------

UNREADABLE = {  # qemu-img output format or how the input is made -> the kind stated
    "vdi": "VirtualBox VDI", "random": "unknown",  # APFS is read now: tests/test_apfs.py
}


@pytest.fixture(scope="module")
def unreadable(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny FAT image, and the same image in containers exhibit does not read (VMDK,
    VHD, VHDX and QCOW2 it does read: tests/test_ingest_vdisk.py)."""
    tmp = tmp_path_factory.mktemp("unreadable")
    made = {"fat": make_fat(tmp / "fat.img", 4, fat="12")}
    for fmt in ("vdi",):
        made[fmt] = tmp / f"fat.{fmt}"
        run("qemu-img", "convert", "-f", "raw", "-O", fmt, str(made["fat"]), str(made[fmt]))
    made["random"] = tmp / "random.dd"
    made["random"].write_bytes(hashlib.shake_256(b"not a disk").digest(3 << 20))
    # An MBR disk whose one partition holds a BitLocker-looking volume (its OEM id).
    made["mbr"] = tmp / "mbr.dd"
    made["mbr"].write_bytes(bytes(4 << 20))
    run("sfdisk", "-q", str(made["mbr"]), stdin=b"label: dos\nstart=2048, type=7\n")
    with made["mbr"].open("r+b") as fh:
        fh.seek(2048 * 512)
        fh.write(b"\xeb\x58\x90-FVE-FS-" + b"\x5a" * 500)
    return made


def _nothing_examined(case: Path) -> list[dict[str, Any]]:
    return [e for e in ledger_entries(case) if e["action"] == "triage.nothing_examined"]


@pytest.mark.parametrize("fmt", sorted(UNREADABLE))
def test_unreadable_image_exits_6_and_says_what_it_looks_like(
        unreadable: dict[str, Path], tmp_path: Path, fmt: str) -> None:
    image, case = unreadable[fmt], tmp_path / "case"
    proc = triage(image, case, check=False)
    assert proc.returncode == 6, proc.stderr
    statement = ("Nothing examined: no volume or filesystem could be read; the image looks"
                 f" like: {UNREADABLE[fmt]}.")
    assert statement in proc.stderr and "Traceback" not in proc.stderr
    table = proc.stdout.splitlines()
    first_row = next(i for i, line in enumerate(table) if "│" in line)
    assert "NOTHING EXAMINED" in table[first_row] and UNREADABLE[fmt].split()[0] in proc.stdout
    assert first_row < next(i for i, line in enumerate(table) if "media SHA-256" in line)
    (entry,) = _nothing_examined(case)
    assert entry["details"]["kind"] == UNREADABLE[fmt]
    assert entry["details"]["statement"] == statement and entry["details"]["allowed"] is False
    hashed = [e for e in ledger_entries(case) if e["action"] == "acquisition.hashed"]
    assert hashed[0]["details"]["sha256"] == sha256_file(image)  # still hashed, recorded
    completed = [e for e in ledger_entries(case) if e["action"] == "triage.completed"]
    assert completed[-1]["details"]["nothing_examined"]["kind"] == UNREADABLE[fmt]
    exhibit("ledger", "verify", case)


def test_unreadable_image_resumed_and_allowed(unreadable: dict[str, Path],
                                              tmp_path: Path) -> None:
    """A resumed run says and exits the same; --allow-empty exits 0, still recorded."""
    case = tmp_path / "case"
    first = triage(unreadable["vdi"], case, check=False)
    again = triage(unreadable["vdi"], case, check=False)
    assert first.returncode == again.returncode == 6
    assert again.stderr == first.stderr
    allowed = triage(unreadable["vdi"], case, "--allow-empty")
    assert "Nothing examined" in allowed.stderr and "NOTHING EXAMINED" in allowed.stdout
    entries = _nothing_examined(case)
    assert [e["details"]["allowed"] for e in entries] == [False, False, True]
    assert len({e["details"]["statement"] for e in entries}) == 1
    assert [e["action"] for e in ledger_entries(case)].count("evidence.reopened") == 2
    exhibit("ledger", "verify", case)
    pdf = tmp_path / "custody.pdf"  # the court's custody report states it too
    exhibit("ledger", "export", case, "--format", "pdf", "-o", pdf)
    text = " ".join(subprocess.run([require_tool("pdftotext"), str(pdf), "-"], check=True,
                                   capture_output=True, text=True).stdout.split())
    assert text.count("Nothing examined") == 3 and "VDI" in text
    assert text.count("Accepted by the examiner (--allow-empty)") == 1


def test_unreadable_partition_is_named(unreadable: dict[str, Path], tmp_path: Path) -> None:
    proc = triage(unreadable["mbr"], tmp_path / "case", check=False)
    assert proc.returncode == 6
    assert ("the image holds an MBR partition table: volume 2 at byte 1,048,576 looks like:"
            " BitLocker encrypted volume.") in proc.stderr


def test_readable_control_is_examined(unreadable: dict[str, Path], tmp_path: Path) -> None:
    """The FAT image the containers were made from: examined, exit 0, nothing to state."""
    proc = triage(unreadable["fat"], tmp_path / "case")
    assert "NOTHING EXAMINED" not in proc.stdout and "1 walked: fat12" in proc.stdout
    assert not _nothing_examined(tmp_path / "case")


def test_the_image_hash_runs_beside_the_walk_and_a_mismatch_still_stops_the_run(
        tmp_path: Path) -> None:
    """1 GiB to hash, a few files to walk: the walk does not wait for the hash; the
    stated hash's mismatch is recorded when the hash ends, refuses the run there, and a
    re-run the examiner allows finishes without hashing again."""
    image = make_fat(tmp_path / "big.dd", 1024, "32")
    before = sha256_file(image)
    case = tmp_path / "case"
    wrong = ["--expect-md5", "0" * 32, "--carve", "none"]
    proc = triage(image, case, *wrong, check=False)
    assert proc.returncode == 1 and "hash" in proc.stderr.lower()
    actions = [e["action"] for e in ledger_entries(case)]
    order = [actions.index(a) for a in ("evidence.registered", "acquisition.started",
                                        "volumes.found", "batches.planned",
                                        "acquisition.hashed", "acquisition.compared",
                                        "triage.refused")]
    assert order == sorted(order), actions
    assert "batch.analysed" not in actions[actions.index("triage.refused"):]
    assert "triage.completed" not in actions
    hashed = next(e for e in ledger_entries(case) if e["action"] == "acquisition.hashed")
    assert hashed["details"]["sha256"] == before
    exhibit("ledger", "verify", case)

    triage(image, case, *wrong, "--allow-hash-mismatch")
    again = [e["action"] for e in ledger_entries(case)][len(actions):]
    assert "acquisition.started" not in again and "acquisition.hashed" not in again
    assert again.index("acquisition.mismatch_allowed") < again.index("triage.completed")
    rows = export_jsonl(case)
    assert {r["path"] for r in rows if r["kind"] == "file"} >= {"/A/B/PAYLOAD.BIN"}
    assert {r["evidence_sha256"] for r in rows} == {before}
    assert sha256_file(image) == before
