"""Matching: the index equals brute force; the sample triage finds every planted copy.

Acceptance (issue 4): a triage of the sample image with the sample sets finds every
planted exact match and every planted altered copy (resized, recompressed, mirrored,
PNG-converted), and nothing else; the summary and the exports carry category labels.
The expectations come from the generator's own tables (``make_photos.ALTERED``) and the
sets' files, never from exhibit's output.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pipeline_helpers import REPO, exhibit, export_jsonl, icat, ledger_entries, triage
from test_hashsets import make_nsrl

from pipeline.matching.index import (
    SMALL_INDEX_BYTES,
    HammingIndex,
    brute_force,
    hex_to_words,
    words_to_hex,
)
from pipeline.matching.known import Thresholds

sys.path.insert(0, str(REPO / "sample_data"))
from make_photos import ALTERED

SAMPLE = REPO / "sample_data"
EXACT_SETS = (SAMPLE / "known_hashes.txt", SAMPLE / "known_hashes.csv")
MEDIA_SETS = (SAMPLE / "known_media.csv", SAMPLE / "known_media_vics.json")


# ----------------------------------------------------------------------------- the index


def _clustered(rng: np.random.Generator, n: int, words: int, spread: int) -> np.ndarray:
    """Hashes in tight clusters (like near-duplicate photos), not uniform noise."""
    centres = rng.integers(0, 2**64, (max(1, n // 20), words), dtype=np.uint64)
    rows = centres[rng.integers(0, len(centres), n)]
    for _ in range(spread):
        word = rng.integers(0, words, n)
        bit = rng.integers(0, 64, n).astype(np.uint64)
        flip = (rng.random(n) < 0.5).astype(np.uint64) << bit
        rows[np.arange(n), word] ^= flip
    return rows


@pytest.mark.parametrize(("n", "words", "radius", "parts"), [
    (50_000, 1, 10, None), (50_000, 1, 10, 4), (50_000, 1, 10, 5), (20_000, 1, 0, None),
    (20_000, 1, 3, 3), (30_000, 4, 31, None), (30_000, 4, 31, 3), (30_000, 4, 12, 4),
    (500, 1, 10, None), (500, 4, 31, None), (4_000, 4, 31, None), (3_000, 1, 0, None),
    (12_000, 4, 31, None), (800, 4, 140, None), (700, 2, 40, None),  # scans: pruned or not
])
def test_index_answers_exactly_what_brute_force_answers(n: int, words: int, radius: int,
                                                        parts: int | None) -> None:
    rng = np.random.default_rng(n + words + radius)
    known = _clustered(rng, n, words, spread=radius + 6)
    near = known[rng.integers(0, n, 150)].copy()
    near[:, 0] ^= np.uint64(0b1011)  # 3 bits away from a known hash
    edge = known[rng.integers(0, n, 50)].copy()  # exactly `radius` bits away, the first
    for word in range(words):  # words first: where the candidates' first checks look
        flips = min(64, radius - 64 * word)
        if flips > 0:
            edge[:, word] ^= np.uint64((1 << flips) - 1)
    queries = np.vstack([near, edge, _clustered(rng, 150, words, spread=radius + 6),
                         rng.integers(0, 2**64, (100, words), dtype=np.uint64)])
    index = HammingIndex(known, radius, parts_per_word=parts)
    got = index.search(queries)
    want = brute_force(known, queries, radius)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(want[0]) >= (150 if radius >= 3 else 0) + 50  # real neighbours and the edge
    assert (want[2] == radius).sum() >= 50
    if radius >= 3:
        smaller = index.search(queries, radius=radius - 3)
        for a, b in zip(smaller, brute_force(known, queries, radius - 3), strict=True):
            np.testing.assert_array_equal(a, b)


def test_index_memory_is_a_small_multiple_of_the_hashes() -> None:
    rng = np.random.default_rng(1)
    for n, words, radius in ((1_000_000, 1, 10), (300_000, 1, 10), (200_000, 4, 31)):
        known = rng.integers(0, 2**64, (n, words), dtype=np.uint64)
        index = HammingIndex(known, radius)
        assert index.describe()["method"] == "multi-index hashing"
        assert index.nbytes <= 3 * known.nbytes, index.describe()


def test_a_few_thousand_pdq_hashes_get_sixteen_bit_tables() -> None:
    """The near-duplicate grouping's case (a card's photos): an index, not a scan, with
    substrings wide enough for nearly empty buckets, in a small absolute memory bound."""
    rng = np.random.default_rng(7)
    known = _clustered(rng, 5_500, 4, spread=20)
    index = HammingIndex(known, 31)
    layout = index.describe()
    assert layout["method"] == "multi-index hashing"
    assert set(layout["substring_bits"]) == {16} and len(layout["substring_bits"]) == 16
    assert index.nbytes <= SMALL_INDEX_BYTES
    queries = np.vstack([known[:300] ^ np.uint64(0b111), _clustered(rng, 300, 4, spread=20)])
    for a, b in zip(index.search(queries), brute_force(known, queries, 31), strict=True):
        np.testing.assert_array_equal(a, b)


def test_index_refuses_bad_arguments() -> None:
    known = np.zeros(10, dtype=np.uint64)
    with pytest.raises(ValueError, match="uint64"):
        HammingIndex(np.zeros(10, dtype=np.int64), 3)
    with pytest.raises(ValueError, match="radius"):
        HammingIndex(known, -1)
    with pytest.raises(ValueError, match="built for radius"):
        HammingIndex(known, 3).search(known, radius=4)
    with pytest.raises(ValueError, match="16 hex digits"):
        hex_to_words(["abc"], 64)


def test_hex_round_trip() -> None:
    values = ["83b99b7a51a71ca4", "0000000000000001"]
    words = hex_to_words(values, 64)
    assert [words_to_hex(row) for row in words] == values
    pdq = "da814e257a8d7b62c9d36f3159c279718ec3b7b28c3c9170aac592af556c02ce"
    assert words_to_hex(hex_to_words([pdq], 256)[0]) == pdq


def test_threshold_validation() -> None:
    assert Thresholds().pdq == 31 and Thresholds().pdq_quality == 50
    with pytest.raises(ValueError, match="phash threshold"):
        Thresholds(phash=40)
    with pytest.raises(ValueError, match="pdq_quality"):
        Thresholds(pdq_quality=101)


# ----------------------------------------------------------------------------- the sample


@pytest.fixture(scope="module")
def sample_case(sample_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("matching")
    readme = icat(sample_raw, 86016, 27)  # Documents/report.txt: the "known-good" file
    nsrl = make_nsrl(tmp / "RDS_modern_minimal.db", [readme, b"not on the image"])
    case = tmp / "case"
    sets = [*EXACT_SETS, *MEDIA_SETS, nsrl]
    proc = triage(sample_raw, case, *[a for s in sets for a in ("--hashset", s)])
    return {"case": case, "stdout": proc.stdout, "records": export_jsonl(case),
            "readme_sha256": hashlib.sha256(readme).hexdigest(), "sets": sets}


def _exact_expected(records: list[dict[str, Any]]) -> set[str]:
    known: set[str] = set()
    for line in EXACT_SETS[0].read_text().splitlines():
        value = line.split("#")[0].strip().lower()
        if value:
            known.add(value)
    for row in csv.DictReader(io.StringIO(EXACT_SETS[1].read_text())):
        known.add(row["sha256"].lower())
    return {r["path"] for r in records if {r["md5"], r["sha1"], r["sha256"]} & known}


def test_sample_triage_finds_every_planted_copy_and_nothing_else(
        sample_case: dict[str, Any]) -> None:
    records = sample_case["records"]
    alert = {r["path"]: [m for m in r["matches"] if not m["known_good"]] for r in records}
    matched = {path for path, ms in alert.items() if ms}
    altered = {"/" + target for target, _, _ in ALTERED}
    exact = _exact_expected(records)
    assert altered and exact
    assert matched == exact | altered
    known = {row["description"].split()[3]: row
             for row in csv.DictReader(io.StringIO(MEDIA_SETS[0].read_text()))}
    for target, source, what in ALTERED:
        ms = [m for m in alert["/" + target] if m["hashset"] == "known_media.csv"]
        assert ms, (target, what)
        assert {m["category"] for m in ms} == {known[source]["category"]}
        assert {m["category_label"] for m in ms} == {known[source]["category_label"]}
        assert all(m["algorithm"] in ("phash", "dhash", "pdq") and m["known_id"]
                   for m in ms)
        vics = [m for m in alert["/" + target] if m["hashset"] == "known_media_vics.json"]
        assert vics and {m["known_id"] for m in vics}.isdisjoint({m["known_id"] for m in ms})
    mirrored = [m for m in alert["/Saved/IMG_mirrored.jpg"] if m["algorithm"] == "pdq"]
    assert mirrored and all(m["variant"] == "flip_y" and m["distance"] <= 31
                            for m in mirrored)


def test_summary_and_ledger_show_matches_by_category(sample_case: dict[str, Any]) -> None:
    out = sample_case["stdout"]
    assert "Sample category 1 (known series)" in out
    assert "near (altered) copies" in out and "near-duplicate groups" in out
    entries = ledger_entries(sample_case["case"])
    found = next(e for e in entries if e["action"] == "matches.found")["details"]
    assert set(found["near"]) == {"phash", "dhash", "pdq"}
    assert found["thresholds"] == {"phash": 8, "dhash": 8, "pdq": 31, "pdq_quality": 50}
    completed = next(e for e in entries if e["action"] == "triage.completed")["details"]
    assert completed["near_matches"] == len(ALTERED)
    assert completed["known_hash_matches_by_category"]["Sample category 2"] == 1
    assert completed["known_good_files"] == 1
    loaded = [e["details"] for e in entries if e["action"] == "hashset.loaded"]
    assert {d["format"] for d in loaded} == {"plain", "csv", "vics", "nsrl"}


def test_known_good_files_are_marked(sample_case: dict[str, Any]) -> None:
    (report,) = [r for r in sample_case["records"] if r["path"] == "/Documents/report.txt"]
    assert report["sha256"] == sample_case["readme_sha256"]
    assert [m["known_good"] for m in report["matches"]] == [True] * len(report["matches"])
    assert {m["algorithm"] for m in report["matches"]} == {"md5", "sha1", "sha256"}


def test_series_groups_the_two_copies_of_one_photo(sample_case: dict[str, Any]) -> None:
    import sqlite3

    conn = sqlite3.connect(sample_case["case"] / "case.sqlite")
    rows = conn.execute("SELECT f.path, g.group_id, g.size FROM media_groups g"
                        " JOIN files f ON f.id = g.file_id ORDER BY f.path").fetchall()
    conn.close()
    copies = sorted("/" + t for t, s, _ in ALTERED if s == "KNOWN_A1.jpg")
    assert [r[0] for r in rows] == copies
    assert len({r[1] for r in rows}) == 1 and {r[2] for r in rows} == {2}


def test_rerun_adds_no_duplicate_matches(sample_case: dict[str, Any],
                                         sample_raw: Path) -> None:
    before = export_jsonl(sample_case["case"])
    triage(sample_raw, sample_case["case"],
           *[a for s in sample_case["sets"] for a in ("--hashset", s)])
    assert export_jsonl(sample_case["case"]) == before


def test_found_media_exports_import_back(sample_case: dict[str, Any], tmp_path: Path) -> None:
    case = sample_case["case"]
    vics_path, csv_path = tmp_path / "found.json", tmp_path / "matches.csv"
    exhibit("hashset", "export", case, "--format", "vics", "-o", vics_path)
    exhibit("hashset", "export", case, "--format", "csv", "-o", csv_path)
    doc = json.loads(vics_path.read_text())
    assert doc["@odata.context"].startswith("http://github.com/VICSDATAMODEL/ProjectVic/"
                                            "DataModels/2.0.xml")
    media = doc["value"][0]["Media"]
    altered_names = {Path(t).name for t, _, _ in ALTERED}
    assert altered_names <= {f["FileName"] for m in media for f in m["MediaFiles"]}
    assert all(m["IsPrecategorized"] for m in media)
    assert not any(f["FilePath"] == "/Documents/report.txt"
                   for m in media for f in m["MediaFiles"])  # known-good is not "found"
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert {r["path"] for r in rows} >= {"/" + t for t, _, _ in ALTERED}
    fresh = tmp_path / "other-case"
    exhibit("hashset", "import", vics_path, "--case", fresh, "--name", "found")
    exhibit("hashset", "import", csv_path, "--case", fresh, "--name", "matches")
    listed = {s["name"]: s for s in json.loads(
        exhibit("hashset", "list", "--case", fresh, "--json").stdout)}
    assert listed["found"]["counts"]["entries"] == len(media)
    assert listed["found"]["counts"]["pdq"] == len(media)
    assert listed["matches"]["counts"]["entries"] == len(rows)
    actions = [e["action"] for e in ledger_entries(case)]
    assert actions.count("export.written") >= 2


def test_the_match_counts_read_the_matches_not_every_file(tmp_path: Path) -> None:
    """The summary's and the matcher's counts cost what the matches cost: on an evidence of
    20,000 files with two matches, SQLite's progress handler sees a few hundred virtual
    machine steps, not a pass over the files (left to itself the planner read every file
    into the matches, issue 18)."""
    from pipeline.case.database import CaseDatabase
    from pipeline.case.summary import summarize
    from pipeline.matching.match import _summary

    db = CaseDatabase(tmp_path / "case.sqlite")
    try:
        db.conn.execute("PRAGMA foreign_keys=OFF")
        db.conn.executemany(
            "INSERT INTO files (id, entry_key, evidence_id, volume_index, volume_offset,"
            " fs_type, inode, path, name, size, kind, allocated, notes)"
            " VALUES (?, ?, ?, 0, 0, 'ext4', ?, ?, ?, 1, 'file', 1, '[]')",
            [(i, f"k{i}", "ev-a" if i % 2 else "ev-b", i, f"/f{i}", f"f{i}")
             for i in range(1, 20_001)])
        db.conn.executescript(
            "INSERT INTO hashsets (id, name, sha256, source, format, counts, loaded_at, kind)"
            " VALUES (1, 'bad', 'aa', 's', 'f', '{}', 't', 'alert'),"
            " (2, 'good', 'bb', 's', 'f', '{}', 't', 'known-good');"
            "INSERT INTO matches (file_id, hashset_id, algorithm, distance, category,"
            " known_value) VALUES (7, 1, 'md5', 0, '1', 'x'), (9, 1, 'pdq', 12, '1', 'y'),"
            " (8, 2, 'sha1', 0, NULL, 'z');")
        steps = 0

        def step() -> int:
            nonlocal steps
            steps += 1
            return 0

        db.conn.set_progress_handler(step, 100)
        summary = summarize(db, "ev-a", counts={})
        matched = _summary(db, "ev-a")
        db.conn.set_progress_handler(None, 100)
        assert (summary["known_hash_matches"], summary["near_matches"],
                summary["known_good_files"]) == (2, 1, 0)
        assert summary["known_hash_matches_by_category"] == {"1": 2}
        assert matched["files_matched"] == 2
        assert set(matched["by_hashset"]) == {"bad"}
        assert steps * 100 < 5_000, steps  # one pass over the files: > 100,000 steps
    finally:
        db.close()
