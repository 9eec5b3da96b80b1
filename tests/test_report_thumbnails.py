"""Thumbnails are made during triage, stored by SHA-256, ledgered, and carry no metadata."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool
from PIL import Image
from pipeline_helpers import REPO, ledger_entries, triage

from analyzers.registry import create
from analyzers.run import analyze_bytes
from analyzers.thumbnail import SIDE
from chain_of_custody.merkle import leaf_hash, merkle_root


@pytest.fixture(scope="module")
def case(sample_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = tmp_path_factory.mktemp("thumbs") / "case"
    triage(sample_raw, case, "--hashset", REPO / "sample_data" / "known_hashes.txt")
    return case


def _results(case: Path) -> list[tuple[str, dict]]:
    conn = sqlite3.connect(case / "case.sqlite")
    rows = conn.execute("SELECT f.path, r.record FROM results r JOIN files f"
                        " ON f.id = r.file_id ORDER BY f.id").fetchall()
    conn.close()
    return [(path, json.loads(record)) for path, record in rows]


def test_every_image_has_a_stored_thumbnail(case: Path) -> None:
    stated = {}
    for path, record in _results(case):
        findings = record["findings"]
        assert "blob_base64" not in json.dumps(record), "bytes never enter the hashed record"
        if findings.get("filetype", {}).get("mime", "").startswith("image/"):
            stated[path] = findings["thumbnail"]["sha256"]
    assert len(stated) >= 9  # the sample's images, incl. the deleted and the misnamed one
    assert "/Pictures/vacation.txt" in stated and "/DCIM/100EXHIB/_MG_0007.JPG" in stated
    on_disk = {p.stem: p for p in (case / "thumbnails").iterdir()}
    assert set(on_disk) == set(stated.values())
    for digest, path in on_disk.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
        with Image.open(path) as img:
            assert img.format == "JPEG" and max(img.size) == SIDE


def test_thumbnails_are_upright_and_carry_no_metadata(case: Path) -> None:
    records = dict(_results(case))
    thumb = records["/DCIM/100EXHIB/IMG_0002.JPG"]["findings"]["thumbnail"]
    assert (thumb["width"], thumb["height"]) == (120, 160)  # 1024x768 with orientation 6
    path = case / "thumbnails" / f"{thumb['sha256']}.jpg"
    tags = subprocess.run([require_tool("exiftool"), "-j", "-a", "-G1", str(path)],
                          capture_output=True, text=True, check=True).stdout
    data = json.loads(tags)[0]
    assert not [k for k in data if k.startswith(("[GPS]", "[IFD0]", "[ExifIFD]"))], data


def test_batches_ledger_the_thumbnails_they_wrote(case: Path) -> None:
    entries = [e for e in ledger_entries(case) if e["action"] == "batch.analysed"]
    ledgered = [d for e in entries for d in e["details"]["thumbnails"]["sha256"]]
    assert sum(e["details"]["thumbnails"]["count"] for e in entries) == len(ledgered)
    assert set(ledgered) == {p.stem for p in (case / "thumbnails").iterdir()}
    # the digest is inside the records the batch's Merkle root covers
    conn = sqlite3.connect(case / "case.sqlite")
    for entry in entries:
        batch_id = entry["subject"]["batch_id"]
        rows = conn.execute("SELECT record FROM results WHERE batch_id = ? ORDER BY"
                            " leaf_index", (batch_id,)).fetchall()
        leaves = [leaf_hash(json.loads(r[0])) for r in rows]
        assert merkle_root(leaves) == entry["details"]["merkle_root"]
    conn.close()


def test_thumbnail_is_deterministic_and_pure(tmp_path: Path) -> None:
    jpeg = Image.new("RGB", (1200, 900), (200, 30, 30))
    path = tmp_path / "red.jpg"
    jpeg.save(path, quality=90)
    data = path.read_bytes()
    from test_analyzers import entry

    runs = [analyze_bytes(data, entry("red.jpg", len(data)), create(["filetype", "thumbnail"]))
            for _ in range(2)]
    assert runs[0].findings["thumbnail"] == runs[1].findings["thumbnail"]
    assert runs[0].findings["thumbnail"]["width"] == SIDE
    assert runs[0].errors == []
