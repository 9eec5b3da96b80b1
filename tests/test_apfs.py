"""APFS containers through libfsapfs, against The Sleuth Kit's pool tools (fls -B, fsstat -B).

Debian's ``mkapfs`` (apfsprogs) makes containers with one empty volume, and nothing here
can add files to one (that needs the apfs kernel module): so the walk is compared with
``fls -r -p -B`` on empty volumes (TSK 4.11 from Debian reads APFS pools; the PyPI
pytsk3 cannot), the volume's name with ``fsstat -B``, in a bare container and in a GPT
partition, and the CLI must name the volume, walk it without error and exit 0.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool, sha256_file
from pipeline_helpers import ledger_entries, triage
from test_ingest import EVIDENCE_ID, FLS_LINE

from ingest.content import ContentReader
from ingest.errors import IngestError
from ingest.image import open_image
from ingest.layers import apfs
from ingest.location import decode_name
from ingest.volumes import find_volumes

MIB = 1 << 20
SIZE = 128 * MIB  # mkapfs's smallest container


def make_container(path: Path, label: str, size: int = SIZE) -> Path:
    with path.open("wb") as fh:
        fh.truncate(size)  # sparse
    subprocess.run([require_tool("mkapfs"), "-L", label, str(path)], check=True,
                   capture_output=True)
    return path


def _tsk(tool: str, *args: str | Path) -> str:
    return subprocess.run([require_tool(tool), *map(str, args)], check=True,
                          capture_output=True, text=True).stdout


def apsb_blocks(image: Path, sector_offset: int = 0) -> list[int]:
    """Each volume superblock's block number, as ``pstat`` lists them."""
    out = _tsk("pstat", "-o", str(sector_offset), image)
    return [int(n) for n in re.findall(r"APSB Block Number: (\d+)", out)]


def tsk_volume(image: Path, block: int, sector_offset: int = 0) -> tuple[str, str]:
    """(name, UUID) of a volume as ``fsstat -B`` prints them."""
    out = _tsk("fsstat", "-o", str(sector_offset), "-B", str(block), image)
    name = re.search(r"Name \(Role\): (.*) \(", out)
    uuid = re.search(r"Volume UUID (\S+)", out)
    assert name and uuid, out
    return name.group(1), uuid.group(1)


@pytest.fixture(scope="module")
def containers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int]]:
    """A bare container, and one in a GPT partition at 1 MiB: (image, volume offset)."""
    tmp = tmp_path_factory.mktemp("apfs")
    bare = make_container(tmp / "bare.img", "Evidence HD")
    disk = tmp / "gpt.img"
    with disk.open("wb") as fh:
        fh.truncate(SIZE + 4 * MIB)
    subprocess.run([require_tool("sfdisk"), "-q", str(disk)], check=True, capture_output=True,
                   input=f"label: gpt\nstart=2048, size={SIZE // 512},"
                         f" type=7C3457EF-0000-11AA-AA11-00306543ECAC\n".encode())
    inner = make_container(tmp / "inner.img", "Macintosh HD")
    with disk.open("r+b") as fh, inner.open("rb") as src:
        fh.seek(MIB)
        while chunk := src.read(MIB):
            if chunk.strip(b"\0"):
                fh.write(chunk)
            else:
                fh.seek(len(chunk), 1)
    return {"bare": (bare, 0), "gpt": (disk, MIB)}


@pytest.mark.parametrize("which", ["bare", "gpt"])
def test_volumes_and_walk_equal_tsk(containers: dict[str, tuple[Path, int]],
                                    which: str) -> None:
    path, offset = containers[which]
    before = sha256_file(path)
    blocks = apsb_blocks(path, offset // 512)
    assert blocks
    with open_image([path]) as image:
        volume = next(v for v in find_volumes(image).candidates if v.start == offset)
        assert apfs.is_container(image, volume.start)
        container = apfs.ApfsContainer(image, volume.start, volume.length)
        infos = container.volumes()
        assert [(v.name, v.identifier) for v in infos] == [
            tsk_volume(path, b, offset // 512) for b in blocks]
        assert not any(v.encrypted for v in infos)
        for info, block in zip(infos, blocks, strict=True):
            walker = apfs.ApfsWalker(container, volume, info.index, EVIDENCE_ID)
            walked = {(e.location.path, e.location.inode, e.allocated) for e in walker}
            oracle = set(_fls_b(path, block, offset // 512))
            assert walked == oracle  # both empty: mkapfs makes no files
            assert walker.stats.entries == 0 and not walker.stats.notes
        reader = ContentReader(image.spec, image)
        root = 2  # the root directory's identifier; a directory has no data to read
        with pytest.raises(IngestError):
            reader.read_all(volume.start, root, "com.apple.ResourceFork",
                            fs_type=apfs.fs_name(0))
    assert sha256_file(path) == before


def _fls_b(image: Path, block: int, sector_offset: int) -> set[tuple[str, int, bool]]:
    """``fls -r -p -B`` as (path, inode, allocated), parsed as tests/test_ingest.py does."""
    out = subprocess.run(
        [require_tool("fls"), "-r", "-p", "-o", str(sector_offset), "-B", str(block),
         str(image)], check=True, capture_output=True).stdout
    rows = set()
    for line in out.splitlines():
        match = FLS_LINE.match(line)
        assert match, line
        path = "/" + "/".join(decode_name(part) for part in match["path"].split(b"/"))
        rows.add((path, int(match["inode"]), match["deleted"] is None))
    return rows


def test_triage_names_the_volume(containers: dict[str, tuple[Path, int]],
                                 tmp_path: Path) -> None:
    path, _ = containers["gpt"]
    case = tmp_path / "case"
    secret = "correct horse battery staple 7f3a"
    proc = triage(path, case, "--volume-password", secret)
    assert "apfs.0: Macintosh HD" in proc.stdout
    started = next(e for e in ledger_entries(case) if e["action"] == "triage.started")
    assert started["details"]["volume_keys_given"] == ["EXHIBIT_VOLUME_PASSWORD"]
    for stored in case.rglob("*"):  # the key itself is nowhere in the case
        if stored.is_file():
            assert secret.encode() not in stored.read_bytes(), stored
    walked = [e for e in ledger_entries(case) if e["action"] == "filesystem.walked"]
    (entry,) = walked
    assert entry["subject"]["fs_type"] == "apfs.0"
    assert entry["details"]["apfs_volume"]["name"] == "Macintosh HD"
    assert entry["details"]["entries"] == 0
    assert not [e for e in ledger_entries(case) if e["action"] in
                ("error", "triage.nothing_examined")]


def test_a_damaged_container_is_recorded_not_a_crash(containers: dict[str, tuple[Path, int]],
                                                    tmp_path: Path) -> None:
    path, _ = containers["bare"]
    damaged = tmp_path / "damaged.img"
    data = bytearray(path.read_bytes())
    data[36:4096] = bytes(4096 - 36)  # the superblock after its magic
    for at in range(4096, len(data), 4096):  # and every checkpoint copy of it
        if data[at + 32 : at + 36] == b"NXSB":
            data[at + 36 : at + 4096] = bytes(4096 - 36)
    damaged.write_bytes(bytes(data))
    proc = triage(damaged, tmp_path / "case", check=False)
    assert proc.returncode == 6, proc.stderr  # nothing examined, said and recorded
    assert "Traceback" not in proc.stderr
    errors = [e for e in ledger_entries(tmp_path / "case") if e["action"] == "error"]
    assert any("APFS container" in e["details"].get("message", "") for e in errors), errors
