"""Virtual disks to fuzz: a base image in every container, and mutations of the containers.

``build_vdisk_bases(directory, raw)`` converts one fuzz base (the MBR disk) with
``qemu-img`` into VMDK (monolithic sparse, split sparse, split flat, stream-optimised),
VHD (dynamic, fixed), VHDX and QCOW2, plus three chains: a QCOW2 child over its backing
file, differencing VHD and VHDX over their parents, a UDIF ``.dmg`` and a
``.sparseimage`` (``tests/vdisk_images.py``). Each container's
structures are located by parsing its header (VMDK header, embedded descriptor and grain
directory; VHD footer, dynamic header and BAT; VHDX headers, region tables, BAT and
metadata; QCOW header, L1 and refcount tables; DMG trailer, property list, first chunk;
sparse image header and band index; a descriptor file whole).
``plan_vdisk_mutation`` draws mutated headers, a truncated container or extent, or a
missing parent or extent; ``VdiskMutation.apply`` copies the set and applies it.
"""

from __future__ import annotations

import json
import random
import struct
from dataclasses import dataclass, field
from pathlib import Path

import vdisk_images as vd

from fuzz.images import INTERESTING_32, SECTOR, Region

VARIANTS: tuple[tuple[str, str, str], ...] = (  # name, qemu format, subformat
    ("vmdk-sparse", "vmdk", "monolithicSparse"),
    ("vmdk-split-sparse", "vmdk", "twoGbMaxExtentSparse"),
    ("vmdk-split-flat", "vmdk", "twoGbMaxExtentFlat"),
    ("vmdk-stream", "vmdk", "streamOptimized"),
    ("vhd-dynamic", "vpc", "dynamic"),
    ("vhd-fixed", "vpc", "fixed"),
    ("vhdx", "vhdx", "dynamic"),
    ("qcow2", "qcow2", ""),
)
CHANGED_AT = 8192  # the gap after the MBR: the chains' children differ there, not in files


@dataclass(frozen=True)
class VdiskBase:
    name: str
    top: Path
    files: tuple[Path, ...]  # every container file, top first
    regions: tuple[tuple[str, Region], ...]  # (file name, structure)


@dataclass
class VdiskMutation:
    base: str
    edits: list[tuple[str, int, bytes]] = field(default_factory=list)  # file, offset, bytes
    truncate: tuple[str, int] | None = None
    remove: str | None = None
    labels: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"{self.base}: " + "; ".join(self.labels)

    def apply(self, base: VdiskBase, directory: Path) -> Path:
        """Copy the container set into ``directory`` mutated; returns the top file."""
        directory.mkdir(parents=True, exist_ok=True)
        for path in base.files:
            if path.name == self.remove:
                continue
            data = bytearray(path.read_bytes())
            for name, offset, payload in self.edits:
                if name == path.name and offset < len(data):
                    data[offset : offset + len(payload)] = payload[: len(data) - offset]
            if self.truncate and self.truncate[0] == path.name:
                del data[self.truncate[1] :]
            target = directory / path.name
            target.write_bytes(bytes(data))
            target.chmod(0o444)
        return directory / base.top.name


def _regions(path: Path) -> list[Region]:
    data = path.read_bytes()
    head = data[:512]
    if head[:4] == b"KDMV":
        (_m, _v, _f, _cap, _grain, desc, desc_size, _gtes, rgd, gd, _over) = struct.unpack_from(
            "<4sIIQQQQIQQQ", head)
        out = [Region("vmdk:header", 0, 80)]
        if desc:
            out.append(Region("vmdk:descriptor", desc * SECTOR, desc_size * SECTOR))
        for label, at in (("vmdk:grain_directory", gd), ("vmdk:redundant_gd", rgd)):
            if at and at != 0xFFFFFFFFFFFFFFFF:
                out.append(Region(label, at * SECTOR, SECTOR))
        return out
    if head.lower().startswith(b"# disk descriptorfile"):
        return [Region("vmdk:descriptor_file", 0, len(data))]
    if head.startswith(b"vhdxfile"):
        out = [Region("vhdx:identifier", 0, 512), Region("vhdx:header1", 65536, 80),
               Region("vhdx:header2", 131072, 80), Region("vhdx:regions", 196608, 80)]
        _sig, _sum, count, _r = struct.unpack_from("<4sIII", data, 196608)
        for i in range(min(count, 8)):
            _guid, offset, _length, _req = struct.unpack_from("<16sQII", data, 196624 + 32 * i)
            out.append(Region(f"vhdx:region{i}", offset, 256))
            if data[offset : offset + 8] == b"metadata":  # the items: sizes, parent locator
                out.append(Region("vhdx:metadata_items", offset + 65536, 256))
        return out
    if head.startswith(b"conectix"):  # dynamic or differencing: footer copy first
        table, = struct.unpack_from(">Q", data, 512 + 16)
        return [Region("vhd:footer_copy", 0, 512), Region("vhd:dynamic_header", 512, 1024),
                Region("vhd:bat", table, 64), Region("vhd:footer", len(data) - 512, 512)]
    if head.startswith(b"sprs"):
        return [Region("sparseimage:header", 0, 64), Region("sparseimage:bands", 64, 256)]
    if data[-512:].startswith(b"koly"):
        xml_at, xml_length = struct.unpack_from(">QQ", data, len(data) - 512 + 216)
        return [Region("dmg:koly", len(data) - 512, 512), Region("dmg:plist", xml_at, xml_length),
                Region("dmg:first_chunk", 0, 512)]
    if data[-512:].startswith(b"conectix"):
        return [Region("vhd:footer", len(data) - 512, 512)]
    if head.startswith(b"QFI\xfb"):
        l1, refcount = struct.unpack_from(">QQ", data, 40)
        return [Region("qcow:header", 0, 104), Region("qcow:l1_table", l1, 64),
                Region("qcow:refcount_table", refcount, 64)]
    return []  # a flat extent: the disk's own bytes, fuzzed as raw images already are


