"""HFS+ and HFSX unallocated space against ``blkls``, on volumes written from TN1150.

No HFS+ mkfs installs here, so ``hfs_image.build_hfs`` writes the volumes; The Sleuth
Kit is first made to prove they are real HFS+ (``fsstat``, ``fls -r``, ``icat`` give back
every file), then its ``blkls`` is the oracle for the free blocks, byte for byte and run
for run. Damaged headers must end in a clear error, never a wrong answer.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import subprocess
from pathlib import Path

import pytest
from carve_images import _draw
from conftest import require_tool, sha256_file
from hfs_image import HfsLayout, build_hfs
from pipeline_helpers import export_jsonl, ledger_entries, triage

from ingest.errors import IngestError
from ingest.image import open_image
from ingest.unallocated import (
    ByteRun,
    UnallocatedUnsupportedError,
    filesystem_unallocated,
    iter_unallocated,
    merge_runs,
    volume_unallocated,
)
from ingest.volumes import find_volumes
from ingest.walk import open_filesystem

HEADER = 1024
ALLOC_FORK = HEADER + 112


def run(*cmd: str | Path) -> bytes:
    tool = require_tool(str(cmd[0]))
    return subprocess.run([tool, *map(str, cmd[1:])], check=True, capture_output=True,
                          timeout=60).stdout


FILES = [("alpha.bin", os.urandom(10_000)), ("Beta.txt", b"beta\n" * 300),
         ("gamma.bin", os.urandom(4096 * 3)), ("delta.bin", os.urandom(1))]
DELETED = [os.urandom(9_000), os.urandom(20_000)]

VARIANTS = {  # name: (block size, total blocks, HFSX, allocation file extents)
    "hfsplus-4k": (4096, 512, False, 1),
    "hfsx-4k": (4096, 300, True, 1),
    "hfsplus-512": (512, 3001, False, 1),  # header inside block 2, nodes span 8 blocks
    "hfsplus-1k-wide": (1024, 70_000, False, 1),  # a bitmap of nine blocks
    "hfsplus-512-fragmented": (512, 20_000, False, 5),  # a bitmap in five extents
}


@pytest.fixture(scope="module")
def volumes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, HfsLayout]]:
    folder = tmp_path_factory.mktemp("hfs")
    out = {}
    for name, (block_size, total, hfsx, fragments) in VARIANTS.items():
        path = folder / f"{name}.img"
        out[name] = path, build_hfs(path, FILES, DELETED, block_size=block_size,
                                    total_blocks=total, hfsx=hfsx,
                                    alloc_fragments=fragments)
    return out


def blkls_runs(img: Path, block_size: int) -> list[ByteRun]:
    """The free blocks ``blkls -l`` lists, in image bytes."""
    listing = run("blkls", "-l", img).decode().splitlines()
    assert listing[1].split("|")[-1] == "Allocation Block"
    return merge_runs(ByteRun(int(line.split("|")[0]) * block_size, block_size)
                      for line in listing if line.endswith("|f"))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_tsk_reads_the_built_volume(volumes: dict[str, tuple[Path, HfsLayout]],
                                    name: str) -> None:
    """The builder's volumes are real HFS+: TSK lists and reads back every file."""
    img, layout = volumes[name]
    fsstat = run("fsstat", img).decode()
    assert f"File System Type: {'HFSX' if VARIANTS[name][2] else 'HFS+'}" in fsstat
    assert f"Allocation Block Size: {layout.block_size}" in fsstat
    assert f"Block Range: 0 - {layout.total_blocks - 1}" in fsstat
    listed = {line.split("\t")[1]: line.split()[1].rstrip(":")
              for line in run("fls", "-r", img).decode().splitlines()}
    assert {n for n, _ in FILES} <= set(listed)
    for file_name, content in FILES:
        assert run("icat", img, listed[file_name]) == content


@pytest.mark.parametrize("name", list(VARIANTS))
def test_runs_equal_blkls(volumes: dict[str, tuple[Path, HfsLayout]], name: str) -> None:
    img, layout = volumes[name]
    before = sha256_file(img)
    with open_image(img) as image:
        fs, fs_type = open_filesystem(image, 0)
        assert fs_type == "hfs"
        runs = filesystem_unallocated(image, 0, fs, fs_type)
        data = b"".join(chunk for _, chunk in iter_unallocated(image, runs))
    assert runs == merge_runs(runs) and len(runs) > 1
    assert data == run("blkls", img)
    assert runs == blkls_runs(img, layout.block_size)
    # The deleted data lies in the free space, the kept files' blocks do not.
    for gone, content in zip(layout.deleted, DELETED, strict=True):
        assert content in data
        assert any(r.offset <= gone.start * layout.block_size < r.end for r in runs)
    for kept in layout.files:
        start = kept.start * layout.block_size
        assert not any(r.offset < start + kept.blocks * layout.block_size and start < r.end
                       for r in runs)
    assert sha256_file(img) == before, "evidence is only read"


