"""Virtual-disk test images made from a raw image with the real tools, and their oracle.

``qemu-img convert -O vmdk|vpc|vhdx|qcow2`` makes each container (with its subformat
options); ``child_over`` makes a child with ``qemu-img create -b`` and writes into it with
``qemu-io`` what differs, as a guest writing to a snapshot would. ``multi_flat_vmdk``
writes a descriptor by hand naming flat extents cut at odd offsets; ``differencing_vhd``
and ``differencing_vhdx`` write differencing disks by the formats' specifications
(qemu-img can neither make them nor read them over their parent): in the VHD, sector
bitmaps mark exactly the sectors that differ. The oracle for every image is a raw file:
``qemu-img convert -O raw`` of it, or, for differencing disks, the raw it was made from.
"""

from __future__ import annotations

import itertools
import os
import plistlib
import shutil
import struct
import subprocess
import uuid
import zlib
from pathlib import Path

MIB = 1 << 20
VHD_BLOCK = 2 * MIB
SUBFORMATS = {
    "vmdk": ("monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse",
             "twoGbMaxExtentFlat", "streamOptimized"),
    "vpc": ("fixed", "dynamic"),
    "vhdx": ("dynamic", "fixed"),
    "qcow2": ("",),
}
SUFFIX = {"vmdk": ".vmdk", "vpc": ".vhd", "vhdx": ".vhdx", "qcow2": ".qcow2"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed (apt-get install qemu-utils; make test)")
    return path


def _run(*cmd: str | Path) -> None:
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True,
                   env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))


def convert(raw: Path, out: Path, fmt: str, subformat: str = "") -> Path:
    """``raw`` as a ``fmt`` container."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd: list[str | Path] = [_tool("qemu-img"), "convert", "-f", "raw", "-O", fmt]
    if subformat:
        cmd += ["-o", f"subformat={subformat}"]
    _run(*cmd, raw, out)
    return out


def child_over(base: Path, fmt: str, old_raw: Path, new_raw: Path, out: Path,
               chunk: int = 4096) -> Path:
    """A child image over ``base`` (``qemu-img create -b``, the name relative to ``out``)
    into which qemu-io writes what differs between ``old_raw`` (the base's content) and
    ``new_raw``, as a guest would."""
    backing = os.path.relpath(base, out.parent)
    _run(_tool("qemu-img"), "create", "-q", "-f", fmt, "-b", backing, "-F", fmt, out)
    old, new = old_raw.read_bytes(), new_raw.read_bytes()
    ranges: list[list[int]] = []
    for at in range(0, len(new), chunk):
        if old[at : at + chunk] != new[at : at + chunk]:
            if ranges and ranges[-1][1] == at:
                ranges[-1][1] = at + chunk
            else:
                ranges.append([at, at + chunk])
    commands: list[str] = []
    for i, (start, end) in enumerate(ranges):
        piece = out.parent / f".piece-{i}"
        piece.write_bytes(new[start:end])
        commands += ["-c", f"write -s {piece} {start} {end - start}"]
    _run(_tool("qemu-io"), "-f", fmt, *commands, out)
    for i in range(len(ranges)):
        (out.parent / f".piece-{i}").unlink()
    return out


def to_raw(image: Path, out: Path, fmt: str | None = None) -> Path:
    """The oracle: qemu's own reading of ``image`` as a raw file."""
    fmt_args = ["-f", fmt] if fmt else []
    _run(_tool("qemu-img"), "convert", *fmt_args, "-O", "raw", image, out)
    return out


def container_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix != ".raw")


def modified_copy(raw: Path, out: Path, size: int | None = None) -> Path:
    """``raw`` as a guest would leave it after writing: a file added, one deleted (FAT)."""
    shutil.copyfile(raw, out)
    out.chmod(0o644)
    if size is not None:
        with out.open("r+b") as fh:
            fh.truncate(size)
    note = out.parent / "NOTE.TXT"
    note.write_bytes(b"written after the snapshot\n" * 700)
    _run(_tool("mcopy"), "-i", f"{out}@@1M", note, "::/DCIM/NOTE.TXT")
    note.unlink()
    listing = subprocess.run([_tool("mdir"), "-b", "-/", "-i", f"{out}@@1M", "::/DCIM"],
                             check=True, capture_output=True, text=True,
                             env=dict(os.environ, MTOOLS_SKIP_CHECK="1")).stdout.split()
    victim = next(p for p in sorted(listing) if p.upper().endswith(".JPG"))
    _run(_tool("mdel"), "-i", f"{out}@@1M", victim)
    return out


SPAN_START = (2048 - 8) * MIB  # a third partition from 8 MiB before 2 GiB to 8 MiB after


