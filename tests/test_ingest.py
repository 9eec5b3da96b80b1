"""The ingest layer against The Sleuth Kit's own tools, on the bundled sample image.

``fls -r -p`` and ``icat`` are the oracle: for every filesystem volume our walk must list
exactly the (path, inode, allocated) triples fls lists, and every regular file must
hash like icat's output — through the raw, split raw and E01 containers alike.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool, sha256_file

from ingest.acquisition import compare_hashes, hash_image
from ingest.content import ContentReader, close_readers, reader_for
from ingest.image import EvidenceImage, ImageSpec, detect_format, open_image
from ingest.location import decode_name, encode_name
from ingest.volumes import find_volumes
from ingest.walk import FilesystemWalker, walk_filesystem

FLS_LINE = re.compile(
    rb"^(?P<types>\S+) (?P<deleted>\* )?(?P<inode>\d+)(?P<rest>[-\d]*)"
    rb"(?:\(realloc\))?:\t(?P<path>.*)$"
)
EVIDENCE_ID = "0" * 64


def fls(image: Path, sector_offset: int) -> set[tuple[str, int, bool]]:
    """(path, inode, allocated) as ``fls -r -p`` prints them, decoded like our walk."""
    out = subprocess.run(
        [require_tool("fls"), "-r", "-p", "-o", str(sector_offset), str(image)],
        check=True, capture_output=True,
    ).stdout
    rows: set[tuple[str, int, bool]] = set()
    for line in out.split(b"\n"):
        if not line:
            continue
        match = FLS_LINE.match(line)
        assert match, f"unparsed fls line: {line!r}"
        path = "/" + "/".join(decode_name(part) for part in match["path"].split(b"/"))
        rows.add((path, int(match["inode"]), match["deleted"] is None))
    return rows


def icat_hashes(image: Path, sector_offset: int, inode: int) -> tuple[str, str, str]:
    data = subprocess.run(
        [require_tool("icat"), "-o", str(sector_offset), str(image), str(inode)],
        check=True, capture_output=True,
    ).stdout
    return digests(data)


def digests(data: bytes) -> tuple[str, str, str]:
    return (hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(),
            hashlib.sha256(data).hexdigest())


def walk_rows(image: EvidenceImage) -> dict[int, list]:
    """Every filesystem volume's walk, keyed by volume byte offset."""
    out: dict[int, list] = {}
    for volume in find_volumes(image).candidates:
        out[volume.start] = list(walk_filesystem(image, volume, EVIDENCE_ID))
    return out


@pytest.fixture(scope="module")
def raw_image(sample_raw: Path) -> EvidenceImage:
    image = open_image([sample_raw])
    yield image
    image.close()


# ----------------------------------------------------------------------- containers


def test_detect_format(sample_raw: Path, sample_split: list[Path], sample_e01: Path) -> None:
    assert detect_format([sample_raw]) == "raw"
    assert detect_format([sample_split[0]]) == "split-raw"
    assert detect_format(sample_split) == "split-raw"
    assert detect_format([sample_e01]) == "ewf"


def test_split_discovered_from_first_segment(sample_split: list[Path]) -> None:
    with open_image([sample_split[0]]) as image:
        assert image.paths == tuple(sample_split)
        assert len(sample_split) > 1


def test_e01_metadata_and_stored_hashes(sample_e01: Path, sample_raw: Path) -> None:
    with open_image([sample_e01]) as image:
        assert image.format == "ewf"
        assert image.size == sample_raw.stat().st_size
        assert image.metadata["case_number"] == "case-1"
        assert image.metadata["examiner_name"] == "examiner"
        assert image.metadata["evidence_number"] == "EX-1"
        assert image.metadata["description"] == "sample card"
        assert set(image.stored_hashes) >= {"md5", "sha1"}
        computed = hash_image(image)
        rows = compare_hashes(computed, image.stored_hashes)
        assert {r["algorithm"]: r["status"] for r in rows} == {"md5": "match", "sha1": "match"}
    raw_md5 = hashlib.md5(sample_raw.read_bytes()).hexdigest()
    assert image.stored_hashes["md5"] == raw_md5


