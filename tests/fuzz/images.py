"""Disk images to fuzz, the structures inside them, and mutations aimed at those structures.

``build_bases(directory)`` makes small images with the Debian tools (once; cached by
name): FAT12, FAT16, ext2, ext4, NTFS and an MBR disk with a FAT16 and an ext2
partition. ``regions(base)`` locates, by parsing the on-disk structures and asking
The Sleuth Kit's ``fls``/``istat`` (the oracle) for directory blocks, the byte ranges a
mutation should hit. ``plan_mutation(rng, base)`` draws a reproducible ``Mutation``
(its ``describe()`` names what was hit); ``apply`` writes the mutated copy.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from fuzz.media import seed_files

SECTOR = 512
INTERESTING_16 = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
INTERESTING_32 = (0, 1, 2, 0x7F, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0,
                  0xFFFFFFF7, 0xFFFFFFFF)


@dataclass(frozen=True)
class Region:
    name: str  # e.g. "fat16:fat", "ext4:inode_table", "mbr:table"
    start: int
    length: int


@dataclass(frozen=True)
class BaseImage:
    name: str
    path: Path
    regions: tuple[Region, ...]
    size: int


@dataclass
class Mutation:
    """Byte edits and an optional truncation: a reproducible description of one case."""

    base: str
    edits: list[tuple[int, bytes]] = field(default_factory=list)
    truncate_to: int | None = None
    labels: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"{self.base}: " + "; ".join(self.labels)

    def apply(self, source: Path, target: Path) -> Path:
        data = bytearray(source.read_bytes())
        for offset, payload in self.edits:
            if offset < len(data):
                data[offset : offset + len(payload)] = payload[: max(0, len(data) - offset)]
        if self.truncate_to is not None:
            del data[self.truncate_to :]
        target.write_bytes(bytes(data))
        target.chmod(0o444)
        return target


# --------------------------------------------------------------------------- building


def _run(*cmd: str | Path, env: dict[str, str] | None = None) -> str:
    full = dict(os.environ, TZ="UTC", MTOOLS_SKIP_CHECK="1", E2FSPROGS_FAKE_TIME="1733011200",
                **(env or {}))
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True,
                          env=full).stdout.decode("utf-8", "replace")


def _source_tree(root: Path, *, posix: bool) -> Path:
    """Files worth finding: photos with EXIF, PNG/TIFF/GIF, text, nested dirs, odd names."""
    src = root / ("src-posix" if posix else "src-fat")
    if src.exists():
        shutil.rmtree(src)
    (src / "DCIM" / "100TEST").mkdir(parents=True)
    (src / "docs" / "deep" / "er").mkdir(parents=True)
    for name, data in seed_files().items():
        folder = src / "DCIM" / "100TEST" if name.endswith(".jpg") else src / "docs"
        (folder / name.upper() if not posix else folder / name).write_bytes(data)
    rng = random.Random(6)
    (src / "docs" / "notes.txt").write_text("meeting at the usual place\n" * 40)
    (src / "docs" / "deep" / "er" / "blob.bin").write_bytes(rng.randbytes(20000))
    (src / "docs" / "delete.txt").write_text("to be deleted\n" * 30)
    (src / "docs" / "file1.txt").write_text("one\n" * 300)
    (src / "docs" / "file2.txt").write_text("two\n" * 300)
    if posix:
        (src / "docs" / "ctl\x01\x1b[31mred\n.txt").write_text("control characters\n")
        os.close(os.open(os.fsencode(src / "docs") + b"/bad\xff\xfeutf8.txt",
                         os.O_CREAT | os.O_WRONLY, 0o644))
        (src / "docs" / "slashXname.txt").write_text("renamed to contain a slash\n")
        (src / "docs" / "nulXname.txt").write_text("renamed to contain a NUL\n")
        (src / "docs" / "dd").write_text("renamed to ..\n")
        (src / "<img src=x onerror=alert(1)>.html").write_text("<b>x</b>\n")
        os.symlink("docs/notes.txt", src / "link")
    return src


def _fat(root: Path, name: str, fat_bits: int, kib: int) -> Path:
    image = root / f"{name}.img"
    src = _source_tree(root, posix=False)
    image.unlink(missing_ok=True)
    _run("mkfs.fat", "-F", str(fat_bits), "-s", "1", "-i", "45584849", "-C", image, str(kib))
    _run("mcopy", "-s", "-m", "-i", image, *sorted(src.iterdir()), "::/")
    _run("mdel", "-i", image, "::/docs/delete.txt")
    return image


def _ext(root: Path, name: str, fs_type: str, size: str, *extra: str) -> Path:
    image = root / f"{name}.img"
    src = _source_tree(root, posix=True)
    _run("mke2fs", "-q", "-F", "-t", fs_type, "-U", "6578ce1b-5a3d-4c5e-9b1a-000000000006",
         "-E", "hash_seed=6578ce1b-5a3d-4c5e-9b1a-0000000000a6", *extra, "-d", src, image, size)
    _run("debugfs", "-w", "-R", "rm /docs/delete.txt", image)
    return image


def _ntfs(root: Path) -> Path:
    image = root / "ntfs.img"
    image.unlink(missing_ok=True)
    with image.open("wb") as fh:
        fh.truncate(8 << 20)
    _run("mkntfs", "-F", "-Q", "-q", "-U", "-L", "FUZZ", image)
    src = _source_tree(root, posix=False)
    files = [p for p in src.rglob("*") if p.is_file()]
    for path in files:
        _run("ntfscp", "-q", image, path, path.name)
    return image


def _mbr(root: Path, fat: Path, ext: Path) -> Path:
    """A 12 MiB disk: FAT16 at 1 MiB (4 MiB), ext2 in a logical partition at 6 MiB."""
    image = root / "mbr.img"
    image.unlink(missing_ok=True)
    with image.open("wb") as fh:
        fh.truncate(12 << 20)
    layout = ("label: dos\nlabel-id: 0x45584849\nunit: sectors\n"
              "start=2048, size=8192, type=6\n"
              "start=10240, size=14336, type=5\n"
              "start=12288, size=12288, type=83\n")
    subprocess.run(["sfdisk", "-q", str(image)], input=layout.encode(), check=True,
                   capture_output=True)
    data = bytearray(image.read_bytes())
    for offset, part in ((2048 * SECTOR, fat), (12288 * SECTOR, ext)):
        blob = part.read_bytes()
        data[offset : offset + len(blob)] = blob
    image.write_bytes(bytes(data))
    return image


def build_bases(directory: Path) -> list[BaseImage]:
    """The base images and their regions, built once into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    index = directory / "bases.json"
    if index.exists():
        return [_load(item) for item in json.loads(index.read_text())]
    work = directory / "work"
    work.mkdir(exist_ok=True)
    bases = [
        ("fat12", _fat(work, "fat12", 12, 1440)),
        ("fat16", _fat(work, "fat16", 16, 4096)),
        ("ext2", _ext(work, "ext2", "ext2", "3M", "-b", "1024")),
        ("ext4", _ext(work, "ext4", "ext4", "4M")),
        ("ntfs", _ntfs(work)),
    ]
    fat_part = _fat(work, "part-fat16", 16, 4096)
    ext_part = _ext(work, "part-ext2", "ext2", "6M", "-b", "1024")
    bases.append(("mbr", _mbr(work, fat_part, ext_part)))
    out = []
    for name, path in bases:
        final = directory / f"{name}.img"
        shutil.move(path, final)
        final.chmod(0o444)
        out.append(BaseImage(name, final, tuple(find_regions(final)), final.stat().st_size))
    shutil.rmtree(work)
    index.write_text(json.dumps([_dump(b) for b in out]))
    return out


