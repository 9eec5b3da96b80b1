"""Volume shadow copies: each store walked and read as its own snapshot of the volume.

Windows alone makes shadow copies, so the stores are written by ``tests/vss_images.py``
from libvshadow's format documentation over NTFS volumes made by ``mkntfs``/``ntfscp``.
The oracle for a store is the store exported raw through libvshadow (``pyvshadow``):
``fls -r -p`` and ``icat`` on that file. Before anything else the tests check that the
export is the snapshot state the volume was built from, byte for byte, so the oracle
itself is anchored to what was written.
"""

from __future__ import annotations

import csv
import shutil
import struct
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import pyvshadow
import vss_images as vss
from conftest import require_tool, sha256_file
from pipeline_helpers import exhibit, export_jsonl, ledger_entries, triage
from test_ingest import EVIDENCE_ID, digests, fls, icat_hashes
from test_report import browser, open_report, visible_rows  # noqa: F401 (a fixture)

from ingest.content import ContentReader
from ingest.errors import IngestError
from ingest.image import open_image
from ingest.layers.snapshots import find_snapshots
from ingest.location import EvidenceLocation, Snapshot
from ingest.volumes import find_volumes
from ingest.walk import FilesystemWalker

TOTAL = vss.NTFS_BYTES + (2 << 20)
OLD_NOTE = b"the first draft of the note\n" * 40
NEW_NOTE = b"THE SECOND DRAFT OF THE NOTE\n" * 40
GONE = b"\xff\xd8\xff\xe0 a picture deleted after the snapshot " * 300
CREATED = 1_700_000_000  # 2023-11-14T22:13:20Z
BIG = bytes((i * 131 + i // 977) % 256 for i in range(300_000))


def _jpeg_like(seed: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + bytes((seed * 7 + i) % 251 for i in range(6000))


@pytest.fixture(scope="module")
def vss_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for tool in ("mkntfs", "ntfscp", "fls", "icat"):
        require_tool(tool)
    return tmp_path_factory.mktemp("vss")


@pytest.fixture(scope="module")
def shadowed(vss_dir: Path) -> tuple[Path, list[Path]]:
    """A live NTFS volume with two stores, and the raw state each store must show.

    Store 0 (older) holds ``note.txt`` in its first draft and ``gone.jpg``; store 1 holds
    the note's first draft only; the live volume has the second draft and no picture.
    """
    base = vss.ntfs_volume(vss_dir / "base.img", {"keep.txt": b"kept\n" * 300,
                                                   "big.bin": BIG, "note.txt": OLD_NOTE},
                           TOTAL)
    oldest = vss_dir / "state0.img"
    shutil.copy(base, oldest)
    vss.add_files(oldest, {"gone.jpg": GONE})
    middle = vss_dir / "state1.img"
    shutil.copy(base, middle)
    live = vss_dir / "live.img"
    shutil.copy(base, live)
    vss.add_files(live, {"note.txt": NEW_NOTE})
    stores = [vss.StoreSpec(oldest.read_bytes(), uuid.uuid4(), CREATED),
              vss.StoreSpec(middle.read_bytes(), uuid.uuid4(), CREATED + 3600)]
    vss.write_stores(live, stores, vss.NTFS_BYTES)
    return live, [oldest, middle]


def fls_ntfs(image: Path, sector_offset: int = 0) -> set[tuple[str, int, bool]]:
    """fls's names, its NTFS ``name:attribute`` lines folded into the name (as elsewhere)."""
    return {(path.partition(":")[0], inode, alloc)
            for path, inode, alloc in fls(image, sector_offset)}


def export_store(image: Path, index: int, out: Path) -> Path:
    """The store as libvshadow reads it, written raw: the fls/icat oracle."""
    volume = pyvshadow.volume()
    with image.open("rb") as fh:
        volume.open_file_object(fh)
        store = volume.get_store(index)
        out.write_bytes(store.read_buffer_at_offset(store.volume_size, 0))
        volume.close()
    return out


def test_export_is_the_state_written(shadowed: tuple[Path, list[Path]], vss_dir: Path) -> None:
    live, states = shadowed
    for index, state in enumerate(states):
        exported = bytearray(export_store(live, index, vss_dir / f"export{index}.raw")
                             .read_bytes()[: vss.NTFS_BYTES])
        # the header is the live volume's (or zeros where a store saved block 0)
        exported[vss.HEADER_AT : vss.HEADER_AT + 512] = bytes(512)
        assert exported == state.read_bytes()[: vss.NTFS_BYTES]


def test_each_store_walks_and_reads_like_fls_icat_on_its_export(
        shadowed: tuple[Path, list[Path]], vss_dir: Path) -> None:
    live, _ = shadowed
    before = sha256_file(live)
    with open_image([live]) as image:
        (volume,) = find_volumes(image).candidates
        scan = find_snapshots(image, volume.start, volume.length)
        assert scan.enabled and not scan.errors
        assert [s.index for s in scan.snapshots] == [0, 1]
        assert scan.snapshots[0].created == "2023-11-14T22:13:20Z"
        assert scan.snapshots[1].created == "2023-11-14T23:13:20Z"
        reader = ContentReader(image.spec, image)
        compared = 0
        for snap in scan.snapshots:
            oracle = export_store(live, snap.index, vss_dir / f"oracle{snap.index}.raw")
            walked = list(FilesystemWalker(image, volume, EVIDENCE_ID, snapshot=snap))
            assert {e.location.snapshot for e in walked} == {snap}
            ours = {(e.location.path, e.location.inode, e.allocated) for e in walked
                    if e.location.stream is None}
            assert ours == fls_ntfs(oracle)
            for entry in walked:
                if entry.kind != "file" or entry.location.inode == 0:
                    continue
                if entry.location.stream is not None or entry.location.path.startswith("/$"):
                    continue  # icat's default for $Secure is $SDS: not what a file's data is
                try:
                    expected = icat_hashes(oracle, 0, entry.location.inode)
                except subprocess.CalledProcessError:  # $ObjId, $Quota …: no $DATA to icat
                    continue
                data = reader.read_all(volume.start, entry.location.inode, fs_type="ntfs",
                                       snapshot=snap)
                assert digests(data) == expected
                compared += 1
        paths = {e.location.path: e for e in FilesystemWalker(image, volume, EVIDENCE_ID,
                                                              snapshot=scan.snapshots[0])}
        gone = paths["/gone.jpg"]
        assert reader.read_all(volume.start, gone.location.inode,
                               snapshot=scan.snapshots[0]) == GONE
        note = paths["/note.txt"]
        assert reader.read_all(volume.start, note.location.inode,
                               snapshot=scan.snapshots[0]) == OLD_NOTE
        assert reader.read_all(volume.start, note.location.inode) == NEW_NOTE
        live_paths = {e.location.path for e in FilesystemWalker(image, volume, EVIDENCE_ID)}
        assert "/gone.jpg" not in live_paths
        reader.close()
    assert compared >= 5
    assert sha256_file(live) == before


def test_store_in_a_partition(shadowed: tuple[Path, list[Path]], vss_dir: Path) -> None:
    """Offsets in the catalog are relative to the volume: a partition at 1 MiB works."""
    live, _ = shadowed
    disk = vss_dir / "disk.img"
    with disk.open("wb") as fh:
        fh.truncate((1 << 20) + TOTAL + (1 << 20))
    subprocess.run([require_tool("sfdisk"), "-q", str(disk)], check=True, capture_output=True,
                   input=f"start=2048, size={TOTAL // 512}, type=7\n".encode())
    with disk.open("r+b") as fh:
        fh.seek(1 << 20)
        fh.write(live.read_bytes())
    with open_image([disk]) as image:
        volume = next(v for v in find_volumes(image).candidates if v.start == 1 << 20)
        scan = find_snapshots(image, volume.start, volume.length)
        assert len(scan.snapshots) == 2
        walked = {e.location.path for e in FilesystemWalker(image, volume, EVIDENCE_ID,
                                                             snapshot=scan.snapshots[0])}
        assert "/gone.jpg" in walked


def test_no_header_and_no_catalog(vss_dir: Path) -> None:
    plain = vss.ntfs_volume(vss_dir / "plain.img", {"a.txt": b"a"}, TOTAL)
    with open_image([plain]) as image:
        (volume,) = find_volumes(image).candidates
        scan = find_snapshots(image, volume.start, volume.length)
        assert (scan.enabled, scan.snapshots, scan.errors) == (False, [], [])
    enabled = vss_dir / "enabled.img"
    shutil.copy(plain, enabled)
    vss.enable_without_stores(enabled)
    assert pyvshadow.check_volume_signature(str(enabled))
    with open_image([enabled]) as image:
        (volume,) = find_volumes(image).candidates
        scan = find_snapshots(image, volume.start, volume.length)
        assert (scan.enabled, scan.snapshots, scan.errors) == (True, [], [])


def _damaged(source: Path, out: Path, at: int, data: bytes) -> Path:
    shutil.copy(source, out)
    with out.open("r+b") as fh:
        fh.seek(at)
        fh.write(data)
    return out


def test_mutated_catalogs_are_errors_not_crashes(shadowed: tuple[Path, list[Path]],
                                                 vss_dir: Path) -> None:
    live, _ = shadowed
    catalog = vss.NTFS_BYTES
    cases = {
        "catalog-signature": (catalog, b"\0" * 16),
        "catalog-points-outside": (vss.HEADER_AT + 48, struct.pack("<Q", 1 << 40)),
        "header-version": (vss.HEADER_AT + 16, struct.pack("<I", 99)),
    }
    for name, (at, data) in cases.items():
        image_path = _damaged(live, vss_dir / f"{name}.img", at, data)
        with open_image([image_path]) as image:
            (volume,) = find_volumes(image).candidates
            with pytest.raises(IngestError, match="shadow copy header or catalog"):
                find_snapshots(image, volume.start, volume.length)


def test_unreadable_store_is_an_error(shadowed: tuple[Path, list[Path]], vss_dir: Path) -> None:
    """A store whose block list is gone: opening it (or reading it) fails with its name."""
    live, _ = shadowed
    where = _store_list(live)
    image_path = _damaged(live, vss_dir / "bad-list.img", where, b"\0" * 128)
    with open_image([image_path]) as image:
        (volume,) = find_volumes(image).candidates
        try:
            scan = find_snapshots(image, volume.start, volume.length)
        except IngestError as exc:
            assert "shadow copy" in str(exc)
            return
        outcomes = []
        for snap in scan.snapshots:
            try:
                list(FilesystemWalker(image, volume, EVIDENCE_ID, snapshot=snap))
                outcomes.append("walked")
            except (IngestError, OSError) as exc:
                outcomes.append(str(exc))
        assert scan.errors or any(o != "walked" for o in outcomes), outcomes


def _store_list(image: Path) -> int:
    """Where the first type-3 catalog entry says store 0's block list is."""
    data = image.read_bytes()
    block = data[vss.NTFS_BYTES : vss.NTFS_BYTES + vss.BLOCK]
    for at in range(128, vss.BLOCK, 128):
        kind, list_at = struct.unpack_from("<QQ", block, at)
        if kind == 3:
            return list_at
    raise AssertionError("no store in the catalog")


def test_a_location_names_its_snapshot() -> None:
    snap = Snapshot(index=2, id=str(uuid.uuid4()), created="2024-01-01T00:00:00Z")
    loc = EvidenceLocation("e" * 64, 1, 1048576, "ntfs", 64, "/a.jpg", snapshot=snap)
    assert EvidenceLocation.from_dict(loc.to_dict()) == loc
    assert "~vss2" in loc.key()
    plain = EvidenceLocation("e" * 64, 1, 1048576, "ntfs", 64, "/a.jpg")
    assert "snapshot" not in plain.to_dict() and loc.key() != plain.key()


@pytest.fixture(scope="module")
def shadow_case(shadowed: tuple[Path, list[Path]], vss_dir: Path) -> Path:
    live, _ = shadowed
    before = sha256_file(live)
    case = vss_dir / "case"
    triage(live, case)
    assert sha256_file(live) == before  # read only
    return case


def test_triage_walks_stores_analyses_shared_bytes_once(shadowed: tuple[Path, list[Path]],
                                                        vss_dir: Path, shadow_case: Path) -> None:
    live, _ = shadowed
    case = shadow_case
    ledger = ledger_entries(case)
    found = [e for e in ledger if e["action"] == "snapshots.found"]
    assert len(found) == 1 and [s["index"] for s in found[0]["details"]["stores"]] == [0, 1]
    walked = [e for e in ledger if e["action"] == "filesystem.walked"]
    assert [e["subject"].get("snapshot", {}).get("index") for e in walked] == [None, 0, 1]
    rows = export_jsonl(case)
    live_rows = {r["path"]: r for r in rows if r["snapshot"] is None and r["stream"] is None}
    planned = next(e for e in ledger if e["action"] == "batches.planned")["details"]["files"]
    files = [r for r in rows if r["kind"] == "file" and r["derived_from"] is None]
    shared_rows = [r for r in files if r["same_content_as"] is not None]
    assert shared_rows and planned == len(files) - len(shared_rows)  # analysed once
    assert all(r["same_content_as"] == r["path"] for r in shared_rows)  # its live twin
    for store in (0, 1):
        oracle = export_store(live, store, vss_dir / f"triage{store}.raw")
        snap_rows = [r for r in rows if r["snapshot"] and r["snapshot"]["index"] == store
                     and r["kind"] == "file" and r["stream"] is None
                     and not r["path"].startswith("/$")]
        assert snap_rows
        for row in snap_rows:
            assert row["snapshot"]["created"].startswith("2023-11-14T2")
            expected = icat_hashes(oracle, 0, row["inode"])[2]
            assert row["sha256"] == expected, row["path"]  # shared or analysed: the store's
        shared = {r["path"] for r in snap_rows if r["same_content_as"] is not None}
        assert "/big.bin" in shared  # its runs hold no block a store saved
        assert "/note.txt" not in shared  # rewritten since: the stores hold its old bytes
        note = next(r for r in snap_rows if r["path"] == "/note.txt")
        assert note["sha256"] != live_rows["/note.txt"]["sha256"]
    only = {r["path"] for r in rows if r["snapshot"]} - set(live_rows)
    assert "/gone.jpg" in only
    gone = [r for r in rows if r["path"] == "/gone.jpg"]
    assert [r["snapshot"]["index"] for r in gone] == [0]
    assert gone[0]["sha256"] == digests(GONE)[2]
    assert gone[0]["mime"] == "image/jpeg"


def test_snapshots_none_walks_the_live_volume_only(shadowed: tuple[Path, list[Path]],
                                                   tmp_path: Path) -> None:
    live, _ = shadowed
    case = tmp_path / "case"
    triage(live, case, "--snapshots", "none")
    assert not [e for e in ledger_entries(case) if e["action"] == "snapshots.found"]
    rows = export_jsonl(case)
    assert rows and all(r["snapshot"] is None for r in rows)
    assert "/gone.jpg" not in {r["path"] for r in rows}


def test_report_shows_what_only_snapshots_hold(shadow_case: Path,
                                               browser: Any) -> None:  # noqa: F811
    out = shadow_case / "report.html"
    exhibit("report", shadow_case, "-o", out)
    rows = export_jsonl(shadow_case)
    live_hashes = {r["sha256"] for r in rows if r["snapshot"] is None and r["sha256"]}
    live_paths = {r["path"] for r in rows if r["snapshot"] is None}
    only = sorted(r["path"] for r in rows if r["snapshot"] and (
        r["sha256"] not in live_hashes if r["kind"] == "file" and r["sha256"]
        else r["path"] not in live_paths))
    assert "/gone.jpg" in only and "/note.txt" in only and "/big.bin" not in only
    for opened in open_report(browser, out):
        page = opened.page
        assert page.text_content("[data-count='only in shadow copies'] .n") == str(len(only))
        page.click("header nav [data-tab=files]")
        page.check("#filter-snaponly")
        assert sorted(visible_rows(page)) == only


def test_csv_and_bodyfile_tell_snapshot_rows_from_live_ones(shadow_case: Path) -> None:
    """The same path in the live volume and in a store are two entries in every export:
    CSV has the store in its ``snapshot`` column, the body file after the name."""
    rows = export_jsonl(shadow_case)
    out = shadow_case / "rows.csv"
    exhibit("export", shadow_case, "--format", "csv", "-o", out)
    with out.open(encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(rows)
    for row, line in zip(rows, table, strict=True):
        snap = row["snapshot"]
        assert line["path"] == row["path"]
        assert line["snapshot"] == ("" if snap is None else
                                    f"{snap['index']}:{snap['id']}:{snap['created']}")
    body = shadow_case / "rows.body"
    exhibit("export", shadow_case, "--format", "bodyfile", "-o", body)
    names = [line.split("|")[1] for line in body.read_text(encoding="utf-8",
                                                          errors="surrogateescape").splitlines()]
    gone = [n for n in names if n.startswith("/gone.jpg")]
    assert gone == ["/gone.jpg (shadow copy 0)"]
    notes = sorted(n for n in names if n.startswith("/note.txt"))
    assert notes == ["/note.txt", "/note.txt (shadow copy 0)", "/note.txt (shadow copy 1)"]
