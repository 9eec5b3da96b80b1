"""LVM2 logical volumes against fls/icat on each volume cut out where lvm2 says it lies.

``sample_data/lvm.img.gz`` is made by ``sample_data/lvm.sh`` with lvm2's own tools (a loop
device; root); ``sample_data/lvm.lvs.txt`` is lvm2's report of every segment's physical
extents. The oracle for each logical volume is a raw file assembled from those ranges
alone: our walk must equal ``fls -r -p`` on it and our content ``icat``.
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import pytest
from conftest import sha256_file
from pipeline_helpers import REPO, export_jsonl, ledger_entries, triage
from test_ingest import EVIDENCE_ID, digests, fls, icat_hashes

from ingest.content import ContentReader
from ingest.image import open_image
from ingest.volumes import find_volumes
from ingest.walk import FilesystemWalker

LVM_GZ = REPO / "sample_data" / "lvm.img.gz"
LVS_TXT = REPO / "sample_data" / "lvm.lvs.txt"
PARTITION = 1 << 20  # partition 1 starts at sector 2048
EXTENT = 1 << 20


@pytest.fixture(scope="module")
def lvm_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not LVM_GZ.exists():
        pytest.fail(f"{LVM_GZ} is missing: run sample_data/lvm.sh (root, lvm2)")
    out = tmp_path_factory.mktemp("lvm") / "lvm.dd"
    with gzip.open(LVM_GZ, "rb") as src, out.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    out.chmod(0o444)
    return out


def lvm2_report() -> dict[str, list[tuple[int, int, int]]]:
    """name -> [(first logical extent, extents, first physical extent)] from lvm2's lvs."""
    text = LVS_TXT.read_text()
    pe_start = int(re.search(r"^\s+(\d+)B\s+\d+B\s*$", text, re.M).group(1))
    assert pe_start == EXTENT
    out: dict[str, list[tuple[int, int, int]]] = {}
    for name, start, count, first in re.findall(
            r"^\s+(\w+)\s+(\d+)\s+(\d+)\s+\S+:(\d+)-\d+\s*$", text, re.M):
        out.setdefault(name, []).append((int(start), int(count), int(first)))
    assert set(out) == {"photos", "notes", "split"}
    return out


def cut_out(image: Path, segments: list[tuple[int, int, int]], out: Path) -> Path:
    data = image.read_bytes()
    with out.open("wb") as fh:
        for _start, count, first in sorted(segments):
            at = PARTITION + EXTENT + first * EXTENT
            fh.write(data[at : at + count * EXTENT])
    return out


def test_each_logical_volume_equals_fls_icat(lvm_image: Path, tmp_path: Path) -> None:
    report = lvm2_report()
    before = sha256_file(lvm_image)
    with open_image([lvm_image]) as image:
        scan = find_volumes(image)
        lvs = {v.description.removeprefix("LVM2 exhibitvg/"): v for v in scan.volumes
               if v.extents}
        assert set(lvs) == set(report)
        pv = next(v for v in scan.volumes if v.start == PARTITION)
        assert pv.flag == "meta" and "LVM2 physical volume of exhibitvg" in pv.description
        # libvslvm opens only the one-segment volume; the others say so
        assert sorted(w.split("/")[1].split(":")[0] for w in scan.warnings
                      if "libvslvm cannot open it" in w) == ["photos", "split"]
        reader = ContentReader(image.spec, image)
        hashed = 0
        for name, volume in lvs.items():
            oracle = cut_out(lvm_image, report[name], tmp_path / f"{name}.raw")
            assert volume.length == oracle.stat().st_size
            walked = list(FilesystemWalker(image, volume, EVIDENCE_ID))
            if len(volume.extents) > 1:  # its files cannot all fit in its first segment
                assert sum(e.size for e in walked if e.kind == "file") > volume.extents[0][2]
            assert {(e.location.path, e.location.inode, e.allocated) for e in walked} == \
                fls(oracle, 0)
            for entry in walked:
                if entry.kind == "file" and entry.location.inode > 2 and entry.size:
                    data = reader.read_all(volume.start, entry.location.inode,
                                           fs_type=entry.location.fs_type)
                    assert digests(data) == icat_hashes(oracle, 0, entry.location.inode)
                    hashed += 1
        reader.close()
    assert hashed >= 4
    assert sha256_file(lvm_image) == before


def test_triage_walks_every_logical_volume(lvm_image: Path, tmp_path: Path) -> None:
    case = tmp_path / "case"
    triage(lvm_image, case)
    found = next(e for e in ledger_entries(case) if e["action"] == "volumes.found")
    names = [v["description"] for v in found["details"]["volumes"]]
    assert {"LVM2 exhibitvg/photos", "LVM2 exhibitvg/notes", "LVM2 exhibitvg/split"} <= set(
        names)
    walked = [e for e in ledger_entries(case) if e["action"] == "filesystem.walked"]
    assert len(walked) == 3
    rows = export_jsonl(case)
    paths = {r["path"] for r in rows if r["sha256"]}
    assert {"/DCIM/IMG_0001.JPG", "/DCIM/IMG_0002.JPG", "/notes.txt", "/a.txt"} <= paths