def test_volume_in_a_partition(volumes: dict[str, tuple[Path, HfsLayout]],
                               tmp_path: Path) -> None:
    """At a partition's offset, with slack after it: ``blkls -o`` plus the slack."""
    img, layout = volumes["hfsplus-4k"]
    fs_bytes = layout.total_blocks * layout.block_size
    disk = tmp_path / "disk.img"
    with disk.open("wb") as fh:
        fh.truncate(8 << 20)
    sectors = fs_bytes // 512 + 512  # 256 KiB of volume slack after the filesystem
    subprocess.run([require_tool("sfdisk"), "-q", str(disk)], check=True, capture_output=True,
                   input=f"label: dos\nstart=2048, size={sectors}, type=af\n".encode())
    slack = os.urandom(256 << 10)
    with disk.open("r+b") as fh:
        fh.seek(2048 * 512)
        fh.write(img.read_bytes() + slack)
    with open_image(disk) as image:
        (volume,) = find_volumes(image).candidates
        assert volume.start == 2048 * 512
        runs = volume_unallocated(image, volume, open_filesystem(image, volume.start))
        data = b"".join(chunk for _, chunk in iter_unallocated(image, runs))
    assert data == run("blkls", "-o", "2048", disk) + slack
    assert runs[-1].end == volume.start + volume.length


def mutated(src: Path, dst: Path, offset: int, fmt: str, value: int) -> Path:
    raw = bytearray(src.read_bytes())
    struct.pack_into(fmt, raw, offset, value)
    dst.write_bytes(bytes(raw))
    return dst


def unallocated_of(img: Path, tsk_view: Path | None = None) -> list[ByteRun]:
    """Our runs for ``img``, with TSK opened on ``tsk_view`` (a header TSK itself accepts)."""
    with open_image(tsk_view or img) as view, open_image(img) as image:
        fs, fs_type = open_filesystem(view, 0)
        return filesystem_unallocated(image, 0, fs, fs_type)


def test_allocation_file_beyond_eight_extents_is_unsupported(
        volumes: dict[str, tuple[Path, HfsLayout]], tmp_path: Path) -> None:
    """More blocks than the eight extents hold: the rest is in the overflow tree; say so."""
    img, _ = volumes["hfsplus-4k"]
    bad = mutated(img, tmp_path / "overflow.img", ALLOC_FORK + 12, ">I", 9)
    with pytest.raises(UnallocatedUnsupportedError, match="extents-overflow"):
        unallocated_of(bad)


def test_allocation_extent_outside_the_volume_is_an_error(
        volumes: dict[str, tuple[Path, HfsLayout]], tmp_path: Path) -> None:
    img, layout = volumes["hfsplus-4k"]
    bad = mutated(img, tmp_path / "far.img", ALLOC_FORK + 16, ">I", layout.total_blocks)
    with pytest.raises(IngestError, match="outside the volume"):
        unallocated_of(bad, tsk_view=img)


def test_short_allocation_file_is_an_error(volumes: dict[str, tuple[Path, HfsLayout]],
                                           tmp_path: Path) -> None:
    """A logical size too small for the volume's blocks would leave blocks unjudged."""
    img, _ = volumes["hfsplus-1k-wide"]
    bad = mutated(img, tmp_path / "short.img", ALLOC_FORK, ">Q", 100)
    with pytest.raises(IngestError, match="too few"):
        unallocated_of(bad, tsk_view=img)


@pytest.mark.parametrize(("offset", "fmt", "value", "match"), [
    (HEADER, ">H", 0x4244, "HFS wrapper"),            # 'BD': plain HFS around HFS+
    (HEADER, ">H", 0x482B + 1, "no HFS\\+ volume header"),
    (HEADER + 2, ">H", 9, "no HFS\\+ volume header"),  # an unknown version
    (HEADER + 40, ">I", 8192, "disagrees"),            # block size
    (HEADER + 44, ">I", 100, "disagrees"),             # total blocks
])
def test_damaged_header_is_an_error(volumes: dict[str, tuple[Path, HfsLayout]],
                                    tmp_path: Path, offset: int, fmt: str, value: int,
                                    match: str) -> None:
    """A header changed under an opened filesystem is caught, never read as if whole."""
    img, _ = volumes["hfsplus-4k"]
    bad = mutated(img, tmp_path / "bad.img", offset, fmt, value)
    with pytest.raises(IngestError, match=match):
        unallocated_of(bad, tsk_view=img)


@pytest.mark.parametrize("value", [
    69_900,  # the bitmap "moved" to zeroed blocks
    40,  # into the catalog (blocks 27-58)
])
def test_damage_tsk_accepts_is_refused(volumes: dict[str, tuple[Path, HfsLayout]],
                                       tmp_path: Path, value: int) -> None:
    """TSK opens these volumes and ``blkls`` answers; the bitmap it reads is not one.

    TN1150 has the bitmap mark the header's and its own blocks used; where it does not,
    the answer would be wrong (``blkls`` calls such a volume almost wholly free).
    """
    img, layout = volumes["hfsplus-1k-wide"]
    bad = mutated(img, tmp_path / "bad.img", ALLOC_FORK + 16, ">I", value)
    with open_image(bad) as image:
        fs, fs_type = open_filesystem(image, 0)
        with pytest.raises(IngestError, match=r"blocks .* free: its volume header or bitmap"):
            filesystem_unallocated(image, 0, fs, fs_type)
    freed = len(run("blkls", bad)) // int(fs.info.block_size)
    assert freed > layout.total_blocks // 2