def spanning_raw(raw: Path, out: Path) -> Path:
    """A 2 GiB + 32 MiB disk (sparse file): the sample, plus a copy of its ext4 partition as
    a third primary partition across the 2 GiB line where split VMDKs cut their extents."""
    data = raw.read_bytes()
    with out.open("wb") as fh:
        fh.truncate(2080 * MIB)
        fh.write(data)
        fh.seek(SPAN_START)
        fh.write(data[42 * MIB : 58 * MIB])  # partition 5 (ext4) starts at 42 MiB
    subprocess.run([_tool("sfdisk"), "-q", "--append", str(out)],
                   input=f"start={SPAN_START // 512}, size={16 * MIB // 512}, type=83\n",
                   text=True, check=True, capture_output=True)
    return out


def multi_flat_vmdk(raw: Path, directory: Path, cuts: tuple[int, ...]) -> Path:
    """A descriptor naming flat extents cut at ``cuts`` (sectors): reads cross extents."""
    directory.mkdir(parents=True, exist_ok=True)
    data = raw.read_bytes()
    sectors = len(data) // 512
    bounds = [0, *cuts, sectors]
    lines = ["# Disk DescriptorFile", "version=1", "CID=45584849", "parentCID=ffffffff",
             'createType="twoGbMaxExtentFlat"', "", "# Extent description"]
    for i, (start, end) in enumerate(itertools.pairwise(bounds), 1):
        name = f"disk-f{i:03d}.vmdk"
        (directory / name).write_bytes(data[start * 512 : end * 512])
        lines.append(f'RW {end - start} FLAT "{name}" 0')
    lines += ["", "# The Disk Data Base", "#DDB", 'ddb.adapterType = "ide"', ""]
    descriptor = directory / "disk.vmdk"
    descriptor.write_text("\n".join(lines))
    return descriptor


def _vhd_checksum(data: bytes | bytearray, at: int) -> int:
    return ~(sum(data[:at]) + sum(data[at + 4 :])) & 0xFFFFFFFF


