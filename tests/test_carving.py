"""Carving unallocated space: cards built by real tools, recovered bytes against written ones.

The cards (``tests/carve_images.py``) hold kept pictures and a folder of 42 JPEGs and 4
PNGs deleted without a trace (no name, no chain, no inode extents, no MFT record). Every
deleted picture must come back with the bytes that were written, as a derived entry of
the volume (``carved``: image offset, length, runs) analysed like a file, and no kept
picture, nor a deleted file the walk still finds, may be reported a second time. The
oracle for the free space is ``blkls``; hostile inputs must end in bounded time and memory.
"""

from __future__ import annotations

import hashlib
import io
import struct
import subprocess
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest
from carve_images import build_all, build_fat32
from conftest import require_tool, sha256_file
from PIL import Image
from pipeline_helpers import exhibit, export_jsonl, ledger_entries, triage

from ingest.carve import ALIGN, Carver, RunView, kinds_for
from ingest.carve.formats import mp4_end

MIB = 1 << 20


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def cards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    for tool in ("mkfs.vfat", "mmd", "mcopy", "mdeltree", "mke2fs", "debugfs", "mkntfs",
                 "ntfs-3g", "exiftool", "blkls"):
        require_tool(tool)
    built = build_all(tmp_path_factory.mktemp("cards"))
    for name in ("fat32", "ext4", "ntfs"):
        built[name].chmod(0o444)
    return built


@pytest.fixture(scope="module")
def carved(cards: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, dict[str, Any]]:
    """Each card triaged (1 MiB carve ranges on FAT32: the 3 MB JPEG spans four)."""
    out: dict[str, dict[str, Any]] = {}
    for name in ("fat32", "ext4", "ntfs"):
        image = cards[name]
        before = sha256_file(image)
        case = tmp_path_factory.mktemp(f"case-{name}") / "case"
        extra = ("--carve-range-mb", "1") if name == "fat32" else ()
        triage(image, case, *extra)
        out[name] = {"image": image, "case": case, "before": before,
                     "rows": export_jsonl(case), "entries": ledger_entries(case)}
    return out


def _carved_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if (r["derivation"] or {}).get("method") == "carved"]


def _read_runs(image: Path, runs: list[list[int]]) -> bytes:
    with image.open("rb") as fh:
        parts = []
        for offset, length in runs:
            fh.seek(offset)
            parts.append(fh.read(length))
    return b"".join(parts)


@pytest.mark.parametrize("card", ["fat32", "ext4", "ntfs"])
def test_every_deleted_picture_comes_back_whole_and_no_kept_one_twice(
        cards: dict[str, Any], carved: dict[str, dict[str, Any]], card: str) -> None:
    rows = carved[card]["rows"]
    found = _carved_rows(rows)
    by_hash = {r["sha256"]: r for r in found}
    written = {_sha(p.read_bytes()): p for p in cards["deleted"]}
    assert len(written) == 46 and max(p.stat().st_size for p in cards["deleted"]) > 2 * MIB
    with Image.open(cards["deleted"][0]) as img:  # photo-like, with a camera's EXIF
        assert img.getexif().get(0x010F) == "Canon" and img.size == (4000, 3000)
    missing = sorted(p.name for digest, p in written.items() if digest not in by_hash)
    assert missing == []
    kept = {_sha(p.read_bytes()) for p in cards["kept"]}
    assert not kept & set(by_hash)  # the walk's files are not carved again
    assert len(found) == len(by_hash)  # and nothing is reported twice
    assert len(found) == len(written)  # nor an EXIF thumbnail inside a carved JPEG
    # The location alone re-reads the same bytes from the evidence.
    for digest, path in written.items():
        step = by_hash[digest]["derivation"]
        assert step["offset"] == step["runs"][0][0] and step["length"] == path.stat().st_size
        assert _read_runs(cards[card], step["runs"]) == path.read_bytes()
    assert carved[card]["before"] == sha256_file(cards[card])  # read-only


def test_carved_pictures_are_analysed_like_files(cards: dict[str, Any],
                                                 carved: dict[str, dict[str, Any]]) -> None:
    rows = _carved_rows(carved["fat32"]["rows"])
    jpegs = [r for r in rows if r["mime"] == "image/jpeg"]
    pngs = [r for r in rows if r["mime"] == "image/png"]
    assert len(jpegs) == 42 and len(pngs) == 4
    assert all(r["exif"] and r["exif"]["make"] == "Canon" for r in jpegs)
    assert all(r["phash"] and r["md5"] and not r["allocated"] for r in rows)
    assert all(r["derived_from"].startswith("/$Unallocated/") for r in rows)
    assert all(r["path"].startswith(r["derived_from"] + "//carved-") for r in rows)


