"""Known-hash sets: every format imports and matches; malformed sets import nothing.

The NSRL database is built here in the RDSv3 schema as NIST ships it (FILE, MFG, OS, PKG,
VERSION and the DISTINCT_HASH view); the VICS files follow the OData shapes Project VIC
tools write (1.3: ``odata.metadata`` and Cases with ``Media[]``; 2.0: ``@odata.context``
and ``value[]`` of Media).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import exhibit, ledger_entries

from pipeline.case.store import Case
from pipeline.matching.formats import detect_format
from pipeline.matching.hashsets import import_hashset, list_hashsets, read_hashset
from pipeline.matching.known import HashSetError, classify
from pipeline.outputs.export import neutralise_cell

MD5 = hashlib.md5(b"a").hexdigest()
SHA1 = hashlib.sha1(b"b").hexdigest()
SHA256 = hashlib.sha256(b"c").hexdigest()
PHASH = "83b99b7a51a71ca4"
DHASH = "397b7ad294256dca"
PDQ = "da814e257a8d7b62c9d36f3159c279718ec3b7b28c3c9170aac592af556c02ce"

NSRL_SCHEMA = """
CREATE TABLE FILE (
 sha256 VARCHAR NOT NULL, sha1 VARCHAR NOT NULL, md5 VARCHAR NOT NULL,
 crc32 VARCHAR NOT NULL, file_name VARCHAR NOT NULL, file_size INTEGER NOT NULL,
 package_id INTEGER NOT NULL,
 CONSTRAINT PK_FILE__FILE PRIMARY KEY (sha256, sha1, md5, crc32, file_name, file_size,
                                       package_id));
CREATE TABLE MFG (manufacturer_id INTEGER NOT NULL, name VARCHAR NOT NULL,
 CONSTRAINT PK_MFG__MFG_ID PRIMARY KEY (manufacturer_id));
CREATE TABLE OS (operating_system_id INTEGER NOT NULL, name VARCHAR NOT NULL,
 version VARCHAR NOT NULL, manufacturer_id INTEGER NOT NULL,
 CONSTRAINT PK_OS__OS_ID PRIMARY KEY (operating_system_id, manufacturer_id));
CREATE TABLE PKG (package_id INTEGER NOT NULL, name VARCHAR NOT NULL,
 version VARCHAR NOT NULL, operating_system_id INTEGER NOT NULL,
 manufacturer_id INTEGER NOT NULL, language VARCHAR NOT NULL,
 application_type VARCHAR NOT NULL,
 CONSTRAINT PK_PGK__PKG_ID PRIMARY KEY (package_id, operating_system_id, manufacturer_id,
                                        language, application_type));
CREATE TABLE VERSION (version VARCHAR UNIQUE NOT NULL, build_set VARCHAR NOT NULL,
 build_date TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL, release_date TIMESTAMP NOT NULL,
 description VARCHAR NOT NULL, CONSTRAINT PK_VERSION__VERSION PRIMARY KEY (version));
