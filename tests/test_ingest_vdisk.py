"""Virtual disks (VMDK, VHD, VHDX, QCOW, DMG) against The Sleuth Kit on a raw reading of them.

Every container is made from the sample image with ``qemu-img convert`` (each subformat),
children over a base with ``qemu-img create -b`` and ``qemu-io`` writes, differencing
VHD and VHDX and a UDIF ``.dmg`` by ``tests/vdisk_images.py``. The oracle is a raw file:
``qemu-img convert -O raw`` (``dmg2img``) of the same virtual disk, or the raw it was
made from. Entry by entry
our walk must equal ``fls -r -p`` on it and file by file our content must hash like
``icat``'s; the acquisition hash must equal the raw file's.
"""

from __future__ import annotations

import os
import pickle
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
import vdisk_images as vd
from conftest import require_tool, sha256_file
from pipeline_helpers import exhibit, ledger_entries, triage
from test_ingest import EVIDENCE_ID, _open_fd_flags, digests, fls, icat_hashes

from ingest.acquisition import hash_image
from ingest.content import ContentReader
from ingest.errors import IngestError
from ingest.formats.virtual import MissingContainerFileError
from ingest.image import detect_format, image_spec, open_image
from ingest.volumes import find_volumes
from ingest.walk import FilesystemWalker

SAMPLE_SIZE = 62914560
VHD_SIZE = 62947328  # qemu rounds a VHD up to its CHS geometry
VARIANTS = [("vmdk", sf) for sf in vd.SUBFORMATS["vmdk"]] + [
    ("vpc", "fixed"), ("vpc", "dynamic"), ("vhdx", "dynamic"), ("vhdx", "fixed"), ("qcow2", "")]
EXPECTED_FORMAT = {"vmdk": "vmdk", "vpc": "vhd", "vhdx": "vhdx", "qcow2": "qcow"}


@pytest.fixture(scope="session")
def vdisk_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("qemu-img")
    return tmp_path_factory.mktemp("vdisk")


@pytest.fixture(scope="session")
def modified_raw(sample_raw: Path, vdisk_dir: Path) -> Path:
    """The sample as a guest left it after the snapshot: NOTE.TXT added, a photo deleted."""
    return vd.modified_copy(sample_raw, vdisk_dir / "modified.raw")