def _dump(base: BaseImage) -> dict:
    return {"name": base.name, "path": str(base.path), "size": base.size,
            "regions": [[r.name, r.start, r.length] for r in base.regions]}


def _load(item: dict) -> BaseImage:
    return BaseImage(item["name"], Path(item["path"]),
                     tuple(Region(*r) for r in item["regions"]), item["size"])


# --------------------------------------------------------------------------- structures


def _fs_type(data: bytes, offset: int) -> str | None:
    boot = data[offset : offset + 512]
    if boot[3:11] == b"NTFS    ":
        return "ntfs"
    if data[offset + 1024 + 56 : offset + 1024 + 58] == b"\x53\xef":
        return "ext"
    if boot[510:512] == b"\x55\xaa" and (boot[54:59] == b"FAT12" or boot[54:59] == b"FAT16"
                                         or boot[82:87] == b"FAT32"):
        return "fat"
    return None


def _istat_units(image: Path, sector: int, inode: str) -> list[int]:
    """Block/sector/cluster numbers ``istat`` lists for one inode (its data runs)."""
    text = _run("istat", "-o", str(sector), image, inode)
    numbers: list[int] = []
    grab = False
    for line in text.splitlines():
        if re.match(r"^(Direct Blocks|Sectors|Type: \$INDEX_ALLOCATION)", line):
            grab = True
            continue
        if grab:
            if not re.fullmatch(r"[\d ]+", line.strip() or "x"):
                grab = False
                continue
            numbers += [int(n) for n in line.split()]
    return numbers


