"""Evidence inside files: archives expanded on the workers, every member a full entry.

The image is built here with real tools (``zip``, ``tar``/``gzip``, ``7z``, ``gsf``,
``img2pdf``, ``mke2fs -d``, ``mkntfs``/``ntfscp``): pictures in a zip, a zip renamed
``.dll``, a tar.gz, a 7z, zip → tar.gz → zip, a .docx, an OLE .doc with a picture in its
``Data`` stream, a PDF, an e-mail attachment, a picture appended to random bytes, zips
nested past the depth limit, an encrypted member, a member named with ``../``, a zip
bomb, three fakes, and (on NTFS) a picture in an alternate data stream. The oracle for
every member is the file that was put in: same bytes, so the MD5 of ``md5sum``.
"""

from __future__ import annotations

import hashlib
import random
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
    # The acceptance set of the issue: one of each, each holding a known photo.
    run = lambda *cmd, cwd=None: subprocess.run(  # noqa: E731
        [str(c) for c in cmd], check=True, capture_output=True, cwd=cwd)
    run("tar", "czf", root / "docs" / "photos.tar.gz", "-C", src, "photo1.jpg", "photo2.jpg")
    run(require_tool("7z"), "a", "-bd", "-y", root / "docs" / "album.7z", photos[2])
    chain = work / "chain"
    chain.mkdir()
    zip_tool(chain / "inner.zip", photos[3])
    run("tar", "czf", chain / "bundle.tar.gz", "-C", chain, "inner.zip")
    zip_tool(root / "docs" / "chain.zip", chain / "bundle.tar.gz")
    docx = work / "docx"
    (docx / "word" / "media").mkdir(parents=True)
    (docx / "[Content_Types].xml").write_text('<?xml version="1.0"?><Types/>')
    (docx / "word" / "media" / "image1.jpeg").write_bytes(photos[0].read_bytes())
    run("zip", "-q", "-r", root / "docs" / "letter.docx", "[Content_Types].xml", "word",
        cwd=docx)
    junk = random.Random(7)
    ole = work / "ole"
    ole.mkdir()
    (ole / "WordDocument").write_bytes(junk.randbytes(9000))
    (ole / "Data").write_bytes(junk.randbytes(68) + photos[1].read_bytes() + bytes(300))
    run(require_tool("gsf"), "createole", root / "docs" / "report.doc", "WordDocument", "Data",
        cwd=ole)
    import img2pdf

    (root / "docs" / "scan.pdf").write_bytes(img2pdf.convert([str(photos[2])]))
    from email.message import EmailMessage

    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "a@example.org", "b@example.org", "pics"
    mail["Message-ID"] = "<1@example.org>"
    mail.set_content("see attached")
    mail.add_attachment(photos[3].read_bytes(), maintype="image", subtype="jpeg",
                        filename="party.jpg")
    (root / "docs" / "mail.eml").write_bytes(bytes(mail))
    for tool, suffix in (("bzip2", "bz2"), ("xz", "xz"), ("lzma", "lzma")):
        packed = work / f"{tool}.jpg"
        packed.write_bytes(photos[1].read_bytes())
        run(require_tool(tool), "-k", packed)
        (work / f"{tool}.jpg.{suffix}").rename(root / "docs" / f"{tool}.jpg.{suffix}")
    subprocess.run(f"ls photo3.jpg photo4.jpg | {require_tool('cpio')} -o -H newc --quiet"
                   f" > '{root / 'docs' / 'pics.cpio'}'", shell=True, check=True, cwd=src)
    (root / "docs" / "blob.dat").write_bytes(junk.randbytes(5000) + photos[0].read_bytes())
    (root / "docs" / "fake.jpg").write_bytes(junk.randbytes(20000))
    (root / "docs" / "fake-soi.jpg").write_bytes(b"\xff\xd8" + junk.randbytes(20000))
    fakes = bytearray(junk.randbytes(40000))
    for at in (0, 1000, 17000, 30001):
        fakes[at:at + 4] = b"\xff\xd8\xff\xe0"
    (root / "docs" / "fake-many.bin").write_bytes(bytes(fakes))
    image = work / "archives.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(root), str(image), "24M"],
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