def differencing_vhd(parent: Path, child_raw: Path, out: Path,
                     parent_name: str | None = None) -> Path:
    """A differencing VHD over ``parent`` holding exactly the sectors of ``child_raw``
    that differ from the parent's media (``parent`` must be a dynamic or fixed VHD
    whose media is ``parent_media``)."""
    with parent.open("rb") as fh:
        head = fh.read(512)
        fh.seek(-512, 2)
        footer = bytearray(fh.read(512) if not head.startswith(b"conectix") else head)
    current_size, = struct.unpack_from(">Q", footer, 48)
    parent_id = bytes(footer[68:84])
    parent_media = out.with_suffix(".parent.raw")
    to_raw(parent, parent_media, "vpc")
    base, child = parent_media.read_bytes(), child_raw.read_bytes()
    parent_media.unlink()
    if len(child) != current_size or len(base) != current_size:
        raise ValueError(f"sizes differ: parent {len(base)}, child {len(child)}, "
                         f"footer {current_size}")
    blocks = (current_size + VHD_BLOCK - 1) // VHD_BLOCK
    bat_bytes = (blocks * 4 + 511) // 512 * 512
    name = parent_name or parent.name
    locator = name.encode("utf-16-le")
    locator_space = (len(locator) + 511) // 512 * 512
    body = bytearray()
    next_sector = (512 + 1024 + bat_bytes + locator_space) // 512
    bat = [0xFFFFFFFF] * blocks
    for b in range(blocks):
        lo, hi = b * VHD_BLOCK, min((b + 1) * VHD_BLOCK, current_size)
        if base[lo:hi] == child[lo:hi]:
            continue
        bitmap = bytearray(512)
        for s in range((hi - lo) // 512):
            at = lo + s * 512
            if base[at : at + 512] != child[at : at + 512]:
                bitmap[s // 8] |= 0x80 >> (s % 8)
        bat[b] = next_sector
        body += bitmap + child[lo:hi].ljust(VHD_BLOCK, b"\0")
        next_sector += (512 + VHD_BLOCK) // 512
    footer[60:64] = struct.pack(">I", 4)  # differencing
    footer[16:24] = struct.pack(">Q", 512)  # data offset: the dynamic header
    footer[68:84] = uuid.uuid4().bytes
    footer[64:68] = struct.pack(">I", _vhd_checksum(footer, 64))
    header = bytearray(1024)
    header[0:8] = b"cxsparse"
    header[8:16] = b"\xff" * 8
    struct.pack_into(">QIII", header, 16, 512 + 1024, 0x00010000, blocks, VHD_BLOCK)
    header[40:56] = parent_id
    header[64:576] = name.encode("utf-16-be")[:512].ljust(512, b"\0")
    struct.pack_into(">4sIIIQ", header, 576, b"W2ru", locator_space, len(locator), 0,
                     512 + 1024 + bat_bytes)
    header[36:40] = struct.pack(">I", _vhd_checksum(header, 36))
    bat_raw = b"".join(struct.pack(">I", e) for e in bat).ljust(bat_bytes, b"\xff")
    out.write_bytes(bytes(footer) + bytes(header) + bat_raw + locator.ljust(locator_space, b"\0")
                    + bytes(body) + bytes(footer))
    return out


VHDX_BAT = uuid.UUID("2dc27766-f623-4200-9d64-115e9bfd4a08")
VHDX_METADATA = uuid.UUID("8b7ca206-4790-4b9a-b8fe-575f050f886e")
VHDX_FILE_PARAMETERS = uuid.UUID("caa16737-fa36-4d43-b3b6-33f0aa44e76b")
VHDX_PARENT_LOCATOR = uuid.UUID("a8d35f2d-b30b-454d-abf7-d3d84834ab0c")
VHDX_LOCATOR_TYPE = uuid.UUID("b04aefb7-d19e-4a81-b789-25b8e9445913")


def _vhdx_regions(data: bytes) -> dict[uuid.UUID, int]:
    _sig, _sum, count, _r = struct.unpack_from("<4sIII", data, 196608)
    out = {}
    for i in range(count):
        guid, offset, _length, _req = struct.unpack_from("<16sQII", data, 196624 + 32 * i)
        out[uuid.UUID(bytes_le=guid)] = offset
    return out


def _vhdx_data_write_guid(data: bytes) -> uuid.UUID:
    """The current header's DataWriteGuid: what a child's ``parent_linkage`` names."""
    headers = [(struct.unpack_from("<Q", data, at + 8)[0], at) for at in (65536, 131072)]
    _, at = max(headers)
    return uuid.UUID(bytes_le=data[at + 32 : at + 48])


def differencing_vhdx(parent: Path, child_raw: Path, out: Path,
                      parent_name: str | None = None, block: int = 8 * MIB,
                      relative_only: bool = False) -> Path:
    """A differencing VHDX over ``parent``: ``qemu-img create`` makes an empty dynamic
    VHDX; the blocks of ``child_raw`` that differ from the parent's media go in as fully
    present payload blocks, the file parameters get HasParent and the metadata a parent
    locator (``parent_linkage`` = the parent's DataWriteGuid, ``relative_path`` and,
    unless ``relative_only``, ``absolute_win32_path``)."""
    parent_media = out.with_suffix(".parent.raw")
    to_raw(parent, parent_media, "vhdx")
    base, child = parent_media.read_bytes(), child_raw.read_bytes()
    parent_media.unlink()
    if len(base) != len(child):
        raise ValueError(f"sizes differ: parent {len(base)}, child {len(child)}")
    _run(_tool("qemu-img"), "create", "-q", "-f", "vhdx", "-o",
         f"block_size={block},subformat=dynamic", out, str(len(child)))
    data = bytearray(out.read_bytes())
    regions = _vhdx_regions(bytes(data))
    bat, meta = regions[VHDX_BAT], regions[VHDX_METADATA]
    chunk_ratio = (1 << 23) * 512 // block
    for i in range((len(child) + block - 1) // block):
        piece = child[i * block : (i + 1) * block]
        if piece == base[i * block : (i + 1) * block]:
            continue  # not present: read from the parent
        offset = (len(data) + MIB - 1) // MIB * MIB
        data.extend(bytes(offset - len(data)) + piece.ljust(block, b"\0"))
        struct.pack_into("<Q", data, bat + 8 * (i + i // chunk_ratio), (offset // MIB) << 20 | 6)
    _sig, _r, count = struct.unpack_from("<8sHH", data, meta)
    items_end = 65536
    for i in range(count):
        guid, offset, length, _flags, _r2 = struct.unpack_from("<16sIIII", data, meta + 32 + 32 * i)
        items_end = max(items_end, offset + length)
        if uuid.UUID(bytes_le=guid) == VHDX_FILE_PARAMETERS:
            flags_at = meta + offset + 4
            data[flags_at] |= 0x02  # HasParent
    with parent.open("rb") as fh:
        linkage = _vhdx_data_write_guid(fh.read(196608))
    name = parent_name or parent.name
    pairs = [("parent_linkage", "{" + str(linkage) + "}"), ("relative_path", ".\\" + name)]
    if not relative_only:
        pairs.append(("absolute_win32_path", "C:\\VMs\\" + name))  # as Hyper-V writes it
    header = bytearray(VHDX_LOCATOR_TYPE.bytes_le + struct.pack("<HH", 0, len(pairs)))
    strings = bytearray()
    entries = bytearray()
    base_at = len(header) + 12 * len(pairs)
    for key, value in pairs:
        k, v = key.encode("utf-16-le"), value.encode("utf-16-le")
        entries += struct.pack("<IIHH", base_at + len(strings), base_at + len(strings) + len(k),
                               len(k), len(v))
        strings += k + v
    locator = bytes(header + entries + strings)
    at = (items_end + 7) // 8 * 8
    data[meta + at : meta + at + len(locator)] = locator
    struct.pack_into("<16sIIII", data, meta + 32 + 32 * count, VHDX_PARENT_LOCATOR.bytes_le, at,
                     len(locator), 0x4, 0)  # IsRequired
    struct.pack_into("<H", data, meta + 10, count + 1)
    out.write_bytes(bytes(data))
    return out


def udif_dmg(raw: Path, out: Path, chunk_sectors: int = 2048) -> Path:
    """An Apple UDIF disk image (``.dmg``) of ``raw``, written by the format's layout (no
    Linux tool makes one; ``dmg2img`` reads it back as the oracle): two ``blkx`` tables,
    zlib chunks, raw chunks (every third) and zero-fill for empty ones, the XML property
    list and the 512-byte ``koly`` trailer."""
    data = raw.read_bytes()
    sectors = len(data) // 512
    half = sectors // 2 // chunk_sectors * chunk_sectors
    fork = bytearray()
    tables = []
    for first, last in ((0, half), (half, sectors)):
        chunks = []
        for n, start in enumerate(range(first, last, chunk_sectors)):
            count = min(chunk_sectors, last - start)
            piece = data[start * 512 : (start + count) * 512]
            if not piece.strip(b"\0"):
                chunks.append((0x00000002, start - first, count, len(fork), 0))
                continue
            body = piece if n % 3 == 2 else zlib.compress(piece, 6)
            kind = 0x00000001 if n % 3 == 2 else 0x80000005
            chunks.append((kind, start - first, count, len(fork), len(body)))
            fork += body
        chunks.append((0xFFFFFFFF, last - first, 0, len(fork), 0))
        mish = bytearray(struct.pack(">4sIQQQII", b"mish", 1, first, last - first, 0, 0, 0))
        mish += bytes(24) + struct.pack(">II", 0, 0) + bytes(128)
        mish += struct.pack(">I", len(chunks))
        for kind, start, count, offset, length in chunks:
            mish += struct.pack(">IIQQQQ", kind, 0, start, count, offset, length)
        tables.append({"Attributes": "0x0050", "CFName": f"part {len(tables)}",
                       "Data": bytes(mish), "ID": str(len(tables) - 1),
                       "Name": f"part {len(tables)}"})
    xml = plistlib.dumps({"resource-fork": {"blkx": tables}})
    koly = bytearray(512)
    struct.pack_into(">4sIIIQQQQQII", koly, 0, b"koly", 4, 512, 1, 0, 0, len(fork), 0, 0, 1, 1)
    koly[64:80] = uuid.UUID(int=0x45584849).bytes
    struct.pack_into(">QQ", koly, 216, len(fork), len(xml))
    struct.pack_into(">IQ", koly, 488, 1, sectors)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(fork) + xml + bytes(koly))
    return out


def dmg_to_raw(image: Path, out: Path) -> Path:
    """The oracle for a UDIF image: ``dmg2img``'s raw reading of it."""
    _run(_tool("dmg2img"), "-s", image, out)
    return out


def sparseimage(raw: Path, out: Path, band_sectors: int = 2048) -> Path:
    """An Apple sparse disk image (``.sparseimage``) of ``raw`` by libmodi's description of
    the format: a 4 KiB ``sprs`` header whose band index array maps each stored band to
    its place in the disk; empty bands are not stored, the others stored in reverse, so a
    reader that ignored the index would read the wrong bytes. (No Linux tool reads or
    writes the format: the oracle is ``raw`` itself.)"""
    data = raw.read_bytes()
    band = band_sectors * 512
    stored = [i for i in range(0, len(data), band) if data[i : i + band].strip(b"\0")][::-1]
    header = bytearray(4096)
    struct.pack_into(">4sIIII", header, 0, b"sprs", 3, band_sectors, 1, len(data) // 512)
    for slot, start in enumerate(stored):
        struct.pack_into(">I", header, 64 + 4 * slot, start // band + 1)
    body = b"".join(data[start : start + band].ljust(band, b"\0") for start in stored)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(header) + body)
    return out