def _dir_regions(image: Path, sector: int, unit: int, label: str) -> list[Region]:
    listing = _run("fls", "-r", "-D", "-o", str(sector), image)
    inodes = {"2" if label.startswith("ext") else ""}
    inodes.discard("")
    for line in listing.splitlines():
        match = re.search(r"\s(\d+)(?:-\d+-\d+)?:\t", line)
        if match:
            inodes.add(match.group(1))
    regions = []
    for inode in sorted(inodes):
        try:
            units = _istat_units(image, sector, inode)
        except subprocess.CalledProcessError:
            continue
        for n in units[:16]:
            regions.append(Region(f"{label}:dirents", sector * SECTOR + n * unit, unit))
    return regions


def find_regions(image: Path) -> list[Region]:
    """The structures of every filesystem on ``image``, as byte ranges."""
    data = image.read_bytes()
    starts = [0]
    regions: list[Region] = []
    if data[510:512] == b"\x55\xaa" and _fs_type(data, 0) is None:
        regions.append(Region("mbr:table", 446, 64))
        for i in range(4):
            kind = data[446 + 16 * i + 4]
            lba = struct.unpack_from("<I", data, 446 + 16 * i + 8)[0]
            if kind in (5, 0xF, 0x85) and lba:
                regions.append(Region("mbr:ebr", lba * SECTOR + 446, 64))
                ebr = lba * SECTOR
                starts.append(ebr + struct.unpack_from("<I", data, ebr + 446 + 8)[0] * SECTOR)
            elif kind:
                starts.append(lba * SECTOR)
        starts.remove(0)
    for start in starts:
        kind = _fs_type(data, start)
        sector = start // SECTOR
        if kind == "fat":
            bps, spc = struct.unpack_from("<H", data, start + 11)[0], data[start + 13]
            reserved, nfats = struct.unpack_from("<HB", data, start + 14)
            root_entries, = struct.unpack_from("<H", data, start + 17)
            fatsz = struct.unpack_from("<H", data, start + 22)[0] or struct.unpack_from(
                "<I", data, start + 36)[0]
            fat_start = start + reserved * bps
            regions += [Region("fat:boot", start, 90), Region("fat:fat", fat_start,
                                                             min(nfats * fatsz * bps, 4096))]
            root = fat_start + nfats * fatsz * bps
            if root_entries:
                regions.append(Region("fat:rootdir", root, root_entries * 32))
            regions += _dir_regions(image, sector, bps, "fat")
            del spc
        elif kind == "ext":
            sb = start + 1024
            block = 1024 << struct.unpack_from("<I", data, sb + 24)[0]
            first_data, = struct.unpack_from("<I", data, sb + 20)
            inode_size, = struct.unpack_from("<H", data, sb + 88)
            gdt = start + (first_data + 1) * block
            table, = struct.unpack_from("<I", data, gdt + 8)
            regions += [Region("ext:superblock", sb, 264), Region("ext:gdt", gdt, 64),
                        Region("ext:inode_table", start + table * block, 24 * inode_size)]
            regions += _dir_regions(image, sector, block, "ext")
        elif kind == "ntfs":
            bps, spc = struct.unpack_from("<H", data, start + 11)[0], data[start + 13]
            mft, = struct.unpack_from("<Q", data, start + 0x30)
            cluster = bps * spc
            regions += [Region("ntfs:boot", start, 90),
                        Region("ntfs:mft", start + mft * cluster, 80 * 1024)]
    return regions