def test_hash_image_matches_coreutils(sample_raw: Path, raw_image: EvidenceImage) -> None:
    seen: list[int] = []
    result = hash_image(raw_image, progress=seen.append, chunk_size=1 << 20)
    for algorithm in ("md5", "sha1", "sha256"):
        tool = subprocess.run([require_tool(f"{algorithm}sum"), str(sample_raw)],
                              check=True, capture_output=True, text=True).stdout.split()[0]
        assert result[algorithm] == tool
    assert result["size"] == sample_raw.stat().st_size == seen[-1]
    assert seen == sorted(seen)


def test_compare_hashes_reports_mismatch() -> None:
    rows = compare_hashes({"md5": "aa", "sha1": "bb"}, {"md5": "AA", "sha1": "cc", "sha256": "d"})
    assert [(r["algorithm"], r["status"]) for r in rows] == [
        ("md5", "match"), ("sha1", "mismatch"), ("sha256", "not-computed")]


def test_containers_agree(sample_raw: Path, sample_split: list[Path], sample_e01: Path) -> None:
    walks = []
    contents = []
    for paths in ([sample_raw], sample_split, [sample_e01]):
        with open_image(paths) as image:
            assert image.read_at(0, 512)[510:512] == b"\x55\xaa"
            walk = walk_rows(image)
            walks.append(walk)
            reader = ContentReader(image.spec, image)
            contents.append({
                (off, e.location.inode): digests(reader.read_all(off, e.location.inode))
                for off, entries in walk.items() for e in entries
                if e.kind == "file" and e.allocated
            })
    assert walks[0] == walks[1] == walks[2]
    assert contents[0] == contents[1] == contents[2]
    assert len(contents[0]) >= 10


# ----------------------------------------------------------------------- volumes


def test_mbr_with_logical_partition(raw_image: EvidenceImage) -> None:
    scan = find_volumes(raw_image)
    assert scan.partition_table == "dos"
    assert scan.warnings == []
    candidates = scan.candidates
    assert [v.description for v in candidates] == ["Win95 FAT32 (0x0c)", "Linux (0x83)"]
    assert candidates[0].start == 2048 * 512
    # The logical partition sits inside the extended one, which is meta, not a candidate.
    extended = next(v for v in scan.volumes if "Extended (0x05)" in v.description)
    assert extended.flag == "meta"
    assert extended.start < candidates[1].start < extended.start + extended.length
    assert any(v.flag == "unallocated" for v in scan.volumes)


# ----------------------------------------------------------------------- walk vs fls


def test_walk_equals_fls(sample_raw: Path, raw_image: EvidenceImage) -> None:
    fs_types = []
    for volume in find_volumes(raw_image).candidates:
        walker = FilesystemWalker(raw_image, volume, EVIDENCE_ID)
        ours = {(e.location.path, e.location.inode, e.allocated) for e in walker}
        assert ours == fls(sample_raw, volume.sector_offset)
        assert walker.stats.skipped == 0
        assert walker.stats.deleted >= 1
        fs_types.append(walker.fs_type)
    assert fs_types == ["fat32", "ext4"]


def test_entries_carry_metadata(raw_image: EvidenceImage) -> None:
    walk = walk_rows(raw_image)
    by_path = {e.location.path: e for entries in walk.values() for e in entries}
    link = by_path["/Documents/latest.txt"]
    assert link.kind == "symlink"
    assert by_path["/Documents"].kind == "directory"
    assert by_path["/$OrphanFiles"].kind == "directory"
    assert by_path["/$FAT1"].kind == "file" and by_path["/$FAT1"].size > 0
    deleted = by_path["/Documents/secret.txt"]
    assert not deleted.allocated and deleted.kind == "file"
    jpeg = by_path["/DCIM/100EXHIB/IMG_0001.JPG"]
    assert jpeg.location.fs_type == "fat32" and jpeg.location.volume_index == 2
    assert jpeg.size > 0 and jpeg.mtime and jpeg.mtime.endswith("Z")
    assert jpeg.extension == "jpg"
    for entry in by_path.values():
        assert FileEntry_roundtrip(entry)


