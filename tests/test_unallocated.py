"""Unallocated space against ``blkls``: every filesystem type we read, built by real tools.

Each image is made here with the tools a Linux examiner has (mkfs.vfat + mtools,
mke2fs -d + debugfs, mkntfs + ntfscp, mkfs.exfat, sfdisk), files copied in and some
deleted, so free space sits between used clusters. The oracle is The Sleuth Kit's own
``blkls`` (unallocated blocks by default): the bytes our runs read must equal its output
byte for byte, and the runs must equal the ones its ``-l`` listing names.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool

from ingest.errors import IngestError
from ingest.image import EvidenceImage, open_image
from ingest.unallocated import (
    ByteRun,
    UnallocatedUnsupportedError,
    filesystem_unallocated,
    iter_unallocated,
    merge_runs,
    partition_gaps,
    subtract_runs,
    volume_slack,
    volume_unallocated,
)
from ingest.unallocated.runs import RunList
from ingest.volumes import find_volumes
from ingest.walk import open_filesystem

MIB = 1 << 20


def run(*cmd: str | Path, stdin: bytes | None = None) -> bytes:
    tool = require_tool(str(cmd[0]))
    return subprocess.run([tool, *map(str, cmd[1:])], check=True, input=stdin,
                          capture_output=True, timeout=120).stdout


def blank(path: Path, size: int) -> Path:
    with path.open("wb") as fh:
        fh.truncate(size)
    return path


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of files of awkward sizes; b.bin and e.bin are deleted from each image."""
    folder = tmp_path_factory.mktemp("payload")
    for name, size in (("a.bin", 300_000), ("b.bin", 70_001), ("c.bin", 5_000),
                       ("d.bin", 123_457), ("e.bin", 40_960)):
        (folder / name).write_bytes(os.urandom(size))
    return folder


def make_fat(folder: Path, payload: Path, bits: int, size: int) -> Path:
    img = blank(folder / f"fat{bits}.img", size)
    run("mkfs.vfat", "-F", str(bits), "-s", "2" if bits == 12 else "1", img)
    names = sorted(p.name for p in payload.iterdir())
    run("mcopy", "-i", img, *(payload / n for n in names), "::/")
    run("mdel", "-i", img, "::/b.bin", "::/e.bin")
    return img


def make_ext(folder: Path, payload: Path, kind: str, *options: str, size: int) -> Path:
    img = blank(folder / f"{kind}{len(options)}.img", size)
    run("mke2fs", "-q", "-F", "-t", kind, *options, "-d", payload, img)
    run("debugfs", "-w", "-R", "rm b.bin", img)
    run("debugfs", "-w", "-R", "rm e.bin", img)
    return img


def make_ntfs(folder: Path, payload: Path) -> Path:
    img = blank(folder / "ntfs.img", 8 * MIB)
    run("mkntfs", "-F", "-q", "-Q", img)
    for name in ("a.bin", "c.bin", "d.bin"):
        run("ntfscp", img, payload / name, name)
    return img


def make_exfat(folder: Path, name: str = "exfat") -> Path:
    img = blank(folder / f"{name}.img", 8 * MIB)
    run("mkfs.exfat", img)
    return img


