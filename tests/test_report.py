"""The HTML report in a real headless Chromium (Debian's, driven by Playwright).

Every page is opened with all requests intercepted: anything but the report file itself
(and data: URIs) fails the test, as does any console error, page error or dialog.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import require_tool
from PIL import Image
from pipeline_helpers import REPO, exhibit, export_jsonl, ledger_entries, triage
from playwright.sync_api import Browser, Page, sync_playwright

from chain_of_custody.canonical import sha256_hex
from ingest.location import EvidenceLocation, FileEntry
from pipeline.case.database import CaseDatabase
from pipeline.outputs.report import script_json, write_report

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
HOSTILE = ["<img src=x onerror=alert(1)>.html", "</script><script>window.__pwned=1</script>",
           '"><svg onload=alert(2)>.jpg', "<script>alert(3)</script>", "=cmd|' calc'!A0.csv"]
LARGE = 100_000


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    executable = require_tool("chromium")
    with sync_playwright() as pw:
        # launch() gives every run a fresh temporary profile (user data dir)
        browser = pw.chromium.launch(executable_path=executable, headless=True,
                                     args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Opened:
    """A report page with everything it tried to do recorded."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console_errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []


def open_report(browser: Browser, path: Path) -> Iterator[Opened]:
    context = browser.new_context(viewport={"width": 1300, "height": 900},
                                  java_script_enabled=True)
    page = context.new_page()
    opened = Opened(page)

    def route(r: Any) -> None:
        url = r.request.url
        opened.requests.append(url)
        if url == path.resolve().as_uri() or url.startswith("data:"):
            r.continue_()
        else:
            r.abort()

    context.route("**/*", route)
    page.on("console", lambda m: opened.console_errors.append(m.text)
            if m.type == "error" else None)
    page.on("pageerror", lambda e: opened.console_errors.append(f"pageerror: {e}"))

    def dialog(d: Any) -> None:
        opened.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    yield opened
    assert opened.console_errors == []
    assert opened.dialogs == []
    assert [u for u in opened.requests if not u.startswith(("file:", "data:"))] == []
    assert page.evaluate("window.__pwned") is None
    context.close()