def FileEntry_roundtrip(entry: object) -> bool:
    cls = type(entry)
    return cls.from_dict(entry.to_dict()) == entry  # type: ignore[attr-defined]


def test_non_utf8_name_round_trips_to_fls_bytes(sample_raw: Path, raw_image: EvidenceImage) -> None:
    volume = find_volumes(raw_image).candidates[1]
    out = subprocess.run(
        [require_tool("fls"), "-r", "-p", "-o", str(volume.sector_offset), str(sample_raw)],
        check=True, capture_output=True,
    ).stdout
    raw_paths = [FLS_LINE.match(line)["path"] for line in out.splitlines()]
    non_utf8 = []
    for raw in raw_paths:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            non_utf8.append(raw)
    assert non_utf8, "the sample should hold a non-UTF-8 name"
    ours = {e.location.path for e in walk_filesystem(raw_image, volume, EVIDENCE_ID)}
    for raw in non_utf8:
        text = "/" + decode_name(raw)
        assert text in ours
        assert "\\x" in text
        assert encode_name(text[1:]) == raw


# ----------------------------------------------------------------------- content vs icat


def test_content_equals_icat(sample_raw: Path, raw_image: EvidenceImage) -> None:
    reader = ContentReader(raw_image.spec, raw_image)
    checked = 0
    for offset, entries in walk_rows(raw_image).items():
        for entry in entries:
            if entry.kind != "file" or entry.location.inode == 0:
                continue
            ours = digests(reader.read_all(offset, entry.location.inode))
            assert ours == icat_hashes(sample_raw, offset // 512, entry.location.inode), entry
            checked += 1
    assert checked >= 15


def test_reader_for_caches_per_process(sample_raw: Path) -> None:
    spec = pickle.loads(pickle.dumps(open_image([sample_raw]).spec))
    assert isinstance(spec, ImageSpec)
    try:
        first = reader_for(spec)
        assert reader_for(spec) is first
        chunks = list(first.iter_chunks(2048 * 512, 1290052, chunk_size=4096))
        assert all(len(c) <= 4096 for c in chunks) and len(chunks) > 1
    finally:
        close_readers()


def test_image_pickles_as_description(sample_e01: Path) -> None:
    with open_image([sample_e01]) as image:
        clone = pickle.loads(pickle.dumps(image))
        try:
            assert clone.spec == image.spec
            assert clone.read_at(4096, 1000) == image.read_at(4096, 1000)
        finally:
            clone.close()


# ----------------------------------------------------------------------- read-only


def _open_fd_flags(paths: set[str]) -> list[int]:
    flags = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            info = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except OSError:
            continue
        if target in paths:
            flags.append(int(re.search(r"flags:\s*([0-7]+)", info).group(1), 8))
    return flags


@pytest.mark.parametrize("container", ["raw", "split", "e01"])
def test_evidence_opened_read_only(
    container: str, sample_raw: Path, sample_split: list[Path], sample_e01: Path
) -> None:
    paths = {"raw": [sample_raw], "split": sample_split, "e01": [sample_e01]}[container]
    before = [(sha256_file(p), p.stat().st_mtime_ns) for p in paths]
    image = open_image(paths)
    try:
        flags = _open_fd_flags({str(p.resolve()) for p in image.paths})
        assert len(flags) >= len(paths)
        assert all(f & os.O_ACCMODE == os.O_RDONLY for f in flags)
        reader = ContentReader(image.spec, image)
        for offset, entries in walk_rows(image).items():
            for entry in entries[:5]:
                if entry.kind == "file":
                    reader.read_all(offset, entry.location.inode)
        hash_image(image)
    finally:
        image.close()
    assert [(sha256_file(p), p.stat().st_mtime_ns) for p in paths] == before
    assert all(p.stat().st_mode & 0o222 == 0 for p in paths)  # conftest made them 0444