def make_exfat_in_use(folder: Path) -> Path:
    """exFAT with clusters marked in use across its bitmap (exfatprogs cannot copy files).

    ``fls`` and ``istat`` (the oracles) say where the allocation bitmap lies; random
    bytes over part of it leave free and used clusters interleaved, as files would.
    """
    img = make_exfat(folder, "exfat-in-use")
    listing = run("fls", img).decode().splitlines()
    inode = next(line.split()[1].rstrip(":") for line in listing if "$ALLOC_BITMAP" in line)
    sectors = run("istat", img, inode).decode().split("Sectors:")[1].split()
    with img.open("r+b") as fh:
        fh.seek(int(sectors[0]) * 512 + 4)  # the first 32 clusters keep their state
        fh.write(os.urandom(40))
    return img


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, payload: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("unalloc")
    return {
        "fat12": make_fat(folder, payload, 12, 4 * MIB),
        "fat16": make_fat(folder, payload, 16, 16 * MIB),
        "fat32": make_fat(folder, payload, 32, 34 * MIB),
        # 1 KiB blocks: block 0 lies before s_first_data_block.
        "ext2": make_ext(folder, payload, "ext2", "-b", "1024", size=8 * MIB),
        # Four groups with 32-byte descriptors, bitmaps in each group.
        "ext3": make_ext(folder, payload, "ext3", "-b", "1024", "-g", "2048", size=8 * MIB),
        # Eight groups, flex_bg, BLOCK_UNINIT groups, 64-byte descriptors.
        "ext4": make_ext(folder, payload, "ext4", "-b", "1024", size=64 * MIB),
        "ext4-64bit": make_ext(folder, payload, "ext4", "-b", "4096", "-O", "64bit",
                               "-G", "4", "-g", "1024", size=24 * MIB),
        "ntfs": make_ntfs(folder, payload),
        "exfat": make_exfat(folder),
        "exfat-in-use": make_exfat_in_use(folder),
    }


def blkls(img: Path, sector_offset: int = 0, *flags: str) -> bytes:
    return run("blkls", *flags, "-o", str(sector_offset), img)


def blkls_runs(img: Path, sector_offset: int, image_base: int) -> list[ByteRun]:
    """The runs ``blkls -l`` names, in image bytes.

    Its header names the unit: FAT and exFAT are listed in sectors; otherwise the block
    or cluster size comes from ``fsstat`` (not asked for exFAT, where TSK 4.11's fsstat
    loops on an empty volume).
    """
    listing = blkls(img, sector_offset, "-l").decode().splitlines()
    unit = listing[1].split("|")[-1]
    block = 512
    if unit != "Sector":
        fsstat = run("fsstat", "-o", str(sector_offset), img).decode().splitlines()
        key = {"Fragment": "Block Size:", "Cluster": "Cluster Size:"}[unit]  # ext, NTFS
        block = int(next(line for line in fsstat if line.startswith(key)).split(":")[1])
    addrs = [int(line.split("|")[0]) for line in listing if line.endswith("|f")]
    return merge_runs(ByteRun(image_base + a * block, block) for a in addrs)


def read_all(image: EvidenceImage, runs: list[ByteRun], chunk: int = 8 * MIB) -> bytes:
    return b"".join(data for _, data in iter_unallocated(image, runs, chunk))


@pytest.mark.parametrize("kind", ["fat12", "fat16", "fat32", "ext2", "ext3", "ext4",
                                  "ext4-64bit", "ntfs", "exfat", "exfat-in-use"])
def test_runs_equal_blkls(images: dict[str, Path], kind: str) -> None:
    img = images[kind]
    with open_image(img) as image:
        fs, fs_type = open_filesystem(image, 0)
        assert fs_type == kind.split("-")[0]
        runs = filesystem_unallocated(image, 0, fs, fs_type)
        assert runs == merge_runs(runs), "runs come sorted and merged"
        assert len(runs) > 1 or kind == "exfat", "deleted files leave free space between"
        assert read_all(image, runs) == blkls(img)
    if kind != "ext4":  # 64 Mi one-line-per-block listing: the bytes above suffice
        assert runs == blkls_runs(img, 0, 0)


def test_small_chunks_read_sequentially(images: dict[str, Path]) -> None:
    img = images["fat16"]
    with open_image(img) as image:
        fs, fs_type = open_filesystem(image, 0)
        runs = filesystem_unallocated(image, 0, fs, fs_type)
        pieces = list(iter_unallocated(image, runs, chunk=4097))
    assert all(len(data) <= 4097 for _, data in pieces)
    want = [(off, off + 1) for r in runs for off in range(r.offset, r.end, 4097)]
    assert [(off, off + 1) for off, _ in pieces] == want
    assert b"".join(data for _, data in pieces) == blkls(img)
    with pytest.raises(ValueError):
        next(iter_unallocated(image, runs, chunk=0))


