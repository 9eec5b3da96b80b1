"""Known-hash set parsing: plain lists and CSV, with nothing dropped silently."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline.export import neutralise_cell
from pipeline.hashsets import classify, read_hashset

MD5 = hashlib.md5(b"a").hexdigest()
SHA1 = hashlib.sha1(b"b").hexdigest()
SHA256 = hashlib.sha256(b"c").hexdigest()


def test_plain_list_with_comments_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "known.txt"
    path.write_text(f"# a comment\n{MD5.upper()}\n\n{SHA1}  # trailing comment\nnot-a-hash\n"
                    f"{SHA256}\n{MD5[:-1]}\n")
    hs = read_hashset(path)
    assert hs.format == "plain" and hs.name == "known.txt"
    assert hs.entries == [("md5", MD5, None), ("sha1", SHA1, None), ("sha256", SHA256, None)]
    assert hs.rejected == [5, 7]
    assert hs.counts() == {"md5": 1, "sha1": 1, "sha256": 1, "rejected_lines": 2}
    assert hs.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_csv_with_named_hash_column_and_category(tmp_path: Path) -> None:
    path = tmp_path / "vics.csv"
    path.write_text(f"Description,SHA256,Category\nphoto,{SHA256},1\nbad row,zzz,2\n"
                    f"\"quoted, name\",{SHA256.upper()},\n")
    hs = read_hashset(path, name="set-A")
    assert hs.format == "csv" and hs.name == "set-A"
    assert hs.entries == [("sha256", SHA256, "1"), ("sha256", SHA256, None)]
    assert hs.rejected == [3]


def test_empty_or_hashless_set_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "none.txt"
    path.write_text("# nothing here\nhello\n")
    with pytest.raises(ValueError, match="no MD5"):
        read_hashset(path)


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