@pytest.fixture(scope="module")
def sample_report(sample_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = tmp_path_factory.mktemp("report") / "case"
    triage(sample_raw, case, "--hashset", REPO / "sample_data" / "known_hashes.txt",
           "--hashset", REPO / "sample_data" / "known_hashes.csv")
    out = case / "report.html"
    exhibit("report", case, "-o", out)
    return out


@pytest.fixture
def sample(browser: Browser, sample_report: Path) -> Iterator[Opened]:
    yield from open_report(browser, sample_report)


@pytest.fixture(scope="module")
def expected(sample_report: Path) -> dict[str, Any]:
    """What the report must show, from the case's JSON Lines export (another code path)."""
    records = export_jsonl(sample_report.parent)
    alert = [r for r in records if r["matches"]]
    biggest = max(records, key=lambda r: (r["size"], -records.index(r)))
    return {
        "entries": len(records),
        "deleted": sorted(r["path"] for r in records if not r["allocated"]),
        "gps": sum(1 for r in records if r["exif"] and r["exif"]["gps_latitude"] is not None),
        "matched": len(alert),
        "matched_images": sum(1 for r in alert if (r["mime"] or "").startswith("image/")),
        "mismatch": sorted(r["path"] for r in records if r["extension_mismatch"]),
        "images": sum(1 for r in records if (r["mime"] or "").startswith("image/")),
        "dcim": sum(1 for r in records if "/dcim/100" in r["path"].lower()),
        "biggest": biggest["path"],
        "IMG_0001": next(r for r in records if r["name"] == "IMG_0001.JPG"),
    }


def visible_rows(page: Page) -> list[str]:
    return page.eval_on_selector_all("#files-table tbody tr",
                                     "rows => rows.map(r => r.cells[0].textContent)")


def wait_rows(page: Page, count: int, timeout: float = 10.0) -> None:
    """Poll from Python: the report's CSP forbids the eval Playwright's waits use."""
    deadline = time.monotonic() + timeout
    while len(visible_rows(page)) != count:
        assert time.monotonic() < deadline, (count, len(visible_rows(page)))
        time.sleep(0.05)


def test_sample_report_loads_offline_and_clean(sample: Opened, sample_report: Path,
                                              expected: dict[str, Any]) -> None:
    page = sample.page
    assert sample.requests == [sample_report.resolve().as_uri()]
    text = page.text_content("#overview")
    assert "verified:" in text and "chain intact" in text
    assert page.text_content("[data-count='deleted entries'] .n") == str(
        len(expected["deleted"]))
    assert page.text_content("[data-count='matched files'] .n") == str(expected["matched"])
    assert expected["matched"] >= 5  # the sample's known hashes (sample_data/README.md)
    csp = page.get_attribute("meta[http-equiv='Content-Security-Policy']", "content")
    assert "default-src 'none'" in csp and "unsafe" not in csp


def _filters_of(page: Page) -> list[str]:
    return page.eval_on_selector_all(
        "#matches img.thumb", "imgs => imgs.map(i => getComputedStyle(i).filter)")


def test_matched_thumbnails_blurred_until_revealed(sample: Opened,
                                                   expected: dict[str, Any]) -> None:
    page = sample.page
    page.click("header nav [data-tab=matches]")
    styles = _filters_of(page)
    assert len(styles) == expected["matched_images"] >= 5
    assert all("blur" in s and "grayscale" in s for s in styles), styles
    page.click("#matches .mcard >> nth=0 >> button.reveal")
    styles = _filters_of(page)
    assert styles[0] == "none" and all("blur" in s for s in styles[1:]), styles
    page.click("#reveal-all")
    assert set(_filters_of(page)) == {"none"}
    page.click("#reveal-all")
    assert all("blur" in s and "grayscale" in s for s in _filters_of(page))


def test_filters_and_search_change_visible_rows(sample: Opened,
                                                expected: dict[str, Any]) -> None:
    page = sample.page
    total = expected["entries"]
    assert total <= 100  # one page
    page.click("header nav [data-tab=files]")
    assert len(visible_rows(page)) == total
    page.fill("#file-search", "dcim/100")
    wait_rows(page, expected["dcim"])
    assert all("/DCIM/100" in r for r in visible_rows(page))
    page.fill("#file-search", "")
    wait_rows(page, total)
    page.select_option("#filter-deleted", "yes")
    assert sorted(visible_rows(page)) == expected["deleted"]
    assert "/Documents/secret.txt" in expected["deleted"]
    page.select_option("#filter-deleted", "")
    page.check("#filter-gps")
    assert len(visible_rows(page)) == expected["gps"] >= 6
    page.uncheck("#filter-gps")
    page.check("#filter-matched")
    assert len(visible_rows(page)) == expected["matched"]
    page.uncheck("#filter-matched")
    page.check("#filter-mismatch")
    assert sorted(visible_rows(page)) == expected["mismatch"]
    assert "/Pictures/vacation.txt" in expected["mismatch"]
    page.uncheck("#filter-mismatch")
    page.select_option("#filter-type", "image")
    assert len(visible_rows(page)) == expected["images"]
    assert f"filtered from {total}" in page.text_content("#files-count")
    page.select_option("#filter-type", "")
    page.click("#files-table th[data-sort=size]")
    page.click("#files-table th[data-sort=size]")  # descending
    assert visible_rows(page)[0] == expected["biggest"]


def test_file_detail_shows_location_hashes_exif_matches(sample: Opened,
                                                        expected: dict[str, Any]) -> None:
    page = sample.page
    page.click("header nav [data-tab=files]")
    page.fill("#file-search", "IMG_0001")
    wait_rows(page, 1)
    page.click("#files-table tbody tr")
    text = page.text_content("#detail .sheet")
    assert "b39fed146001368ccc6026dc0fe269b98bc73106aef750d11848fd39fad3f1c9" in text
    assert "Canon EOS 80D" in text and "52.373056" in text
    assert "known_hashes.csv" in text and "inode" in text.lower()
    photo = expected["IMG_0001"]  # the perceptual hashes the export gives, PDQ included
    assert photo["pdq"] and photo["phash"]
    assert f"PDQ{photo['pdq']}" in text and f"PDQ quality{photo['pdq_quality']}" in text
    assert f"pHash{photo['phash']}" in text and f"dHash{photo['dhash']}" in text
    assert "blur" in page.eval_on_selector("#detail img.thumb", "i => getComputedStyle(i).filter")
    page.click("#detail-close")
    assert not page.is_visible("#detail .sheet")


def test_pictures_timeline_and_gps_plot(sample: Opened, expected: dict[str, Any]) -> None:
    page = sample.page
    page.click("header nav [data-tab=pictures]")
    assert page.eval_on_selector_all("#timeline-svg rect", "r => r.length") >= 6
    assert page.eval_on_selector_all("#gps-svg circle", "c => c.length") == expected["gps"]
    page.locator("#gps-svg circle[data-file-id]").first.dispatch_event("click")
    assert "GPS" in page.text_content("#detail .sheet")


def test_hostile_name_from_the_sample_renders_as_text(sample: Opened) -> None:
    page = sample.page
    page.click("header nav [data-tab=files]")
    page.fill("#file-search", "onerror")
    wait_rows(page, 1)
    assert visible_rows(page) == ["/Downloads/<img src=x onerror=alert(1)>.html"]
    assert page.evaluate("document.querySelectorAll('img:not(.thumb), svg:not([id])').length") == 0


def test_report_is_ledgered(sample_report: Path, expected: dict[str, Any]) -> None:
    case = sample_report.parent
    entry = next(e for e in ledger_entries(case) if e["action"] == "report.written")
    assert entry["details"]["sha256"] == sha256_hex(sample_report.read_bytes())
    assert entry["details"]["ledger_verified"] is True
    assert entry["details"]["thumbnails"] <= expected["matched_images"]
    assert entry["details"]["thumbnails"] >= 4


def test_script_json_cannot_close_its_block() -> None:
    text = script_json({"name": "</script><script>alert(1)</script>\u2028&"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text)["name"] == "</script><script>alert(1)</script>\u2028&"


# -- a large synthetic case with hostile names ----------------------------------------


def build_large_case(case_dir: Path, count: int) -> None:
    """``count`` entries written straight into a case database (no evidence needed)."""
    case_dir.mkdir(parents=True)
    db = CaseDatabase(case_dir / "case.sqlite")
    evidence = "ab" * 32
    db.begin()
    db.add_evidence({"id": evidence, "format": "raw", "paths": json.dumps(["/synthetic.dd"]),
                     "size": 1 << 30, "md5": "0" * 32, "sha1": "0" * 40, "sha256": evidence,
                     "stored_hashes": "{}", "expected_hashes": "{}", "verification": "[]",
                     "verified": 1, "container_stat": "[]", "registered_at": "2025-01-01T00:00:00Z",
                     "walk_complete": 1})
    db.add_volume({"evidence_id": evidence, "idx": 0, "offset": 1048576, "length": 1 << 29,
                   "description": "Linux (0x83)", "allocated": 1, "fs_type": "ext4",
                   "status": "walked", "detail": json.dumps({"entries": count})})

    def entries() -> Iterator[FileEntry]:
        for i in range(count):
            name = HOSTILE[i] if i < len(HOSTILE) else f"file_{i:06d}.{'jpg' if i % 7 else 'txt'}"
            path = f"/dir{i % 100:02d}/{name}"
            yield FileEntry(
                location=EvidenceLocation(evidence_id=evidence, volume_index=0,
                                          volume_offset=1048576, fs_type="ext4",
                                          inode=100 + i, path=path),
                name=name, size=1000 + i, kind="file", allocated=i % 10 != 3,
                mtime=f"20{10 + i % 14:02d}-0{1 + i % 9}-1{i % 10}T12:00:00Z", atime=None,
                ctime=None, crtime=None, mode=0o644, uid=0, gid=0)

    db.add_files(entries())
    db.add_batch("b1", evidence, 1048576, [], 0)
    thumb = io.BytesIO()
    Image.new("RGB", (160, 120), (220, 40, 40)).save(thumb, format="JPEG", quality=75)
    digest = sha256_hex(thumb.getvalue())
    (case_dir / "thumbnails").mkdir()
    (case_dir / "thumbnails" / f"{digest}.jpg").write_bytes(thumb.getvalue())
    db.conn.execute("INSERT INTO hashsets (id, name, sha256, source, format, counts, loaded_at)"
                    " VALUES (1, '<b>set</b>', ?, 'x', 'plain', '{}', 'now')", ("cd" * 32,))
    rows = []
    for fid in range(1, count + 1):
        image = fid % 7 != 1
        record = {"findings": {"thumbnail": {"sha256": digest}}} if fid in (2, 3, 50) else {}
        rows.append((fid, json.dumps(record), f"{fid:032x}", "image/jpeg" if image
                     else "text/plain", "JPEG image data" if image else "ASCII text",
                     int(fid % 97 == 0)))
    db.conn.executemany(
        "INSERT INTO results (file_id, batch_id, leaf_index, record, md5, mime, magic,"
        " extension_mismatch) VALUES (?, 'b1', 0, ?, ?, ?, ?, ?)", rows)
    for fid in (2, 3, 50, 5000):
        db.conn.execute("INSERT INTO matches (file_id, hashset_id, algorithm, distance,"
                        " category, known_value) VALUES (?, 1, 'md5', 0, ?, ?)",
                        (fid, "</script><b>1</b>", f"{fid:032x}"))
    db.commit()
    db.close()


@pytest.fixture(scope="module")
def large_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    case_dir = tmp_path_factory.mktemp("large") / "case"
    build_large_case(case_dir, LARGE)
    out = case_dir / "report.html"
    db = CaseDatabase(case_dir / "case.sqlite")
    started = time.monotonic()
    stats = write_report(db, case_dir, out)
    print(f"report of {LARGE} entries: {time.monotonic() - started:.1f} s,"
          f" {out.stat().st_size / 1e6:.1f} MB")
    db.close()
    assert stats["files"] == LARGE and stats["thumbnails"] == 1
    return out


def test_large_case_renders_first_page_fast(browser: Browser, large_report: Path) -> None:
    for opened in open_report(browser, large_report):
        page = opened.page
        started = time.monotonic()
        page.reload()
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        page.click("header nav [data-tab=files]")
        page.wait_for_selector("#files-table tbody tr")
        elapsed = time.monotonic() - started
        print(f"first page of {LARGE} entries in {elapsed:.2f} s")
        assert elapsed < 5.0
        assert len(visible_rows(page)) == 100
        assert f"of {LARGE:,}" in page.text_content("#files-count")
        started = time.monotonic()
        page.fill("#file-search", "file_09999")
        wait_rows(page, 10)
        page.select_option("#filter-deleted", "yes")
        wait_rows(page, 1)
        assert visible_rows(page) == ["/dir93/file_099993.jpg"]
        page.click("#page-size")  # still responsive
        assert time.monotonic() - started < 5.0


def test_large_case_hostile_names_execute_nothing(browser: Browser, large_report: Path) -> None:
    for opened in open_report(browser, large_report):
        page = opened.page
        page.click("header nav [data-tab=files]")
        rows = visible_rows(page)
        for name in HOSTILE:
            assert any(r.endswith(name) for r in rows), name
        assert page.evaluate("document.querySelectorAll('#files-table img, #files-table svg,"
                             " #files-table script').length") == 0
        page.click("header nav [data-tab=matches]")
        assert "</script><b>1</b>" in page.text_content("#matches")
        assert page.evaluate("document.querySelectorAll('#matches b').length") == 0
        page.click("header nav [data-tab=files]")
        page.click("#files-table tbody tr >> nth=1")  # the </script> name's detail view
        assert "</script><script>window.__pwned=1</script>" in page.text_content("#detail")
