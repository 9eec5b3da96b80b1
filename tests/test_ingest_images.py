"""Ingest on images the sample does not cover, built here with the real tools.

GPT, a bare filesystem with no partition table, NTFS with an alternate data stream,
exFAT, corrupt trees, and inputs that must be refused with a message naming the path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import threading
from pathlib import Path

import pytest
from conftest import require_tool
from fuzz import scenarios
from test_ingest import EVIDENCE_ID, FLS_LINE, digests, fls, icat_hashes

from ingest.content import ContentReader
from ingest.errors import IngestError, UnsupportedImageError
from ingest.image import detect_format, open_image
from ingest.location import decode_name
from ingest.signatures import identify
from ingest.volumes import NO_TABLE_WARNING, find_volumes
from ingest.walk import FilesystemWalker, open_filesystem, open_filesystems

MIB = 1 << 20


def run(*cmd: str, stdin: bytes | None = None) -> None:
    require_tool(cmd[0])
    subprocess.run(cmd, check=True, input=stdin, capture_output=True,
                   env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})


def make_fat(path: Path, size_mib: int, fat: str = "16") -> Path:
    """A FAT filesystem with a nested folder, a file and a deleted file (mtools only)."""
    with path.open("wb") as fh:
        fh.truncate(size_mib * MIB)
    run("mkfs.vfat", "-F", fat, "-n", "TESTVOL", str(path))
    src = path.parent / "payload.bin"
    src.write_bytes(hashlib.sha256(b"exhibit").digest() * 4000)
    run("mmd", "-i", str(path), "::A")
    run("mmd", "-i", str(path), "::A/B")
    run("mcopy", "-i", str(path), str(src), "::A/B/PAYLOAD.BIN")
    run("mcopy", "-i", str(path), str(src), "::GONE.BIN")
    run("mdel", "-i", str(path), "::GONE.BIN")
    return path


DELETED_TREE = ("/dir1", "/dir1/dir2", "/dir1/dir2/frag3.dat", "/dir1/mult2.dat")


def _payload(tag: str, lines: int) -> bytes:
    return b"".join(b"%s line %05d\n" % (tag.encode(), i) for i in range(lines))


def make_fat_deleted_dir(path: Path) -> Path:
    """FAT12 with DIR1/DIR2/FRAG3.DAT and DIR1/MULT2.DAT, then ``mdeltree DIR1``."""
    with path.open("wb") as fh:
        fh.truncate(2 * MIB)
    run("mkfs.vfat", "-F", "12", "-n", "DELDIR", str(path))
    for name, lines in (("frag3.dat", 400), ("mult2.dat", 300), ("keep.txt", 2)):
        (path.parent / name).write_bytes(_payload(name.split(".")[0], lines))
    run("mmd", "-i", str(path), "::DIR1")
    run("mmd", "-i", str(path), "::DIR1/DIR2")
    run("mcopy", "-i", str(path), str(path.parent / "frag3.dat"), "::DIR1/DIR2/FRAG3.DAT")
    run("mcopy", "-i", str(path), str(path.parent / "mult2.dat"), "::DIR1/MULT2.DAT")
    run("mcopy", "-i", str(path), str(path.parent / "keep.txt"), "::KEEP.TXT")
    run("mdeltree", "-i", str(path), "::DIR1")
    return path


def make_ext4_deleted_dir(path: Path) -> Path:
    """ext4 with dir1/dir2/frag3.dat and dir1/mult2.dat, all removed with debugfs."""
    src = path.parent / "ext-src"
    (src / "dir1" / "dir2").mkdir(parents=True)
    (src / "dir1" / "dir2" / "frag3.dat").write_bytes(_payload("frag3", 400))
    (src / "dir1" / "mult2.dat").write_bytes(_payload("mult2", 300))
    (src / "keep.txt").write_bytes(_payload("keep", 2))
    run("mke2fs", "-q", "-F", "-t", "ext4", "-b", "1024", "-d", str(src), str(path), "2M")
    # debugfs rm/rmdir free the inodes and blocks but keep the extents, as a crash-free
    # deletion by an old kernel would; fls then still reads the deleted folder.
    run("debugfs", "-w", "-f", "-", str(path), stdin=b"rm /dir1/dir2/frag3.dat\n"
        b"rmdir /dir1/dir2\nrm /dir1/mult2.dat\nrmdir /dir1\n")
    return path


def assert_walk_matches_fls(image_path: Path, volume_start: int = 0) -> FilesystemWalker:
    with open_image([image_path]) as image:
        volume = next(v for v in find_volumes(image).candidates if v.start == volume_start)
        walker = FilesystemWalker(image, volume, EVIDENCE_ID)
        ours = {(e.location.path, e.location.inode, e.allocated) for e in walker}
        assert ours == fls(image_path, volume_start // 512)
        reader = ContentReader(image.spec, image)
        for path, inode, _ in ours:
            if path.endswith("PAYLOAD.BIN"):
                expected = icat_hashes(image_path, volume_start // 512, inode)
                assert digests(reader.read_all(volume_start, inode)) == expected
        return walker


def test_gpt_partition_table(tmp_path: Path) -> None:
    disk = tmp_path / "gpt.img"
    with disk.open("wb") as fh:
        fh.truncate(40 * MIB)
    run("sfdisk", "-q", str(disk), stdin=b"label: gpt\nstart=2048, size=30720, type=L\n")
    fat = make_fat(tmp_path / "p1.img", 15)
    with disk.open("r+b") as fh:
        fh.seek(2048 * 512)
        fh.write(fat.read_bytes())
    with open_image([disk]) as image:
        scan = find_volumes(image)
        assert scan.partition_table == "gpt"
        assert [v.start for v in scan.candidates] == [2048 * 512]
        assert any(v.flag == "meta" for v in scan.volumes)  # protective MBR, GPT header…
    walker = assert_walk_matches_fls(disk, 2048 * 512)
    assert walker.fs_type == "fat16"
    assert walker.stats.deleted == 1


def test_bare_filesystem_is_one_volume(tmp_path: Path) -> None:
    fat = make_fat(tmp_path / "bare.img", 4, fat="12")
    with open_image([fat]) as image:
        scan = find_volumes(image)
        assert scan.partition_table is None
        assert scan.warnings == [NO_TABLE_WARNING]
        assert len(scan.volumes) == 1
        assert scan.volumes[0].start == 0 and scan.volumes[0].length == image.size
        assert scan.volumes[0].index == -1
    assert assert_walk_matches_fls(fat).fs_type == "fat12"


def test_ntfs_with_alternate_data_stream(tmp_path: Path) -> None:
    img = tmp_path / "ntfs.img"
    with img.open("wb") as fh:
        fh.truncate(8 * MIB)
    run("mkntfs", "-F", "-Q", "-q", str(img))
    (tmp_path / "main.txt").write_bytes(b"main stream\n" * 100)
    (tmp_path / "ads.txt").write_bytes(b"hidden stream\n" * 50)
    run("ntfscp", "-q", str(img), str(tmp_path / "main.txt"), "hello.txt")
    run("ntfscp", "-q", "-N", "secret", str(img), str(tmp_path / "ads.txt"), "hello.txt")

    out = subprocess.run([require_tool("fls"), "-r", "-p", str(img)], check=True,
                         capture_output=True).stdout
    oracle_names: set[tuple[str, int, bool]] = set()
    oracle_streams: set[tuple[str, int]] = set()
    for line in out.splitlines():
        match = FLS_LINE.match(line)
        assert match, line
        path = "/" + decode_name(match["path"])
        inode = int(match["inode"])
        base, _, stream = path.partition(":")  # ':' cannot occur in NTFS names
        oracle_names.add((base, inode, match["deleted"] is None))
        if stream and match["rest"].startswith(b"-128-"):  # named $DATA attributes
            oracle_streams.add((path, inode))

    with open_image([img]) as image:
        volume = find_volumes(image).volumes[0]
        walker = FilesystemWalker(image, volume, EVIDENCE_ID)
        entries = list(walker)
        assert walker.fs_type == "ntfs"
        names = {(e.location.path, e.location.inode, e.allocated)
                 for e in entries if e.location.stream is None}
        streams = {(f"{e.location.path}:{e.location.stream}", e.location.inode)
                   for e in entries if e.location.stream is not None}
        assert names == oracle_names
        assert streams == oracle_streams
        assert "/hello.txt:secret" in {path for path, _ in streams}
        assert walker.stats.orphans > 0  # mkntfs leaves reserved MFT entries as orphans

        hello = next(e for e in entries if e.location.path == "/hello.txt"
                     and e.location.stream is None)
        reader = ContentReader(image.spec, image)
        inode = hello.location.inode
        assert reader.read_all(0, inode) == (tmp_path / "main.txt").read_bytes()
        assert reader.read_all(0, inode, "secret") == (tmp_path / "ads.txt").read_bytes()
        assert digests(reader.read_all(0, inode)) == icat_hashes(img, 0, inode)
        with pytest.raises(IngestError, match="no such stream"):
            reader.read_all(0, inode, "nope")


@pytest.mark.parametrize("kind", ["ntfs", "fat", "ext4"])
def test_deleted_folder_contents_equal_fls_and_icat(
    tmp_path: Path, deleted_ntfs: Path, kind: str
) -> None:
    """A deleted folder is walked into as ``fls -r`` does; its children keep their own
    (deleted) state and read like ``icat``."""
    if kind == "ntfs":
        img = deleted_ntfs
    elif kind == "fat":
        img = make_fat_deleted_dir(tmp_path / "fat.img")
    else:
        img = make_ext4_deleted_dir(tmp_path / "ext4.img")
    oracle = fls(img, 0)
    if kind == "ntfs":  # fls lists NTFS attributes as name:attr (':' is no NTFS name byte)
        oracle = {(path.partition(":")[0], inode, alloc) for path, inode, alloc in oracle}
    with open_image([img]) as image:
        walker = FilesystemWalker(image, find_volumes(image).volumes[0], EVIDENCE_ID)
        entries = [e for e in walker if e.location.stream is None]
        ours = {(e.location.path, e.location.inode, e.allocated) for e in entries}
        assert ours == oracle
        # FAT overwrites a deleted name's first byte: fls and we show it as "_".
        wanted = DELETED_TREE if kind != "fat" else tuple(
            p.upper().replace("/D", "/_").replace("/M", "/_").replace("/F", "/_")
            for p in DELETED_TREE)
        deleted = {e.location.path: e for e in entries if not e.allocated}
        assert set(wanted) <= set(deleted), sorted(deleted)
        reader = ContentReader(image.spec, image)
        for path in wanted:
            entry = deleted[path]
            if entry.kind != "file":
                continue
            expected = icat_hashes(img, 0, entry.location.inode)
            assert digests(reader.read_all(0, entry.location.inode)) == expected
            name = path.rsplit("/", 1)[-1].lower().lstrip("_")
            lines = {"rag3.dat": 400, "frag3.dat": 400, "ult2.dat": 300, "mult2.dat": 300}
            tag = "frag3" if "rag3" in name else "mult2"
            assert expected == digests(_payload(tag, lines[name]))  # icat reads it whole


def fls_typed(image: Path, sector_offset: int, fs_type: str) -> set[tuple[str, int, bool]]:
    """(path, inode, allocated) of ``fls -f TYPE -r -p``, NTFS attribute suffixes cut."""
    out = subprocess.run(
        [require_tool("fls"), "-f", fs_type, "-r", "-p", "-o", str(sector_offset), str(image)],
        check=True, capture_output=True).stdout
    rows = set()
    for line in out.splitlines():
        match = FLS_LINE.match(line)
        assert match, line
        path = "/" + decode_name(match["path"])
        if fs_type == "ntfs":
            path = path.partition(":")[0]
        rows.add((path, int(match["inode"]), match["deleted"] is None))
    return rows


def test_volume_with_two_filesystems_walks_each(tmp_path: Path) -> None:
    """NTFS, then ext2 over it: TSK's detection refuses, each type is walked as
    ``fls -f TYPE`` lists it and read as ``icat -f TYPE`` reads it."""
    img = scenarios.two_filesystems(tmp_path)
    with open_image([img]) as image:
        volume = find_volumes(image).candidates[0]
        with pytest.raises(IngestError, match="Multiple file system types"):
            open_filesystem(image, volume.start)
        found = open_filesystems(image, volume.start)
        assert sorted(name for _, name in found) == ["ext2", "ntfs"]
        reader = ContentReader(image.spec, image)
        for fs, fs_type in found:
            walker = FilesystemWalker(image, volume, EVIDENCE_ID, fs=fs, fs_type=fs_type)
            entries = [e for e in walker if e.location.stream is None]
            assert {e.location.fs_type for e in entries} == {fs_type}
            ours = {(e.location.path, e.location.inode, e.allocated) for e in entries}
            assert ours == fls_typed(img, volume.sector_offset, fs_type)
            plain = [e for e in entries if e.kind == "file" and "$" not in e.location.path]
            assert len(plain) == 2
            for entry in plain:
                inode = entry.location.inode
                icat = subprocess.run(
                    [require_tool("icat"), "-f", fs_type, "-o", str(volume.sector_offset),
                     str(img), str(inode)], check=True, capture_output=True).stdout
                assert reader.read_all(volume.start, inode, fs_type=fs_type) == icat


def test_exfat(tmp_path: Path) -> None:
    if shutil.which("mkfs.exfat") is None:
        pytest.fail("mkfs.exfat is missing: install exfatprogs")
    img = tmp_path / "exfat.img"
    with img.open("wb") as fh:
        fh.truncate(8 * MIB)
    run("mkfs.exfat", "-L", "EXF", str(img))
    walker = assert_walk_matches_fls(img)
    assert walker.fs_type == "exfat"


def test_volume_without_filesystem_is_reported(tmp_path: Path) -> None:
    img = tmp_path / "noise.img"
    img.write_bytes(b"\x00" * MIB)
    with open_image([img]) as image, pytest.raises(IngestError, match="offset 0"):
        open_filesystem(image, 0)


def _walk_with_timeout(image_path: Path, seconds: float = 60) -> FilesystemWalker:
    result: dict[str, object] = {}

    def work() -> None:
        try:
            with open_image([image_path]) as image:
                walker = FilesystemWalker(image, find_volumes(image).volumes[0], EVIDENCE_ID)
                result["entries"] = list(walker)
                result["walker"] = walker
        except IngestError as exc:
            result["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "walk did not terminate"
    return result.get("walker")  # type: ignore[return-value]


def test_fat_directory_loop_terminates(tmp_path: Path) -> None:
    """Point /A/B at /A's own cluster: B contains B contains B…"""
    img = make_fat(tmp_path / "loop.img", 4, fat="12")
    data = bytearray(img.read_bytes())
    a_entry = data.index(b"A          \x10")
    a_cluster = struct.unpack_from("<H", data, a_entry + 26)[0]
    b_entry = data.index(b"B          \x10")
    struct.pack_into("<H", data, b_entry + 26, a_cluster)
    img.write_bytes(bytes(data))
    walker = _walk_with_timeout(img)
    assert walker is not None
    assert walker.stats.skipped >= 1
    assert any("loop" in note or "depth" in note for note in walker.stats.notes)