def mmls_free(disk: Path) -> list[ByteRun]:
    """Every slot ``mmls`` calls unallocated, in bytes."""
    rows = (line.split() for line in run("mmls", disk).decode().splitlines())
    return [ByteRun(int(f[2]) * 512, int(f[4]) * 512) for f in rows if f and f[-1] == "Unallocated"]


def test_partitioned_disk(tmp_path: Path, images: dict[str, Path]) -> None:
    """Partitions with gaps between and after, volume slack, a partition with no filesystem."""
    disk = blank(tmp_path / "disk.img", 48 * MIB)
    run("sfdisk", "-q", disk, stdin=b"label: dos\n"
        b"start=2048, size=33792, type=6\n"     # FAT16 and 512 KiB of slack, a 512 KiB gap
        b"start=36864, size=16384, type=83\n"   # ext3 filling it, then a 2 MiB gap
        b"start=57344, size=8192, type=83\n")   # nothing recognisable; 16 MiB free after
    with disk.open("r+b") as fh:
        for name, start in (("fat16", 2048), ("ext3", 36864)):
            fh.seek(start * 512)
            fh.write(images[name].read_bytes())
        fh.seek((2048 + 32768) * 512)
        fh.write(os.urandom(1024 * 512))  # the FAT16 volume's slack
        fh.seek(57344 * 512)
        fh.write(os.urandom(8192 * 512))
    raw = disk.read_bytes()
    with open_image(disk) as image:
        scan = find_volumes(image)
        fat, ext, bare = scan.candidates
        assert [v.sector_offset for v in (fat, ext, bare)] == [2048, 36864, 57344]
        opened = open_filesystem(image, fat.start)
        slack = ByteRun((2048 + 32768) * 512, 1024 * 512)
        assert volume_slack(image, fat, *opened) == [slack]
        runs = volume_unallocated(image, fat, opened)
        assert runs == merge_runs([*blkls_runs(disk, fat.sector_offset, fat.start), slack])
        assert read_all(image, runs) == blkls(disk, fat.sector_offset) + raw[slack.offset:
                                                                                slack.end]
        runs = volume_unallocated(image, ext, open_filesystem(image, ext.start))
        assert runs == blkls_runs(disk, ext.sector_offset, ext.start)
        assert read_all(image, runs) == blkls(disk, ext.sector_offset)
        whole = volume_unallocated(image, bare, None)
        assert whole == [ByteRun(bare.start, bare.length)]
        assert read_all(image, whole) == run("mmcat", disk, str(bare.index))
        gaps = partition_gaps(image, scan)
    # The oracle for gaps: every sector mmls calls unallocated, less the MBR it overlaps.
    assert gaps == subtract_runs(mmls_free(disk), [ByteRun(0, 512)])
    assert gaps == [ByteRun(512, 2047 * 512), ByteRun(35840 * 512, 1024 * 512),
                    ByteRun(53248 * 512, 4096 * 512), ByteRun(65536 * 512, 32768 * 512)]


def test_gpt_gaps_leave_out_the_backup_table(tmp_path: Path) -> None:
    """TSK lists GPT's backup header and table as unallocated; they are structure."""
    disk = blank(tmp_path / "gpt.img", 8 * MIB)
    run("sfdisk", "-q", disk, stdin=b"label: gpt\nstart=2048, size=4096, type=L\n"
        b"start=8192, size=2048, type=L\n")
    table = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in
             run("sfdisk", "-d", disk).decode().splitlines())}
    usable_end = (int(table["last-lba"]) + 1) * 512
    with open_image(disk) as image:
        gaps = partition_gaps(image, find_volumes(image))
    structure = [ByteRun(0, 34 * 512), ByteRun(usable_end, 8 * MIB - usable_end)]
    assert gaps == subtract_runs(mmls_free(disk), structure)
    assert gaps[-1].end == usable_end