def test_custody_covers_carved_entries_and_resume_adds_nothing(
        carved: dict[str, dict[str, Any]]) -> None:
    result = carved["ext4"]
    entries = result["entries"]
    planned = [e for e in entries if e["action"] == "carve.planned"]
    assert len(planned) == 1 and planned[0]["details"]["mode"] == "pictures"
    batches = [e for e in entries if e["action"] == "batch.analysed"]
    derived = sum((b["details"].get("derived") or {}).get("methods", {}).get("carved 1", 0)
                  for b in batches)
    assert derived == len(_carved_rows(result["rows"])) == 46
    completed = next(e for e in entries if e["action"] == "triage.completed")
    assert completed["details"]["carved"] == 46
    exhibit("ledger", "verify", result["case"], "-q")
    triage(result["image"], result["case"])  # a second run resumes: same entries
    assert export_jsonl(result["case"]) == result["rows"]
    assert [e["action"] for e in ledger_entries(result["case"])].count("carve.planned") == 1


@pytest.mark.parametrize("card", ["fat32", "ext4"])
def test_the_space_carved_is_what_blkls_calls_unallocated(
        cards: dict[str, Any], carved: dict[str, dict[str, Any]], card: str) -> None:
    planned = next(e for e in carved[card]["entries"] if e["action"] == "carve.planned")
    blkls = subprocess.run([require_tool("blkls"), str(cards[card])], capture_output=True,
                           check=True).stdout
    details = planned["details"]
    assert details["excluded_deleted_bytes"] == 0  # nothing of the folder is left to walk
    assert details["bytes"] == len(blkls)


def test_deleted_files_the_walk_finds_are_not_carved_again(
        cards: dict[str, Any], tmp_path: Path) -> None:
    image = build_fat32(tmp_path / "kept-entries.img", cards["kept"], cards["deleted"],
                        zero=False)
    image.chmod(0o444)
    triage(image, tmp_path / "case")
    rows = export_jsonl(tmp_path / "case")
    walked = {r["sha256"] for r in rows if not r["allocated"] and r["derived_from"] is None
              and r["kind"] == "file" and r["sha256"]}
    written = {_sha(p.read_bytes()) for p in cards["deleted"]}
    assert written <= walked  # TSK recovers them from their surviving entries
    assert _carved_rows(rows) == []
    planned = next(e for e in ledger_entries(tmp_path / "case")
                   if e["action"] == "carve.planned")
    assert planned["details"]["excluded_deleted_bytes"] >= sum(
        p.stat().st_size for p in cards["deleted"])


def test_carving_off_derives_nothing(cards: dict[str, Any], tmp_path: Path) -> None:
    triage(cards["fat32"], tmp_path / "case", "--carve", "none")
    rows = export_jsonl(tmp_path / "case")
    assert _carved_rows(rows) == [] and not [r for r in rows if "$Unallocated" in r["path"]]


# -- the carver on hostile and crafted bytes ----------------------------------------------

class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read_at(self, offset: int, size: int) -> bytes:
        return self.data[offset: offset + size]


def _carve(data: bytes, mode: str = "pictures", runs: list[tuple[int, int]] | None = None
           ) -> tuple[list[Any], Carver]:
    view = RunView(_Bytes(data), runs or [(0, len(data))])
    carver = Carver(view, kinds_for(mode), others=mode == "all")
    return list(carver.scan(0, view.size)), carver


def _jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 90)).save(out, "JPEG")
    return out.getvalue()


def _bounded(data: bytes, mode: str = "pictures", seconds: float = 20.0,
             peak: int = 96 * MIB) -> tuple[list[Any], Carver]:
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = _carve(data, mode)
        used = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < seconds
    assert used < peak + len(data)
    return result


def test_a_picture_across_an_allocated_block_is_read_whole() -> None:
    picture = _jpeg((300, 200))
    assert len(picture) > 2 * ALIGN
    data = bytearray(8 * ALIGN + len(picture) + 4 * ALIGN)
    data[ALIGN: ALIGN + 2 * ALIGN] = picture[: 2 * ALIGN]  # then an allocated block
    data[4 * ALIGN: 4 * ALIGN + len(picture) - 2 * ALIGN] = picture[2 * ALIGN:]
    runs = [(0, 3 * ALIGN), (4 * ALIGN, len(data) - 4 * ALIGN)]
    hits, _ = _carve(bytes(data), runs=runs)
    assert len(hits) == 1 and hits[0].runs == ((ALIGN, 2 * ALIGN),
                                               (4 * ALIGN, len(picture) - 2 * ALIGN))
    assert _read_runs_bytes(bytes(data), hits[0].runs) == picture