def test_truncated_image_is_an_error(volumes: dict[str, tuple[Path, HfsLayout]],
                                     tmp_path: Path) -> None:
    img, layout = volumes["hfsplus-1k-wide"]
    cut = tmp_path / "cut.img"
    cut.write_bytes(img.read_bytes()[:layout.alloc_start * layout.block_size + 3000])
    with pytest.raises(IngestError, match="truncated"):
        unallocated_of(cut, tsk_view=img)


def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    _draw((800, 600), seed).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_picture_in_freed_blocks_is_carved(tmp_path: Path) -> None:
    """Triage carves the JPEG left in freed HFS+ blocks, and not the kept one again."""
    kept, gone = _jpeg(1), _jpeg(2)
    img = tmp_path / "hfs-card.img"
    layout = build_hfs(img, [("kept.jpg", kept), ("notes.txt", b"notes\n" * 900)], [gone],
                       total_blocks=1024)
    img.chmod(0o444)
    before = sha256_file(img)
    case = tmp_path / "case"
    triage(img, case)
    rows = export_jsonl(case)
    carved = [r for r in rows if (r["derivation"] or {}).get("method") == "carved"]
    assert [r["sha256"] for r in carved] == [hashlib.sha256(gone).hexdigest()]
    step = carved[0]["derivation"]
    assert step["offset"] == layout.deleted[0].start * layout.block_size
    assert step["length"] == len(gone) and carved[0]["mime"] == "image/jpeg"
    walked = {r["path"].rsplit("/", 1)[-1]: r for r in rows if r not in carved}
    assert walked["kept.jpg"]["sha256"] == hashlib.sha256(kept).hexdigest()
    planned = next(e for e in ledger_entries(case) if e["action"] == "carve.planned")
    assert planned["details"]["mode"] == "pictures"
    assert sha256_file(img) == before


def test_triage_records_an_unreadable_bitmap_and_goes_on(tmp_path: Path) -> None:
    """An allocation file past eight extents: not carved, said in the ledger, files walked."""
    img = tmp_path / "hfs-overflow.img"
    build_hfs(img, [("kept.jpg", _jpeg(3))], [_jpeg(4)], total_blocks=1024)
    with img.open("r+b") as fh:
        fh.seek(ALLOC_FORK + 12)
        fh.write(struct.pack(">I", 9))  # nine blocks, one in its extents
    case = tmp_path / "case"
    triage(img, case)
    rows = export_jsonl(case)
    assert [r["path"].rsplit("/", 1)[-1] for r in rows if r["path"].endswith(".jpg")] == [
        "kept.jpg"]
    assert not [r for r in rows if (r["derivation"] or {}).get("method") == "carved"]
    planned = next(e for e in ledger_entries(case) if e["action"] == "carve.planned")
    (problem,) = planned["details"]["not_carved"]
    assert problem["error"] == "UnallocatedUnsupportedError"
    assert "extents-overflow" in problem["message"] and problem["location"]["fs_type"] == "hfs"


def test_random_header_damage_never_gives_a_different_answer(
        volumes: dict[str, tuple[Path, HfsLayout]], tmp_path: Path) -> None:
    """Seeded random damage: TSK refuses, we raise IngestError, or we equal ``blkls``.

    Bytes of the volume header and the bitmap are changed; no outcome may be another
    answer than ``blkls``'s, and each of the three must occur (the test can tell them).
    """
    img, _ = volumes["hfsplus-4k"]
    original = img.read_bytes()
    rng = random.Random(14)
    outcomes = {"tsk refuses": 0, "error": 0, "equal": 0}
    for _ in range(60):
        raw = bytearray(original)
        for _ in range(rng.choice((1, 2, 4))):
            pos = HEADER + rng.randrange(512) if rng.random() < 0.8 else 4096 + rng.randrange(64)
            raw[pos] = rng.randrange(256)
        bad = tmp_path / "fuzz.img"
        bad.write_bytes(bytes(raw))
        try:
            with open_image(bad) as image:
                fs, fs_type = open_filesystem(image, 0)
                runs = filesystem_unallocated(image, 0, fs, fs_type)
                ours = b"".join(chunk for _, chunk in iter_unallocated(image, runs))
        except IngestError as exc:
            outcomes["tsk refuses" if "no filesystem" in str(exc) else "error"] += 1
            continue
        # blkls stops with an error where the header claims blocks past the image's end;
        # what it wrote until then is the whole answer, as our runs are clipped there too.
        assert subprocess.run([require_tool("blkls"), str(bad)], capture_output=True,
                              timeout=60).stdout == ours
        outcomes["equal"] += 1
    assert all(outcomes.values()), outcomes