CREATE VIEW DISTINCT_HASH AS SELECT DISTINCT sha256, sha1, md5, crc32 FROM FILE;
"""


def digests(data: bytes) -> tuple[str, str, str]:
    return (hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(),
            hashlib.sha256(data).hexdigest())


def make_nsrl(path: Path, files: list[bytes]) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(NSRL_SCHEMA)
    conn.execute("INSERT INTO MFG VALUES (1, 'Example Corp')")
    conn.execute("INSERT INTO OS VALUES (1, 'Windows', '11', 1)")
    conn.execute("INSERT INTO PKG VALUES (7, 'Office', '2016', 1, 1, 'English', 'Office')")
    conn.execute("INSERT INTO PKG VALUES (8, 'Office', '2019', 1, 1, 'English', 'Office')")
    conn.execute("INSERT INTO VERSION VALUES ('2025.03.1', 'modern', '2025-03-01',"
                 " '2025-03-15', 'RDS modern minimal')")
    for data in files:
        md5, sha1, sha256 = digests(data)
        for package in (7, 8):  # the same file in two packages: one distinct hash
            conn.execute("INSERT INTO FILE VALUES (?,?,?,?,?,?,?)",
                         (sha256.upper(), sha1.upper(), md5.upper(), "0000ABCD",
                          f"f{len(data)}.dll", len(data), package))
    conn.commit()
    conn.close()
    return path


def vics13(media: list[dict[str, Any]]) -> dict[str, Any]:
    return {"odata.metadata": "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Cases",
            "value": [{"CaseID": "c-1", "SourceApplicationName": "test", "Media": media}]}


def vics20(media: list[dict[str, Any]]) -> dict[str, Any]:
    return {"@odata.context": "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/"
                              "US/$metadata#Media", "value": media}


@pytest.fixture
def case(tmp_path: Path) -> Case:
    c = Case(tmp_path / "case", "Test Examiner")
    yield c
    c.close()


def table_counts(case: Case) -> tuple[int, int, int]:
    db = case.db
    return (db.count("SELECT COUNT(*) FROM hashsets"), db.count("SELECT COUNT(*) FROM"
            " known_entries"), db.count("SELECT COUNT(*) FROM known_hashes"))


# ----------------------------------------------------------------------------- plain / CSV


def test_plain_list_lenient_skips_and_counts_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "known.txt"
    path.write_text(f"# a comment\n{MD5.upper()}\n\n{SHA1}  # trailing comment\nnot-a-hash\n"
                    f"{SHA256}\n{MD5[:-1]}\n")
    hs = read_hashset(path, strict=False)
    assert hs.format == "plain" and hs.name == "known.txt"
    assert hs.entries == [("md5", MD5, None), ("sha1", SHA1, None), ("sha256", SHA256, None)]
    assert hs.rejected == [5, 7]
    assert hs.counts() == {"md5": 1, "sha1": 1, "sha256": 1, "rejected_lines": 2}
    assert hs.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_plain_list_strict_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "known.txt"
    path.write_text(f"{MD5}\n# comment\nnot-a-hash\n")
    with pytest.raises(HashSetError, match=r"line 3: 'not-a-hash' is not an MD5"):
        read_hashset(path)


def test_csv_with_named_hash_column_and_category(tmp_path: Path) -> None:
    path = tmp_path / "vics.csv"
    path.write_text(f"Description,SHA256,Category\nphoto,{SHA256},1\nbad row,zzz,2\n"
                    f"\"quoted, name\",{SHA256.upper()},\n")
    hs = read_hashset(path, name="set-A", strict=False)
    assert hs.format == "csv" and hs.name == "set-A"
    assert hs.entries == [("sha256", SHA256, "1"), ("sha256", SHA256, None)]
    assert hs.rejected == [3]
    with pytest.raises(HashSetError, match=r"vics.csv: line 3: sha256 value 'zzz'"):
        read_hashset(path)


def test_csv_with_perceptual_columns(tmp_path: Path) -> None:
    path = tmp_path / "media.csv"
    path.write_text("md5,phash,dhash,pdq,category,category_label,series,media_id\n"
                    f"{MD5},{PHASH.upper()},{DHASH},{PDQ},2,Known series,S-1,77\n"
                    f",,,{PDQ},,,,\n")
    hs = read_hashset(path)
    first, second = hs.known
    assert first.hashes == [("md5", MD5), ("phash", PHASH), ("dhash", DHASH), ("pdq", PDQ)]
    assert (first.category, first.series, first.media_id) == ("2", "S-1", "77")
    assert second.hashes == [("pdq", PDQ)] and second.category is None
    assert hs.counts()["pdq"] == 2


@pytest.mark.parametrize(("header", "row", "message"), [
    ("md5,pdq", f"{MD5},{PDQ[:-1]}", r"line 2: pdq value .* is not 64 hex digits"),
    ("phash,category", "0123456789abcdeg,1", r"line 2: phash value .* not 16 hex digits"),
    ("md5,category", f"{MD5},1,extra", r"line 2: 3 fields, the header has 2"),
    ("md5,category", ",1", r"line 2: no hash value in this row"),
    ("name,size", "a,1", r"line 1: 'name,size' is not an MD5"),  # no hash column: not CSV
    ("name,md5x,sha256", "a,1,", r"line 2: no hash value in this row"),
])
def test_malformed_csv_names_the_line(tmp_path: Path, header: str, row: str,
                                      message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(f"{header}\n{row}\n")
    with pytest.raises(HashSetError, match=message):
        read_hashset(path)


# ----------------------------------------------------------------------------- VICS


def test_vics_13_cases_with_media(tmp_path: Path) -> None:
    media = [
        {"MediaID": 1, "Category": 1, "MD5": MD5.upper(), "SHA1": SHA1.upper(),
         "IsPrecategorized": True, "Series": "Alpha", "MediaSize": 1234,
         "MediaFiles": [{"FileName": "a.jpg", "FilePath": "C:\\x\\a.jpg", "MD5": MD5}],
         "AlternativeHashes": [{"HashName": "SHA256", "HashValue": SHA256},
                               {"HashName": "PhotoDNA", "HashValue": "AAAA"}]},
        {"MediaID": 2, "Category": 0, "MD5": hashlib.md5(b"z").hexdigest()},
    ]
    path = tmp_path / "case13.json"
    path.write_text(json.dumps(vics13(media), indent=2))
    hs = read_hashset(path)
    assert (hs.format, hs.version) == ("vics", "1.3")
    first, second = hs.known
    assert first.ref == "value[0].Media[0]"
    assert first.hashes == [("md5", MD5), ("sha1", SHA1), ("sha256", SHA256)]
    assert (first.category, first.media_id, first.series, first.precategorized) == (
        "1", "1", "Alpha", True)
    assert first.details["MediaFiles"] == [{"FileName": "a.jpg", "FilePath": "C:\\x\\a.jpg"}]
    assert second.category == "0"  # category 0 is a category, not "none"


def test_vics_20_media_with_several_hashes(tmp_path: Path) -> None:
    media = [{"MediaID": 10, "Category": 3, "MD5": MD5, "SHA1": SHA1, "SHA256": SHA256,
              "PDQ": PDQ, "IsPrecategorized": "true", "Series": "",
              "MediaFiles": [{"FileName": "b.png", "FilePath": "/b.png"}]},
             {"MediaID": 11, "Category": 1, "PhotoDNA": "AAAA"}]
    path = tmp_path / "set20.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(vics20(media)).encode())  # with a BOM
    hs = read_hashset(path)
    assert (hs.format, hs.version) == ("vics", "2.0")
    (entry,) = hs.known
    assert dict(entry.hashes) == {"md5": MD5, "sha1": SHA1, "sha256": SHA256, "pdq": PDQ}
    assert entry.precategorized is True and entry.series is None


@pytest.mark.parametrize(("text", "message"), [
    ('{"@odata.context": "x/DataModels/2.0.xml", "value": [{"MD5": "12"}', r"line 1"),
    ('{"@odata.context": "x/DataModels/2.0.xml",\n "value": [\n  {"MediaID": 5, "MD5": "xyz"}]}',
     r"line 3 column 3: value\[0\] \(MediaID 5\): MD5: md5 value 'xyz'"),
    ('{"value": []}', r"not a Project VIC VICS file"),
    ('{"@odata.context": "x/DataModels/2.0.xml", "value": [3]}', r"expected '\{'"),
    ('{"odata.metadata": "x/DataModels/1.3.xml", "value": [{"Media": [{"MediaID": 1,'
     ' "AlternativeHashes": [{"HashName": "PDQ", "HashValue": "00"}]}]}]}',
     r"value\[0\].Media\[0\] \(MediaID 1\): pdq: pdq value '00'"),
])
def test_malformed_vics_names_the_record(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(HashSetError, match=message):
        read_hashset(path)


# ----------------------------------------------------------------------------- NSRL


def test_nsrl_rdsv3_imports_distinct_hashes_as_known_good(case: Case, tmp_path: Path) -> None:
    path = make_nsrl(tmp_path / "RDS_2025.03.1_modern_minimal.db", [b"one", b"two"])
    assert detect_format(path) == "nsrl"
    summary = import_hashset(case, path)
    assert (summary["format"], summary["version"], summary["kind"]) == (
        "nsrl", "2025.03.1", "known-good")
    assert summary["counts"]["entries"] == 2  # each file is in two packages: counted once
    assert summary["counts"]["sha256"] == 2 and summary["counts"]["md5"] == 2
    values = {r[0] for r in case.db.conn.execute(
        "SELECT value FROM known_hashes WHERE algorithm = 'sha256'")}
    assert values == {digests(b"one")[2], digests(b"two")[2]}  # lower case


def test_not_an_nsrl_database_is_refused(case: Case, tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE FILE (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(HashSetError, match="lacks md5, sha1, sha256"):
        import_hashset(case, path)


# ----------------------------------------------------------------------------- import


def test_malformed_set_imports_nothing_and_is_ledgered(case: Case, tmp_path: Path) -> None:
    good = [{"MediaID": i, "MD5": hashlib.md5(str(i).encode()).hexdigest(), "Category": 1}
            for i in range(30_000)]  # more than one insert batch before the bad record
    bad = [*good, {"MediaID": 99_999, "MD5": "not-hex"}]
    path = tmp_path / "big.json"
    path.write_text(json.dumps(vics20(bad)))
    with pytest.raises(HashSetError, match=r"value\[30000\] \(MediaID 99999\)"):
        import_hashset(case, path)
    assert table_counts(case) == (0, 0, 0)
    refused = [e for e in ledger_entries(case.directory) if e["action"] == "hashset.refused"]
    assert refused and "MediaID 99999" in refused[0]["details"]["reason"]
    assert refused[0]["details"]["imported"] == 0


def test_import_records_identity_and_is_idempotent(case: Case, tmp_path: Path) -> None:
    path = tmp_path / "set.json"
    path.write_text(json.dumps(vics20([{"MediaID": 1, "MD5": MD5, "Category": 1}])))
    first = import_hashset(case, path, name="national", source="unit test", version="7")
    again = import_hashset(case, path)
    assert again["already_loaded"] and again["id"] == first["id"]
    (listed,) = list_hashsets(case)
    assert (listed["name"], listed["version"], listed["kind"], listed["format"]) == (
        "national", "7", "alert", "vics")
    assert listed["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert listed["category_profile"] == "projectvic-us"
    loaded = [e for e in ledger_entries(case.directory) if e["action"] == "hashset.loaded"]
    assert len(loaded) == 1 and loaded[0]["details"]["sha256"] == listed["sha256"]


@pytest.mark.parametrize("kind", ["json", "csv", "builtin", "missing"])
def test_category_maps(case: Case, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "set.csv"
    path.write_text(f"md5,category\n{MD5},4\n")
    spec: str | Path
    if kind == "json":
        spec = tmp_path / "map.json"
        spec.write_text('{"4": "Four (custom)"}')
    elif kind == "csv":
        spec = tmp_path / "map.csv"
        spec.write_text("# value,label\n4,Four (custom)\n")
    elif kind == "builtin":
        spec = "projectvic-us"
    else:
        spec = tmp_path / "nope.json"
        with pytest.raises(HashSetError, match="neither a file nor one of"):
            import_hashset(case, path, category_map=spec)
        assert table_counts(case) == (0, 0, 0)
        return
    import_hashset(case, path, category_map=spec)
    (row,) = case.db.conn.execute("SELECT category_profile FROM hashsets")
    labels = json.loads(row[0])["labels"]
    assert labels["4"] == ("Comparison Images" if kind == "builtin" else "Four (custom)")
    (category,) = case.db.conn.execute("SELECT category FROM known_entries").fetchone()
    assert category == "4"  # the original value is kept


def test_a_large_plain_set_loads_lean(case: Case, tmp_path: Path) -> None:
    """100,000 SHA-256 values (6.5 MB): Python memory stays below half the file size.

    Streamed: one batch of rows is held at a time. (Speed is measured in
    benchmarks/matching/run.py; a wall-clock bound here would be flaky on shared CI.)
    """
    path = tmp_path / "large.txt"
    path.write_text("".join(hashlib.sha256(i.to_bytes(4, "big")).hexdigest() + "\n"
                            for i in range(100_000)))
    tracemalloc.start()
    summary = import_hashset(case, path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert summary["counts"]["sha256"] == 100_000
    assert peak < path.stat().st_size // 2, (peak, path.stat().st_size)


def test_cli_import_and_list(tmp_path: Path) -> None:
    path = tmp_path / "media.csv"
    path.write_text(f"sha256,pdq,category\n{SHA256},{PDQ},2\n")
    case_dir = tmp_path / "c"
    out = exhibit("hashset", "import", path, "--case", case_dir, "--name", "Sample")
    assert "imported Sample (csv" in out.stdout and "pdq 1" in out.stdout
    listed = json.loads(exhibit("hashset", "list", "--case", case_dir, "--json").stdout)
    assert [s["name"] for s in listed] == ["Sample"]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"sha256,category\n{SHA256},1\nnope,2\n")
    proc = exhibit("hashset", "import", bad, "--case", case_dir, check=False)
    assert proc.returncode == 2
    assert "line 3" in proc.stderr and "nothing was imported" in proc.stderr


# ----------------------------------------------------------------------------- small helpers


@pytest.mark.parametrize(("value", "algo"), [(MD5, "md5"), (SHA1, "sha1"), (SHA256, "sha256"),
                                             ("g" * 32, None), ("a" * 33, None), ("", None)])
def test_classify_by_length(value: str, algo: str | None) -> None:
    assert classify(value) == algo


@pytest.mark.parametrize("text", ["=1+2", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_csv_formula_cells_are_neutralised(text: str) -> None:
    assert neutralise_cell(text) == "'" + text


def test_numbers_and_plain_text_are_left_alone() -> None:
    assert neutralise_cell(-73.5) == -73.5
    assert neutralise_cell("report.txt") == "report.txt"