def test_ext_with_garbage_metadata_terminates(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "d1" / "d2").mkdir(parents=True)
    for i in range(20):
        (root / "d1" / f"f{i}.txt").write_text(f"file {i}\n")
    img = tmp_path / "ext.img"
    with img.open("wb") as fh:
        fh.truncate(4 * MIB)
    run("mke2fs", "-q", "-t", "ext4", "-d", str(root), str(img))
    data = bytearray(img.read_bytes())
    noise = hashlib.sha256(b"noise").digest() * 2048  # 64 KiB of junk
    start = 64 * 1024  # block bitmaps, inode table of a 1 KiB-block filesystem
    data[start : start + len(noise)] = noise
    img.write_bytes(bytes(data))
    _walk_with_timeout(img)  # either entries with notes or an IngestError: never a hang


# ----------------------------------------------------------------------- refused inputs


def test_refuses_unusable_inputs(tmp_path: Path) -> None:
    empty = tmp_path / "empty.dd"
    empty.touch()
    cases = {
        tmp_path / "missing.dd": "does not exist",
        tmp_path: "directory",
        empty: "empty",
    }
    for path, message in cases.items():
        with pytest.raises(UnsupportedImageError, match=message) as info:
            open_image([path])
        assert str(path) in str(info.value)


def test_split_gap_is_refused(tmp_path: Path) -> None:
    for suffix in ("001", "002", "004"):
        (tmp_path / f"disk.{suffix}").write_bytes(b"\x00" * 4096)
    with pytest.raises(UnsupportedImageError, match="gap"):
        open_image([tmp_path / "disk.001"])
    with pytest.raises(UnsupportedImageError, match="first segment"):
        open_image([tmp_path / "disk.002"])


