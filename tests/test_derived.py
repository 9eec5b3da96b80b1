"""Evidence inside files: archives expanded on the workers, every member a full entry.

The image is built here with real tools (``zip``, ``mke2fs -d``): pictures in a zip, a
zip renamed ``.dll``, zips nested past the depth limit, an encrypted member, a member
named with ``../``, and a zip bomb. The oracle for every member is the file that was
put in: same bytes, so the same MD5 as ``md5sum`` of the source.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import require_tool, sha256_file
from pipeline_helpers import REPO, exhibit, export_jsonl, ledger_entries, triage

sys.path.insert(0, str(REPO / "sample_data"))
from make_photos import draw_picture

NEST = 11  # zips inside zips: past the default depth limit of 8


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _jpeg(seed: int, directory: Path) -> Path:
    path = directory / f"photo{seed}.jpg"
    draw_picture((96, 64), seed).save(path, "JPEG", quality=85)
    return path


@pytest.fixture(scope="module")
def archives_image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    for tool in ("zip", "mke2fs", "md5sum"):
        require_tool(tool)
    work = tmp_path_factory.mktemp("derived")
    src, root = work / "src", work / "root"
    src.mkdir()
    (root / "docs").mkdir(parents=True)
    photos = [_jpeg(seed, src) for seed in range(1, 5)]
    md5 = {p.name: subprocess.run(["md5sum", p], capture_output=True, text=True,
                                  check=True).stdout.split()[0] for p in photos}

    def zip_tool(target: Path, *members: Path, extra: tuple[str, ...] = ()) -> None:
        subprocess.run(["zip", "-q", "-j", *extra, str(target), *map(str, members)],
                       check=True)

    zip_tool(root / "docs" / "holiday.zip", photos[0], photos[1])
    zip_tool(work / "renamed.zip", photos[2])
    (work / "renamed.zip").rename(root / "docs" / "helper.dll")
    zip_tool(root / "docs" / "locked.zip", photos[3], extra=("-P", "secret"))
    # Nested NEST deep: level 0 holds photo 1, each level above holds the one below.
    inner = work / "level0.zip"
    zip_tool(inner, photos[0])
    for level in range(1, NEST):
        outer = work / f"level{level}.zip"
        zip_tool(outer, inner)
        inner = outer
    inner.rename(root / "docs" / "nested.zip")
    with zipfile.ZipFile(root / "docs" / "traversal.zip", "w") as archive:
        archive.write(photos[1], "../../etc/evil.jpg")
    # A bomb: 1 GiB of zeros in about 1 MB.
    with zipfile.ZipFile(root / "docs" / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("zeros.bin", "w", force_zip64=True) as member:
        block = bytes(1 << 20)
        for _ in range(1024):
            member.write(block)
    image = work / "archives.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(root), str(image), "16M"],
                   check=True)
    image.chmod(0o444)
    case = work / "case"
    before = sha256_file(image)
    triage(image, case)
    return {"image": image, "case": case, "md5": md5, "before": before,
            "rows": export_jsonl(case), "entries": ledger_entries(case)}


def _by_path(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["path"]: row for row in rows}


def test_members_are_entries_with_the_bytes_that_were_put_in(archives_image: dict) -> None:
    rows, md5 = _by_path(archives_image["rows"]), archives_image["md5"]
    for name in ("photo1.jpg", "photo2.jpg"):
        row = rows[f"/docs/holiday.zip//{name}"]
        assert row["md5"] == md5[name]
        assert row["mime"] == "image/jpeg"
        assert row["derived_from"] == "/docs/holiday.zip"
        assert row["derivation"]["method"] == "zip"
        assert row["derivation"]["inner"] == name
        assert row["phash"] is not None  # every analyzer ran on the member
    # Found by content, whatever the name says.
    assert rows["/docs/helper.dll//photo3.jpg"]["md5"] == md5["photo3.jpg"]
    # A hostile member name is data: shown, never followed.
    assert rows["/docs/traversal.zip//../../etc/evil.jpg"]["md5"] == md5["photo2.jpg"]


def test_nesting_is_followed_to_the_depth_limit_and_the_cut_is_recorded(
        archives_image: dict) -> None:
    rows = archives_image["rows"]
    nested = sorted((r for r in rows if r["path"].startswith("/docs/nested.zip//")),
                    key=lambda r: r["path"].count("//"))
    assert len(nested) == 8  # one member per level, the 8th not opened
    deepest = nested[-1]
    assert deepest["path"].count("//") == 8
    assert [e["error"] for e in deepest["errors"]] == ["LimitExceeded"]
    assert "limit is 8" in deepest["errors"][0]["message"]
    assert deepest["derived_from"] == nested[-2]["path"]


def test_an_encrypted_member_is_listed_and_said_to_be_unreadable(archives_image: dict) -> None:
    row = _by_path(archives_image["rows"])["/docs/locked.zip//photo4.jpg"]
    assert row["md5"] is None
    assert row["errors"][0]["error"] == "Skipped"
    assert "encrypted" in row["errors"][0]["message"]


def test_a_zip_bomb_is_cut_by_the_ratio_limit(archives_image: dict) -> None:
    rows = _by_path(archives_image["rows"])
    bomb = rows["/docs/bomb.zip"]
    limit = [e for e in bomb["errors"] if e["error"] == "LimitExceeded"]
    assert limit and "decompression bomb" in limit[0]["message"]
    member = rows["/docs/bomb.zip//zeros.bin"]
    assert member["md5"] is None and member["errors"][0]["error"] == "Skipped"
    assert not (archives_image["case"] / "scratch").exists()  # spool files are gone


def test_custody_covers_derived_entries_and_the_evidence_is_untouched(
        archives_image: dict) -> None:
    batches = [e for e in archives_image["entries"] if e["action"] == "batch.analysed"]
    derived = sum((b["details"].get("derived") or {}).get("entries", 0) for b in batches)
    rows = archives_image["rows"]
    assert derived == sum(1 for r in rows if r["derived_from"] is not None) > 10
    started = next(e for e in archives_image["entries"] if e["action"] == "triage.started")
    assert started["details"]["expand"]["limits"]["depth"] == 8
    exhibit("ledger", "verify", archives_image["case"], "-q")
    assert sha256_file(archives_image["image"]) == archives_image["before"]


def test_a_second_run_resumes_without_duplicating_derived_entries(archives_image: dict) -> None:
    triage(archives_image["image"], archives_image["case"])
    assert export_jsonl(archives_image["case"]) == archives_image["rows"]


def test_without_expansion_nothing_is_derived(archives_image: dict, tmp_path: Path) -> None:
    triage(archives_image["image"], tmp_path / "case", "--no-expand")
    rows = export_jsonl(tmp_path / "case")
    assert not [r for r in rows if r["derived_from"]]
    assert {r["path"] for r in rows} == {r["path"] for r in archives_image["rows"]
                                         if not r["derived_from"]}