def assert_same_as_raw(image_path: Path | list[Path], oracle: Path, label: str,
                       volumes: set[int] | None = None, media_hash: bool = True
                       ) -> tuple[int, int]:
    """Walk and content of every filesystem volume equal fls/icat on the raw oracle:
    (entries, file hashes) compared."""
    entries = hashes = 0
    paths = image_path if isinstance(image_path, list) else [image_path]
    with open_image(paths) as image:
        assert image.size == oracle.stat().st_size
        starts = {v.start for v in find_volumes(image).candidates}
        with open_image([oracle]) as raw:
            assert starts == {v.start for v in find_volumes(raw).candidates}
        assert starts and (volumes is None or volumes <= starts)
        reader = ContentReader(image.spec, image)
        for start in sorted(volumes or starts):
            volume = next(v for v in find_volumes(image).candidates if v.start == start)
            walked = list(FilesystemWalker(image, volume, EVIDENCE_ID))
            ours = {(e.location.path, e.location.inode, e.allocated) for e in walked}
            assert ours == fls(oracle, start // 512), f"{label}: volume at {start}"
            entries += len(ours)
            for entry in walked:
                if entry.kind != "file" or entry.location.inode == 0:
                    continue
                expected = icat_hashes(oracle, start // 512, entry.location.inode)
                assert digests(reader.read_all(start, entry.location.inode)) == expected, entry
                hashes += 1
        if media_hash:
            assert hash_image(image)["sha256"] == sha256_file(oracle), label
    assert entries >= 30 and hashes >= 10, (label, entries, hashes)
    return entries, hashes


@pytest.mark.parametrize(("fmt", "subformat"), VARIANTS,
                         ids=[f"{f}-{s}" if s else f for f, s in VARIANTS])
def test_container_equals_raw(fmt: str, subformat: str, sample_raw: Path,
                              vdisk_dir: Path) -> None:
    directory = vdisk_dir / f"{fmt}-{subformat or 'default'}"
    top = vd.convert(sample_raw, directory / f"disk{vd.SUFFIX[fmt]}", fmt, subformat)
    oracle = vd.to_raw(top, vdisk_dir / f"{directory.name}.raw", fmt)
    assert oracle.stat().st_size == (VHD_SIZE if fmt == "vpc" else SAMPLE_SIZE)
    assert detect_format([top]) == EXPECTED_FORMAT[fmt]
    spec = image_spec([top])
    assert sorted(map(Path, spec.paths)) == vd.container_files(directory)
    assert Path(spec.paths[0]) == top  # the descriptor first, then its extents
    assert_same_as_raw(top, oracle, directory.name)


@pytest.mark.parametrize("fmt", ["qcow2", "vmdk"])
def test_child_over_base_equals_raw(fmt: str, sample_raw: Path, modified_raw: Path,
                                    vdisk_dir: Path) -> None:
    directory = vdisk_dir / f"{fmt}-chain"
    base = vd.convert(sample_raw, directory / f"base{vd.SUFFIX[fmt]}", fmt)
    child = vd.child_over(base, fmt, sample_raw, modified_raw, directory / f"child{vd.SUFFIX[fmt]}")
    assert child.stat().st_size < base.stat().st_size / 2  # only what differs
    oracle = vd.to_raw(child, vdisk_dir / f"{fmt}-chain.raw")
    assert sha256_file(oracle) == sha256_file(modified_raw)
    assert fls(oracle, 2048) != fls(sample_raw, 2048)  # the child's writes are visible
    assert image_spec([child]).paths == (str(child), str(base))
    assert_same_as_raw(child, oracle, f"{fmt}-child")
    with open_image([child]) as image:
        assert image.metadata["chain"] == f"{child.name} <- {base.name}"


def test_three_layers_of_one_name(sample_raw: Path, modified_raw: Path, vdisk_dir: Path,
                                  tmp_path: Path) -> None:
    """base/disk.qcow2 <- mid/disk.qcow2 <- top.qcow2, backing names relative: each layer
    is found by its path, also when a worker re-opens the image from its spec."""
    base = vd.convert(sample_raw, tmp_path / "base" / "disk.qcow2", "qcow2")
    (tmp_path / "mid").mkdir()
    mid = vd.child_over(base, "qcow2", sample_raw, modified_raw, tmp_path / "mid" / "disk.qcow2")
    top_raw = tmp_path / "top.raw"
    data = bytearray(modified_raw.read_bytes())
    data[8192:12288] = b"top layer" * 455 + b"t"
    top_raw.write_bytes(bytes(data))
    top = vd.child_over(mid, "qcow2", modified_raw, top_raw, tmp_path / "top.qcow2")
    oracle = vd.to_raw(top, tmp_path / "oracle.raw")
    assert sha256_file(oracle) == sha256_file(top_raw)
    with open_image([top]) as image:
        assert image.spec.paths == (str(top), str(mid), str(base))
        again = pickle.loads(pickle.dumps(image))
        try:
            assert again.spec == image.spec
            assert hash_image(again)["sha256"] == sha256_file(oracle)
        finally:
            again.close()


@pytest.mark.parametrize("fmt", ["vpc", "vhdx"])
def test_differencing_disk_equals_raw(fmt: str, sample_raw: Path, vdisk_dir: Path) -> None:
    directory = vdisk_dir / f"{fmt}-diff"
    suffix = vd.SUFFIX[fmt]
    base = vd.convert(sample_raw, directory / f"base{suffix}", fmt, "dynamic")
    size = VHD_SIZE if fmt == "vpc" else SAMPLE_SIZE
    child_raw = vd.modified_copy(sample_raw, vdisk_dir / f"{fmt}-diff.raw", size)
    make = vd.differencing_vhd if fmt == "vpc" else vd.differencing_vhdx
    child = make(base, child_raw, directory / f"child{suffix}")
    assert image_spec([child]).paths == (str(child), str(base))
    assert_same_as_raw(child, child_raw, f"{fmt}-differencing")
    with open_image([child]) as image:
        assert image.metadata["disk_type"] == "differencing"
        assert image.metadata["parent1_disk_type"] == "dynamic"
    if fmt == "vhdx":  # a locator naming the parent only by relative path (libvhdi misses it)
        lone = make(base, child_raw, directory / "lone.vhdx", relative_only=True)
        with open_image([lone]) as image:
            assert image.spec.paths == (str(lone), str(base))
            assert image.metadata["parent_name"] == ".\\base.vhdx"


def test_apple_disk_image_equals_raw(sample_raw: Path, vdisk_dir: Path) -> None:
    """UDIF with zlib, raw and zero-fill chunks in two tables; dmg2img is the oracle."""
    require_tool("dmg2img")
    dmg = vd.udif_dmg(sample_raw, vdisk_dir / "dmg" / "disk.dmg")
    oracle = vd.dmg_to_raw(dmg, vdisk_dir / "dmg.raw")
    assert detect_format([dmg]) == "dmg"
    assert dmg.stat().st_size < SAMPLE_SIZE / 4  # compressed: the container is not the media
    assert_same_as_raw(dmg, oracle, "dmg-udif")
    assert sha256_file(oracle) == sha256_file(sample_raw)


def test_apple_sparse_image_equals_raw(sample_raw: Path, vdisk_dir: Path) -> None:
    image = vd.sparseimage(sample_raw, vdisk_dir / "sparse" / "disk.sparseimage")
    assert detect_format([image]) == "sparseimage"
    assert_same_as_raw(image, sample_raw, "sparseimage")


def test_extents_cut_anywhere(sample_raw: Path, vdisk_dir: Path) -> None:
    """Three flat extents cut inside the FAT and the ext4 partitions: reads cross them."""
    descriptor = vd.multi_flat_vmdk(sample_raw, vdisk_dir / "multi-flat", (20011, 90001))
    assert len(image_spec([descriptor]).paths) == 4
    assert_same_as_raw(descriptor, sample_raw, "vmdk-3-flat-extents")


@pytest.mark.parametrize("subformat", ["twoGbMaxExtentSparse", "twoGbMaxExtentFlat"])
def test_partition_across_2gib_extents(subformat: str, sample_raw: Path,
                                       vdisk_dir: Path) -> None:
    """qemu's split VMDK of a 2 GiB + 32 MiB disk whose third partition spans both extents."""
    raw = vdisk_dir / "span.raw"
    if not raw.exists():
        vd.spanning_raw(sample_raw, raw)
    directory = vdisk_dir / f"span-{subformat}"
    top = vd.convert(raw, directory / "disk.vmdk", "vmdk", subformat)
    assert len(image_spec([top]).paths) == 3
    assert_same_as_raw(top, raw, f"vmdk-{subformat}-2GiB", volumes={vd.SPAN_START},
                       media_hash=False)  # 2 GiB hashed twice costs a minute here


# ----------------------------------------------------------------------- chains


@pytest.fixture(scope="module")
def qcow_chain(sample_raw: Path, modified_raw: Path, vdisk_dir: Path) -> tuple[Path, Path]:
    directory = vdisk_dir / "qcow-triage"
    base = vd.convert(sample_raw, directory / "base.qcow2", "qcow2")
    child = vd.child_over(base, "qcow2", sample_raw, modified_raw, directory / "child.qcow2")
    for path in (base, child):
        path.chmod(0o444)
    return child, base


def test_parent_named_by_the_examiner(qcow_chain: tuple[Path, Path], tmp_path: Path) -> None:
    child, base = qcow_chain
    alone = tmp_path / "alone"
    alone.mkdir()
    moved_child = Path(shutil.copy(child, alone / child.name))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved_base = Path(shutil.copy(base, elsewhere / base.name))
    with pytest.raises(MissingContainerFileError, match=r"backing file 'base\.qcow2' is missing"):
        open_image([moved_child])
    with open_image([moved_child, moved_base]) as image, open_image([child]) as there:
        assert image.spec.paths == (str(moved_child), str(moved_base))
        assert image.read_at(0, 1 << 20) == there.read_at(0, 1 << 20)
    stray = tmp_path / "stray.img"
    stray.write_bytes(b"\0" * 4096)
    with pytest.raises(IngestError, match="does not use"):
        open_image([moved_child, moved_base, stray])


def test_missing_parts_are_named(sample_raw: Path, modified_raw: Path, tmp_path: Path) -> None:
    split = vd.convert(sample_raw, tmp_path / "split" / "disk.vmdk", "vmdk",
                       "twoGbMaxExtentSparse")
    (tmp_path / "split" / "disk-s001.vmdk").unlink()
    with pytest.raises(MissingContainerFileError, match=r"extent 0 'disk-s001\.vmdk' is missing"):
        open_image([split])
    base = vd.convert(sample_raw, tmp_path / "vhd" / "base.vhd", "vpc", "dynamic")
    child_raw = vd.modified_copy(sample_raw, tmp_path / "child.raw", VHD_SIZE)
    child = vd.differencing_vhd(base, child_raw, tmp_path / "vhd" / "child.vhd",
                                parent_name="C:\\VMs\\gone.vhd")
    with pytest.raises(MissingContainerFileError, match=r"parent 'C:\\\\VMs\\\\gone\.vhd'"):
        open_image([child])
    os.rename(base, base.with_name("gone.vhd"))  # found beside it by its last component
    with open_image([child]) as image:
        assert image.spec.paths[1].endswith("gone.vhd")


@pytest.mark.parametrize("fmt", ["vmdk", "vpc", "vhdx"])
def test_a_parent_that_is_not_the_one_is_refused(fmt: str, sample_raw: Path, modified_raw: Path,
                                                 tmp_path: Path) -> None:
    suffix = vd.SUFFIX[fmt]
    subformat = "" if fmt == "vmdk" else "dynamic"
    base = vd.convert(sample_raw, tmp_path / f"base{suffix}", fmt, subformat)
    if fmt == "vmdk":
        child = vd.child_over(base, fmt, sample_raw, modified_raw, tmp_path / "child.vmdk")
    else:
        size = VHD_SIZE if fmt == "vpc" else SAMPLE_SIZE
        child_raw = vd.modified_copy(sample_raw, tmp_path / "child.raw", size)
        make = vd.differencing_vhd if fmt == "vpc" else vd.differencing_vhdx
        child = make(base, child_raw, tmp_path / f"child{suffix}")
    with open_image([child]) as image:
        assert len(image.spec.paths) == 2
    base.unlink()  # another disk of the same name takes the parent's place
    vd.convert(modified_raw, base, fmt, subformat)
    with pytest.raises(IngestError, match="is not the parent"):
        open_image([child])


@pytest.mark.parametrize("fmt", ["qcow2", "vhdx"])
def test_a_size_its_tables_cannot_map_is_refused(fmt: str, sample_raw: Path,
                                                 tmp_path: Path) -> None:
    """A header stating 1 TiB over tables that map 60 MiB: QEMU refuses it, so do we
    (libqcow and libvhdi would hand us a terabyte of zeros to hash)."""
    image = vd.convert(sample_raw, tmp_path / f"disk{vd.SUFFIX[fmt]}", fmt)
    data = bytearray(image.read_bytes())
    if fmt == "qcow2":
        struct.pack_into(">Q", data, 24, 1 << 40)
    else:
        meta = vd._vhdx_regions(bytes(data))[vd.VHDX_METADATA]
        struct.pack_into("<Q", data, meta + 65544, 1 << 40)  # qemu's virtual disk size item
    image.write_bytes(bytes(data))
    qemu = subprocess.run([require_tool("qemu-img"), "info", str(image)], capture_output=True,
                          text=True)
    assert qemu.returncode != 0  # the reference refuses it too
    with pytest.raises(IngestError, match="maps"):
        open_image([image])


def test_fixed_vhd_is_not_raw_and_raw_stays_raw(sample_raw: Path, vdisk_dir: Path) -> None:
    fixed = vd.convert(sample_raw, vdisk_dir / "fixed-check" / "disk.vhd", "vpc", "fixed")
    assert detect_format([fixed]) == "vhd"
    assert detect_format([sample_raw]) == "raw"
    truncated = vdisk_dir / "fixed-check" / "cut.vhd"
    truncated.write_bytes(fixed.read_bytes()[:-1])  # no footer at the end: plain raw
    assert detect_format([truncated]) == "raw"


# ----------------------------------------------------------------------- triage


def test_triage_of_a_chain_reads_only_and_resumes(qcow_chain: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    child, base = qcow_chain
    files = [child, base]
    before = {p: sha256_file(p) for p in files}
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    with open_image([child]) as image:
        flags = _open_fd_flags({str(p.resolve()) for p in files})
        assert len(flags) >= 2 and all(f & os.O_ACCMODE == os.O_RDONLY for f in flags)
        assert image.read_at(0, 512)[510:] == b"\x55\xaa"
    case = tmp_path / "case"
    triage(child, case)
    entries = ledger_entries(case)
    registered = next(e for e in entries if e["action"] == "evidence.registered")
    assert registered["details"]["format"] == "qcow"
    hashed = next(e for e in entries if e["action"] == "acquisition.hashed")
    details = hashed["details"]  # the container files are hashed with the media
    assert "virtual disk's media bytes" in details["hashed_over"]
    assert [(Path(f["path"]).name, f["sha256"]) for f in details["container_files"]] == [
        (p.name, before[p]) for p in files]
    assert hashed["details"]["sha256"] == sha256_file(vd.to_raw(child, tmp_path / "o.raw"))
    assert {p: sha256_file(p) for p in files} == before
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes
    triage(child, case)  # a resume: recognised by every container file's stat
    again = [e for e in ledger_entries(case)[len(entries):]
             if e["action"].startswith(("evidence.", "acquisition."))]
    assert [e["action"] for e in again] == ["evidence.reopened"]
    assert again[0]["details"]["paths"] == [str(p.resolve()) for p in files]


def test_triage_without_the_parent_exits_3(qcow_chain: tuple[Path, Path],
                                           tmp_path: Path) -> None:
    child, _ = qcow_chain
    lonely = Path(shutil.copy(child, tmp_path / child.name))
    proc = triage(lonely, tmp_path / "case", check=False)
    assert proc.returncode == 3, proc.stderr
    assert "backing file 'base.qcow2' is missing" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_register_records_container_hashes(sample_raw: Path, tmp_path: Path) -> None:
    top = vd.convert(sample_raw, tmp_path / "split" / "disk.vmdk", "vmdk",
                     "twoGbMaxExtentFlat")
    case = tmp_path / "case"
    exhibit("evidence", "register", case, top, "--exhibit-number", "VM-1",
            "--description", "a VM's disk")
    entry = next(e for e in ledger_entries(case) if e["action"] == "evidence.registered")
    acquisition = entry["details"]["acquisition"]
    assert acquisition["format"] == "vmdk"
    assert acquisition["sha256"] == sha256_file(sample_raw)
    assert {Path(f["path"]).name: f["sha256"] for f in acquisition["container_files"]} == {
        p.name: sha256_file(p) for p in vd.container_files(top.parent)}
    exhibit("evidence", "verify", case)  # re-opened from the registered paths, re-hashed
    verified = [e for e in ledger_entries(case) if e["action"] == "evidence.verified"]
    assert [e["details"]["result"] for e in verified] == ["same"]