def build_vdisk_bases(directory: Path, raw: Path) -> list[VdiskBase]:
    """Every variant of ``raw`` once into ``directory`` (cached by an index)."""
    index = directory / "vdisks.json"
    if index.exists():
        return [_load(item) for item in json.loads(index.read_text())]
    directory.mkdir(parents=True, exist_ok=True)
    made: list[tuple[str, Path]] = []
    for name, fmt, subformat in VARIANTS:
        made.append((name, vd.convert(raw, directory / name / f"disk{vd.SUFFIX[fmt]}", fmt,
                                      subformat)))
    changed = directory / "changed.raw"
    data = bytearray(raw.read_bytes())
    data[CHANGED_AT : CHANGED_AT + 4096] = random.Random(16).randbytes(4096)
    changed.write_bytes(bytes(data))
    qbase = vd.convert(raw, directory / "qcow2-chain" / "base.qcow2", "qcow2")
    made.append(("qcow2-chain", vd.child_over(qbase, "qcow2", raw, changed,
                                              directory / "qcow2-chain" / "child.qcow2")))
    vbase = vd.convert(raw, directory / "vhd-chain" / "base.vhd", "vpc", "dynamic")
    vraw = directory / "vhd-chain.raw"
    vd.to_raw(vbase, vraw, "vpc")
    vchanged = bytearray(vraw.read_bytes())
    vchanged[CHANGED_AT : CHANGED_AT + 4096] = data[CHANGED_AT : CHANGED_AT + 4096]
    vraw.write_bytes(bytes(vchanged))
    made.append(("vhd-chain", vd.differencing_vhd(vbase, vraw, directory / "vhd-chain" /
                                                  "child.vhd")))
    xbase = vd.convert(raw, directory / "vhdx-chain" / "base.vhdx", "vhdx")
    made.append(("vhdx-chain", vd.differencing_vhdx(xbase, changed, directory / "vhdx-chain" /
                                                    "child.vhdx")))
    made.append(("dmg", vd.udif_dmg(raw, directory / "dmg" / "disk.dmg")))
    made.append(("sparseimage", vd.sparseimage(raw, directory / "sparse" / "disk.sparseimage",
                                               band_sectors=256)))
    changed.unlink()
    vraw.unlink()
    bases = []
    for name, top in made:
        files = [top, *(p for p in vd.container_files(top.parent) if p != top)]
        if name.endswith("chain"):
            files = [top, next(p for p in files if p.name.startswith("base."))]
        for path in files:
            path.chmod(0o444)
        regions = tuple((p.name, r) for p in files for r in _regions(p))
        bases.append(VdiskBase(name, top, tuple(files), regions))
    index.write_text(json.dumps([_dump(b) for b in bases]))
    return bases


def _dump(base: VdiskBase) -> dict:
    return {"name": base.name, "top": str(base.top), "files": [str(p) for p in base.files],
            "regions": [[f, r.name, r.start, r.length] for f, r in base.regions]}


def _load(item: dict) -> VdiskBase:
    return VdiskBase(item["name"], Path(item["top"]), tuple(Path(p) for p in item["files"]),
                     tuple((f, Region(n, s, length)) for f, n, s, length in item["regions"]))


def plan_vdisk_mutation(rng: random.Random, base: VdiskBase) -> VdiskMutation:
    """Mutated container structures (mostly), a truncated file, or a missing one."""
    m = VdiskMutation(base.name)
    roll = rng.random()
    if roll < 0.1 and len(base.files) > 1:
        gone = rng.choice(base.files[1:])
        m.remove = gone.name
        m.labels.append(f"{gone.name} missing")
        return m
    if roll < 0.25:
        victim = rng.choice(base.files)
        size = victim.stat().st_size
        keep = rng.randrange(size // 4, max(size // 4 + 1, size - SECTOR)) // SECTOR * SECTOR
        m.truncate = (victim.name, keep)
        m.labels.append(f"{victim.name} truncated to {keep} of {size} bytes")
        return m
    for _ in range(rng.choice((1, 1, 2, 3))):
        name, region = rng.choice(base.regions)
        at = region.start + rng.randrange(max(1, region.length))
        op = rng.choice(("flip", "flip", "int32", "int32", "zero", "bytes"))
        if op == "flip":
            data = (base.top.parent / name).read_bytes()
            byte = data[at] if at < len(data) else 0
            m.edits.append((name, at, bytes([byte ^ (1 << rng.randrange(8))])))
            m.labels.append(f"bit flip in {name} {region.name}+{at - region.start}")
        elif op == "int32":
            at -= (at - region.start) % 4
            value = rng.choice(INTERESTING_32) if rng.random() < 0.8 else rng.getrandbits(32)
            order = "<" if region.name.startswith(("vmdk", "vhdx", "vss", "apfs")) else ">"
            m.edits.append((name, at, struct.pack(f"{order}I", value)))
            m.labels.append(f"int32 {value:#x} at {name} {region.name}+{at - region.start}")
        elif op == "zero":
            m.edits.append((name, at, bytes(min(64, region.length))))
            m.labels.append(f"zeroed {name} {region.name}+{at - region.start}")
        else:
            count = rng.randint(1, 16)
            m.edits.append((name, at, rng.randbytes(count)))
            m.labels.append(f"{count} random bytes in {name} {region.name}")
    return m