def _read_runs_bytes(data: bytes, runs: tuple[tuple[int, int], ...]) -> bytes:
    return b"".join(data[o: o + n] for o, n in runs)


def test_a_truncated_jpeg_is_partial_not_a_picture() -> None:
    picture = _jpeg((300, 200))
    data = bytes(ALIGN) + picture[: len(picture) // 2] + bytes(4 * ALIGN)
    hits, carver = _bounded(data)
    assert hits == [] and carver.summary.partial_count == 1
    assert carver.summary.partial[0]["kind"] == "jpeg"
    assert carver.summary.partial[0]["offset"] == ALIGN
    assert (carver.summary.partial[0]["width"], carver.summary.partial[0]["height"]) == (300, 200)


def test_an_endless_segment_chain_ends_in_bounded_time() -> None:
    data = b"\xff\xd8\xff\xe1\x00\x02" + b"\xff\xe1\x00\x02" * (4 * MIB)
    hits, carver = _bounded(data)
    assert hits == [] and carver.summary.partial_count == 1


def test_a_png_with_a_4gb_chunk_length_ends_at_once() -> None:
    ihdr = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    data = b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", 0xFFFF_FFF0) + b"IDAT" + bytes(MIB)
    hits, carver = _bounded(data, seconds=5.0)
    assert hits == [] and carver.summary.partial_count == 1


def test_thousands_of_jpeg_markers_end_in_bounded_time_and_memory() -> None:
    block = b"\xff\xd8\xff\xe0" + b"\xff\xd8\xff" * ((ALIGN - 4) // 3)
    data = block.ljust(ALIGN, b"\xff") * 20_000  # 10 MB: a marker at every block and between
    real = _jpeg()
    data += real + bytes(ALIGN - len(real) % ALIGN)
    hits, carver = _bounded(data)
    assert [h.start for h in hits] == [20_000 * ALIGN]  # the real picture still counts
    assert carver.summary.candidates == 20_001


def test_all_names_other_headers_and_pictures_mode_does_not() -> None:
    data = bytearray(8 * ALIGN)
    data[2 * ALIGN: 2 * ALIGN + 8] = b"%PDF-1.7"
    data[5 * ALIGN: 5 * ALIGN + 4] = b"PK\x03\x04"
    _, carver = _carve(bytes(data), "all")
    assert carver.summary.other_headers == {"pdf": {"count": 1, "offsets": [2 * ALIGN]},
                                            "zip": {"count": 1, "offsets": [5 * ALIGN]}}
    _, carver = _carve(bytes(data), "pictures")
    assert carver.summary.other_headers == {}


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def test_an_mp4_is_carved_to_the_end_of_its_boxes_and_a_cut_one_is_partial() -> None:
    video = (_box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41")
             + _box(b"moov", _box(b"mvhd", bytes(100))) + _box(b"mdat", bytes(3000)))
    data = bytes(ALIGN) + video + bytes(3 * ALIGN)
    assert mp4_end(_Bytes(data).read_at, ALIGN, len(data)) == ALIGN + len(video)
    hits, _ = _carve(data)
    assert [(h.kind, h.start, h.length) for h in hits] == [("mp4", ALIGN, len(video))]
    hits, carver = _carve(bytes(ALIGN) + video[:-1000])
    assert hits == [] and carver.summary.partial_count == 1


def test_a_picture_beginning_in_a_range_is_found_there_only() -> None:
    picture = _jpeg((300, 200))
    data = bytes(ALIGN) + picture + bytes(4 * ALIGN)
    view = RunView(_Bytes(data), [(0, len(data))])
    first = list(Carver(view, kinds_for("pictures")).scan(0, 2 * ALIGN))
    second = list(Carver(view, kinds_for("pictures")).scan(2 * ALIGN, view.size))
    assert [h.start for h in first] == [ALIGN] and first[0].length == len(picture)
    assert second == []


def test_a_wiped_card_without_a_filesystem_is_carved_whole(cards: dict[str, Any],
                                                            tmp_path: Path) -> None:
    image = tmp_path / "wiped.dd"
    pictures = [p for p in cards["deleted"] if p.stat().st_size < 200_000][:3]
    with image.open("wb") as fh:
        fh.truncate(8 * MIB)
        for number, path in enumerate(pictures):
            fh.seek((1 + 2 * number) * MIB + 7 * ALIGN)
            fh.write(path.read_bytes())
    image.chmod(0o444)
    proc = triage(image, tmp_path / "case", "--allow-empty")
    assert "Nothing examined" in proc.stdout + proc.stderr
    rows = _carved_rows(export_jsonl(tmp_path / "case"))
    assert sorted(r["sha256"] for r in rows) == sorted(_sha(p.read_bytes()) for p in pictures)
    assert all(r["fs_type"] == "none" for r in rows)