def test_ntfs_slack_skips_the_backup_boot_sector(tmp_path: Path, images: dict[str, Path]) -> None:
    """An 8 MiB NTFS in a 9 MiB image: slack after its last cluster, less its boot copy."""
    img = tmp_path / "ntfs-slack.img"
    img.write_bytes(images["ntfs"].read_bytes() + os.urandom(MIB))
    with open_image(img) as image:
        (volume,) = find_volumes(image).volumes
        opened = open_filesystem(image, 0)
        clusters_end = (int(opened[0].info.last_block) + 1) * 4096
        backup = 16383 * 512
        assert image.read_at(backup, 11)[3:] == b"NTFS    "
        slack = volume_slack(image, volume, *opened)
        assert slack == [ByteRun(clusters_end, backup - clusters_end),
                         ByteRun(8 * MIB, MIB)]
        runs = volume_unallocated(image, volume, opened)
        assert runs == merge_runs([*blkls_runs(img, 0, 0), *slack])


def test_no_partition_table_has_no_gaps(images: dict[str, Path]) -> None:
    with open_image(images["fat12"]) as image:
        assert partition_gaps(image, find_volumes(image)) == []


def test_unsupported_filesystem_says_so(images: dict[str, Path]) -> None:
    with open_image(images["fat12"]) as image:
        fs, _ = open_filesystem(image, 0)
        with pytest.raises(UnallocatedUnsupportedError, match="iso9660"):
            filesystem_unallocated(image, 0, fs, "iso9660")


def test_run_arithmetic() -> None:
    assert merge_runs([(10, 5), (0, 10), (30, 0), (14, 4)]) == [ByteRun(0, 18)]
    assert subtract_runs([ByteRun(0, 100)], [ByteRun(10, 10), ByteRun(90, 20)]) == [
        ByteRun(0, 10), ByteRun(20, 70)]
    blocks = RunList()
    blocks.add(5, 3)
    blocks.add(20, 1)
    assert [blocks.any_free(s, n) for s, n in ((0, 5), (0, 6), (7, 13), (8, 12), (8, 13),
                                               (21, 9), (6, 0))] == [
        False, True, True, False, True, False, False]


def test_e01_reads_the_same_bytes(images: dict[str, Path], tmp_path: Path) -> None:
    """Through an E01 the runs and bytes are those ``blkls`` gives for the raw image."""
    raw = images["ext4-64bit"]
    target = tmp_path / "ext4"
    run("ewfacquire", "-u", "-t", target, "-f", "encase6", "-c", "fast", "-S", "1.4GiB",
        "-l", tmp_path / "acquire.log", raw)
    with open_image(target.with_suffix(".E01")) as image:
        assert image.format == "ewf"
        fs, fs_type = open_filesystem(image, 0)
        runs = filesystem_unallocated(image, 0, fs, fs_type)
        assert read_all(image, runs, chunk=MIB) == blkls(raw)


def test_damaged_ext_descriptor_is_an_error(images: dict[str, Path], tmp_path: Path) -> None:
    """A descriptor naming a bitmap outside the filesystem is reported, not skipped."""
    img = tmp_path / "bad-ext.img"
    img.write_bytes(images["ext4"].read_bytes())  # 1 KiB blocks, eight groups
    with img.open("r+b") as fh:
        fh.seek(2 * 1024)  # 1 KiB blocks: descriptors in block 2; group 0's bitmap first
        fh.write((0xFFFFFF).to_bytes(4, "little"))
    with open_image(img) as image:
        fs, fs_type = open_filesystem(image, 0)
        with pytest.raises(IngestError, match="group 0 "):
            filesystem_unallocated(image, 0, fs, fs_type)