# --------------------------------------------------------------------------- mutations


def plan_mutation(rng: random.Random, base: BaseImage) -> Mutation:
    """One to four structure-aware edits, or a truncation (last sectors missing)."""
    m = Mutation(base.name)
    if rng.random() < 0.08:
        keep = rng.randrange(base.size // 3, base.size - SECTOR) // SECTOR * SECTOR
        m.truncate_to = keep
        m.labels.append(f"truncated to {keep} of {base.size} bytes")
        if rng.random() < 0.5:
            return m
    for _ in range(rng.choice((1, 1, 2, 3, 4))):
        if rng.random() < 0.1 or not base.regions:
            start, length, name = 0, base.size, "anywhere"
        else:
            region = rng.choice(base.regions)
            start, length, name = region.start, max(1, region.length), region.name
        op = rng.choice(("flip", "flip", "int16", "int32", "int32", "copy", "zero", "bytes"))
        at = start + rng.randrange(length)
        if op == "flip":
            bits = rng.randint(1, 8)
            for _ in range(bits):
                pos = start + rng.randrange(length)
                m.edits.append((pos, bytes([_read_byte(base, pos) ^ (1 << rng.randrange(8))])))
            m.labels.append(f"{bits} bit flips in {name}")
        elif op in ("int16", "int32"):
            at -= (at - start) % (2 if op == "int16" else 4)
            values = INTERESTING_16 if op == "int16" else (*INTERESTING_32, base.size,
                                                           base.size // SECTOR)
            value = rng.choice(values) if rng.random() < 0.8 else rng.getrandbits(32)
            fmt = "<H" if op == "int16" else "<I"
            m.edits.append((at, struct.pack(fmt, value & (0xFFFF if op == "int16" else
                                                          0xFFFFFFFF))))
            m.labels.append(f"{op} {value:#x} at {name}+{at - start}")
        elif op == "copy":  # cross-links: a FAT entry, block pointer or dirent copied over
            width = rng.choice((2, 4, 16, 32))
            src = start + rng.randrange(length)
            payload = bytes(_read_byte(base, src + i) for i in range(width))
            m.edits.append((at, payload))
            m.labels.append(f"copied {width} bytes within {name}")
        elif op == "zero":  # an unreadable sector, as imagers fill it
            sector = at // SECTOR * SECTOR
            m.edits.append((sector, bytes(SECTOR)))
            m.labels.append(f"zeroed sector at byte {sector} ({name})")
        else:
            count = rng.randint(1, 16)
            m.edits.append((at, rng.randbytes(count)))
            m.labels.append(f"{count} random bytes in {name}")
    return m


_CACHE: dict[Path, bytes] = {}


def _read_byte(base: BaseImage, pos: int) -> int:
    data = _CACHE.get(base.path)
    if data is None:
        data = _CACHE[base.path] = base.path.read_bytes()
    return data[pos] if pos < len(data) else 0