@pytest.mark.parametrize("style", ["000", "aa"])
def test_split_styles(tmp_path: Path, style: str) -> None:
    payload = os.urandom(10_000)
    names = ["000", "001", "002"] if style == "000" else ["aa", "ab", "ac"]
    for i, name in enumerate(names):
        (tmp_path / f"disk.{name}").write_bytes(payload[i * 4000 : (i + 1) * 4000])
    first = tmp_path / f"disk.{names[0]}"
    assert detect_format([first]) == "split-raw"
    for given in ([first], [tmp_path / f"disk.{n}" for n in reversed(names)]):
        with open_image(given) as image:
            assert image.size == len(payload)
            assert image.read_at(0, image.size) == payload
            assert image.read_at(3990, 30) == payload[3990:4020]  # across a segment edge
            assert image.read_at(9990, 100) == payload[9990:]


def test_corrupt_e01_is_refused(sample_e01: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.E01"
    data = bytearray(sample_e01.read_bytes()[:4096])
    broken.write_bytes(bytes(data))
    with pytest.raises(IngestError) as info, open_image([broken]) as image:
        image.read_at(0, image.size)
    assert str(broken) in str(info.value)


def _identify_file(path: Path) -> str:
    with path.open("rb") as fh:
        return identify(lambda offset, size: os.pread(fh.fileno(), size, offset), 0,
                        path.stat().st_size)


def test_unreadable_containers_are_named_by_content(tmp_path: Path) -> None:
    """Virtual disks made by qemu-img, an APFS container by mkapfs, LUKS by cryptsetup,
    gzip: each named by its bytes (the names given here are all ``.bin``)."""
    fat = make_fat(tmp_path / "fat.img", 4, fat="12")
    assert _identify_file(fat) == "unknown"  # readable: no container signature to name
    made: dict[str, Path] = {}
    for label, fmt, options in (
        ("VMDK sparse extent", "vmdk", []),
        ("VMDK sparse extent (stream)", "vmdk", ["-o", "subformat=streamOptimized"]),
        ("VHD (dynamic)", "vpc", []), ("VHD (fixed)", "vpc", ["-o", "subformat=fixed"]),
        ("VHDX", "vhdx", []), ("QCOW2", "qcow2", []),
    ):
        made[label] = tmp_path / f"{fmt}-{len(made)}.bin"
        run("qemu-img", "convert", "-f", "raw", "-O", fmt, *options, str(fat), str(made[label]))
    run("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat",
        str(fat), str(tmp_path / "flat.vmdk"))
    made["VMDK descriptor (the data is in the extent files it names)"] = tmp_path / "flat.vmdk"
    apfs = tmp_path / "apfs.bin"
    with apfs.open("wb") as fh:
        fh.truncate(128 * MIB)  # mkapfs's smallest container; sparse
    run("mkapfs", str(apfs))
    made["APFS container"] = apfs
    luks = tmp_path / "luks.bin"
    with luks.open("wb") as fh:
        fh.truncate(20 * MIB)
    (tmp_path / "key").write_bytes(b"exhibit")
    run("cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2",
        "--pbkdf-force-iterations", "1000", "--key-file", str(tmp_path / "key"), str(luks))
    made["LUKS2 encrypted volume"] = luks
    gz = tmp_path / "gz.bin"
    gz.write_bytes(subprocess.run(["gzip", "-c", str(fat)], check=True,
                                  capture_output=True).stdout)
    made["gzip-compressed file"] = gz
    noise = tmp_path / "noise.bin"
    noise.write_bytes(hashlib.shake_256(b"noise").digest(3 * MIB))
    made["unknown"] = noise
    zeros = tmp_path / "zeros.bin"
    zeros.write_bytes(bytes(2 * MIB))
    made["blank (only zero bytes in the first MiB)"] = zeros
    found = {label: _identify_file(path) for label, path in made.items()}
    assert found == {label: label.replace(" (stream)", "") for label in made}


def test_volume_signatures_from_their_specifications() -> None:
    """Signatures no packaged tool here writes into a file: BitLocker's boot sector OEM id,
    an LVM2 label in sector 1, a DMG's trailing 'koly' block, LUKS1, QCOW version 1."""
    def named(data: bytes) -> str:
        return identify(lambda offset, size: data[offset:offset + size], 0, len(data))

    sector = bytearray(4096)
    sector[3:11] = b"-FVE-FS-"
    assert named(bytes(sector) + b"\x01" * 4096) == "BitLocker encrypted volume"
    sector = bytearray(4096)
    sector[512:520], sector[536:544] = b"LABELONE", b"LVM2 001"
    assert named(bytes(sector)) == "LVM2 physical volume"
    dmg = b"\x01" * 8192 + b"koly" + bytes(508)
    assert named(dmg) == "Apple disk image (DMG, UDIF)"
    assert named(b"LUKS\xba\xbe\x00\x01" + b"\x01" * 600) == "LUKS1 encrypted volume"
    assert named(b"QFI\xfb\x00\x00\x00\x01" + b"\x01" * 600) == "QCOW (version 1)"
    assert named(b"") == "unknown"