@pytest.mark.parametrize(("path", "photo", "method"), [
    ("/docs/photos.tar.gz//photos.tar//photo1.jpg", "photo1.jpg", "tar"),
    ("/docs/photos.tar.gz//photos.tar//photo2.jpg", "photo2.jpg", "tar"),
    ("/docs/album.7z//photo3.jpg", "photo3.jpg", "7z"),
    ("/docs/chain.zip//bundle.tar.gz//bundle.tar//inner.zip//photo4.jpg", "photo4.jpg", "zip"),
    ("/docs/letter.docx//word/media/image1.jpeg", "photo1.jpg", "zip"),
    ("/docs/report.doc//Data//Data@68.jpg", "photo2.jpg", "embedded-jpeg"),
    ("/docs/mail.eml//part 2/party.jpg", "photo4.jpg", "email"),
    ("/docs/blob.dat//blob.dat@5000.jpg", "photo1.jpg", "embedded-jpeg"),
    ("/docs/bzip2.jpg.bz2//bzip2.jpg", "photo2.jpg", "bzip2"),
    ("/docs/xz.jpg.xz//xz.jpg", "photo2.jpg", "xz"),
    ("/docs/lzma.jpg.lzma//lzma.jpg", "photo2.jpg", "lzma"),
    ("/docs/pics.cpio//photo3.jpg", "photo3.jpg", "cpio"),
    ("/docs/pics.cpio//photo4.jpg", "photo4.jpg", "cpio"),
])
def test_every_kind_of_container_gives_up_its_picture(archives_image: dict, path: str,
                                                      photo: str, method: str) -> None:
    rows = _by_path(archives_image["rows"])
    assert path in rows, sorted(p for p in rows if "//" in p)
    row = rows[path]
    assert (row["md5"], row["mime"], row["derivation"]["method"]) == (
        archives_image["md5"][photo], "image/jpeg", method)
    assert row["pdq"] is not None and row["errors"] == []


def test_a_pdf_image_is_the_jpeg_that_was_put_in(archives_image: dict) -> None:
    rows = [r for r in archives_image["rows"] if r["derived_from"] == "/docs/scan.pdf"]
    assert [r["md5"] for r in rows] == [archives_image["md5"]["photo3.jpg"]]


def test_no_fake_is_called_a_picture(archives_image: dict) -> None:
    for name in ("fake.jpg", "fake-soi.jpg", "fake-many.bin"):
        derived = [r for r in archives_image["rows"]
                   if (r["derived_from"] or "").startswith(f"/docs/{name}")]
        assert derived == [], name
        row = _by_path(archives_image["rows"])[f"/docs/{name}"]
        # libmagic may say image/jpeg of FF D8 FF (as file(1) does): a signature, not a
        # picture. Nothing decodes, so no picture findings and no derived picture.
        assert row["phash"] is None and row["pdq"] is None, name


def test_a_picture_in_an_alternate_data_stream(tmp_path: Path) -> None:
    for tool in ("mkntfs", "ntfscp"):
        require_tool(tool)
    photo = _jpeg(9, tmp_path)
    image = tmp_path / "ntfs.img"
    with image.open("wb") as fh:
        fh.truncate(8 << 20)
    subprocess.run(["mkntfs", "-F", "-Q", "-q", str(image)], check=True, capture_output=True)
    (tmp_path / "note.txt").write_bytes(b"nothing to see\n")
    subprocess.run(["ntfscp", "-q", str(image), str(tmp_path / "note.txt"), "note.txt"],
                   check=True, capture_output=True)
    subprocess.run(["ntfscp", "-q", "-N", "hidden", str(image), str(photo), "note.txt"],
                   check=True, capture_output=True)
    triage(image, tmp_path / "case")
    rows = {(r["path"], r["stream"]): r for r in export_jsonl(tmp_path / "case")}
    row = rows[("/note.txt", "hidden")]
    assert row["md5"] == _md5(photo.read_bytes()) and row["mime"] == "image/jpeg"
    assert row["phash"] is not None


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


def test_the_report_shows_the_container_chain(archives_image: dict) -> None:
    from test_report import CHROMIUM_ARGS, open_report, wait_rows

    out = archives_image["case"] / "report.html"
    exhibit("report", archives_image["case"], "-o", out)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=require_tool("chromium"), headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            for opened in open_report(browser, out):
                page = opened.page
                page.click("header nav [data-tab=files]")
                page.fill("#file-search", "inner.zip//photo4")
                wait_rows(page, 1)
                page.click("#files-table tbody tr >> nth=0")
                detail = page.text_content("#detail") or ""
                assert "Inside another file" in detail
                assert "/docs/chain.zip//bundle.tar.gz//bundle.tar//inner.zip" in detail
                chain = page.eval_on_selector_all(
                    "#detail table.chain tr", "r => r.slice(1).map(x => x.cells[1].textContent)")
                assert chain == ["zip", "gzip", "tar", "zip"]
        finally:
            browser.close()
