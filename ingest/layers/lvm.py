"""LVM2 logical volumes: each one a volume of the evidence, read through its extents.

A partition (or a whole disk) that is an LVM2 physical volume holds the volume group's
text metadata; each logical volume is a list of segments, each a run of physical
extents. We read the label, the metadata area and the metadata text (LVM2's documented
on-disk format) and turn every logical volume into a ``Volume`` whose ``extents`` map its
bytes to byte ranges of the image: its location is the image offset of its first extent,
and ``ExtentImage`` lets The Sleuth Kit read it as one volume. libvslvm reads the same
metadata on its own; it does not expose where the extents lie, which locations need, so
it serves as the check: each logical volume's name and size, and its bytes at the start
of every segment, must be what libvslvm reads, or the volume is not read.

Only what can be read exactly is read: a logical volume on other physical volumes, or
striped, mirrored, thin or cached, is listed with the reason it was not read.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

import pytsk3
import pyvslvm

from ingest.errors import IngestError
from ingest.image import EvidenceImage
from ingest.layers import LayerImage
from ingest.layers.snapshots import VolumeFile

LABEL = b"LABELONE"
LABEL_TYPE = b"LVM2 001"
MDA_MAGIC = b" LVM2 x[5A%r0N*>"
SECTOR = 512
MAX_METADATA = 1 << 20
_TOKEN = re.compile(rb'\s*(?:#[^\n]*|"((?:[^"\\]|\\.)*)"|([\[\]{}=,])|([^\s\[\]{}=,"#]+))')


@dataclass(frozen=True, slots=True)
class LogicalVolume:
    """One logical volume: its names, size, and (logical, image offset, length) extents."""

    vg: str
    name: str
    id: str
    size: int
    extents: tuple[tuple[int, int, int], ...]
    unreadable: str | None = None  # why it is not read, when it is not
    note: str | None = None  # read, but something a reviewer should know

    @property
    def start(self) -> int:
        return self.extents[0][1] if self.extents else 0


def _parse(text: bytes) -> dict[str, Any]:
    """LVM2's metadata text: ``name { … }`` sections, ``key = value`` (string, number,
    list) assignments, ``#`` comments. Malformed text is an IngestError."""
    tokens: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            if text[pos:].strip() == b"":
                break
            raise IngestError(f"LVM metadata: unreadable text at byte {pos}")
        pos = match.end()
        if match.group(1) is not None:
            tokens.append(("str", match.group(1).decode("utf-8", "replace")))
        elif match.group(2) is not None:
            tokens.append((match.group(2).decode(), None))
        elif match.group(3) is not None:
            word = match.group(3).decode("utf-8", "replace")
            tokens.append(("num", int(word)) if re.fullmatch(r"-?\d+", word)
                          else ("word", word))
    at = 0

    def value() -> Any:
        nonlocal at
        kind, val = tokens[at]
        at += 1
        if kind in ("str", "num", "word"):
            return val
        if kind == "[":
            items = []
            while tokens[at][0] != "]":
                if tokens[at][0] == ",":
                    at += 1
                    continue
                items.append(value())
            at += 1
            return items
        raise IngestError(f"LVM metadata: unexpected {kind!r}")

    def section(depth: int) -> dict[str, Any]:
        nonlocal at
        out: dict[str, Any] = {}
        while at < len(tokens) and tokens[at][0] != "}":
            kind, name = tokens[at]
            if kind not in ("word", "str") or at + 1 >= len(tokens) or depth > 16:
                raise IngestError("LVM metadata: malformed section")
            at += 1
            if tokens[at][0] == "=":
                at += 1
                out[name] = value()
            elif tokens[at][0] == "{":
                at += 1
                out[name] = section(depth + 1)
                if at >= len(tokens):
                    raise IngestError("LVM metadata: unclosed section")
                at += 1
            else:
                raise IngestError("LVM metadata: malformed section")
        return out

    try:
        return section(0)
    except IndexError as exc:
        raise IngestError("LVM metadata: truncated text") from exc


def _read(image: EvidenceImage, offset: int, size: int) -> bytes:
    data = image.read_at(offset, size)
    if len(data) != size:
        raise IngestError(f"LVM: {size} bytes at byte offset {offset} are past the image end")
    return data


def _metadata(image: EvidenceImage, start: int) -> tuple[str, dict[str, Any]] | None:
    """(PV uuid, metadata) of the physical volume at ``start``; None without a label."""
    for sector in range(4):
        label = image.read_at(start + sector * SECTOR, 32)
        if label[:8] == LABEL and label[24:32] == LABEL_TYPE:
            break
    else:
        return None
    (offset,) = struct.unpack_from("<I", label, 20)
    header = start + sector * SECTOR + offset
    uuid = _read(image, header, 32).decode("ascii", "replace")
    at = header + 40
    for _ in range(16):  # data areas, then a zero pair
        if struct.unpack("<QQ", _read(image, at, 16)) == (0, 0):
            break
        at += 16
    at += 16
    mda_offset, _size = struct.unpack("<QQ", _read(image, at, 16))
    mda = start + mda_offset
    head = _read(image, mda, 64)
    if head[4:20] != MDA_MAGIC:
        raise IngestError(f"LVM physical volume at byte offset {start}: no metadata area")
    raw_offset, raw_size = struct.unpack_from("<QQ", head, 40)
    if not 0 < raw_size <= MAX_METADATA:
        raise IngestError(f"LVM physical volume at byte offset {start}: metadata of "
                          f"{raw_size} bytes")
    text = _read(image, mda + raw_offset, raw_size)
    pv_id = "-".join((uuid[:6], uuid[6:10], uuid[10:14], uuid[14:18], uuid[18:22],
                      uuid[22:26], uuid[26:]))
    return pv_id, _parse(text.rstrip(b"\0"))


def find_logical_volumes(image: EvidenceImage, start: int) -> list[LogicalVolume] | None:
    """The logical volumes of the physical volume at ``start``; None when it is none."""
    found = _metadata(image, start)
    if found is None:
        return None
    pv_id, meta = found
    groups = [(k, v) for k, v in meta.items() if isinstance(v, dict)
              and "physical_volumes" in v]
    if len(groups) != 1:
        raise IngestError(f"LVM physical volume at byte offset {start}: no volume group")
    vg, group = groups[0]
    try:
        extent = int(group["extent_size"]) * SECTOR
        local = {name: int(pv["pe_start"]) * SECTOR for name, pv in
                 group["physical_volumes"].items() if pv.get("id") == pv_id}
        out = [_volume(vg, name, lv, extent, local, start)
               for name, lv in group.get("logical_volumes", {}).items()]
    except (KeyError, TypeError, ValueError) as exc:
        raise IngestError(f"LVM volume group {vg} at byte offset {start}: metadata "
                          f"incomplete ({exc})") from exc
    return _checked(image, start, out)


def _volume(vg: str, name: str, lv: dict[str, Any], extent: int, local: dict[str, int],
            start: int) -> LogicalVolume:
    segments = sorted((v for k, v in lv.items() if k.startswith("segment")
                       and isinstance(v, dict)), key=lambda s: int(s["start_extent"]))
    extents: list[tuple[int, int, int]] = []
    reason = None
    size = sum(int(s["extent_count"]) for s in segments) * extent
    for seg in segments:
        stripes = seg.get("stripes", [])
        if seg.get("type") != "striped" or int(seg.get("stripe_count", 0)) != 1:
            reason = f"a {seg.get('type')} segment of {seg.get('stripe_count')} stripes"
        elif len(stripes) != 2 or stripes[0] not in local:
            reason = f"a segment on physical volume {stripes[:1]} not in this image"
        if reason:
            break
        extents.append((int(seg["start_extent"]) * extent,
                        start + local[stripes[0]] + int(stripes[1]) * extent,
                        int(seg["extent_count"]) * extent))
    return LogicalVolume(vg, name, str(lv.get("id", "")), size,
                         tuple(extents) if reason is None else (), reason)


def _checked(image: EvidenceImage, start: int, volumes: list[LogicalVolume]
             ) -> list[LogicalVolume]:
    """libvslvm must see the same volumes, sizes and bytes at each segment's start.

    libvslvm (20260901) cannot open a logical volume of several segments ("invalid
    physical volume value already set"): such a volume is read from the metadata alone
    and says so; any volume libvslvm opens and reads differently is not read.
    """
    handle = pyvslvm.handle()
    try:
        pv_file = VolumeFile(image, start, image.size - start)
        handle.open_file_object(pv_file)
        handle.open_physical_volume_files_as_file_objects([pv_file])
        group = handle.get_volume_group()
        theirs: dict[str, Any] = {}
        failures: list[str] = []
        for i in range(group.get_number_of_logical_volumes()):
            try:
                lv = group.get_logical_volume(i)
            except (OSError, ValueError) as exc:
                failures.append(str(exc).strip().split(". ")[-1])
                continue
            theirs[lv.get_name()] = lv
        out = []
        for ours in volumes:
            lv = theirs.get(ours.name)
            if ours.unreadable is not None:
                out.append(ours)
            elif lv is None and failures:
                out.append(LogicalVolume(
                    ours.vg, ours.name, ours.id, ours.size, ours.extents, None,
                    f"read from its LVM2 metadata alone: libvslvm cannot open it"
                    f" ({failures[0]})"))
            else:
                out.append(_compare(image, ours, lv))
        return out
    except (OSError, ValueError) as exc:
        raise IngestError(f"LVM physical volume at byte offset {start}: libvslvm cannot "
                          f"read it: {str(exc).strip()}") from exc
    finally:
        handle.close()


def _compare(image: EvidenceImage, ours: LogicalVolume, lv: Any) -> LogicalVolume:
    reason = None
    if lv is None or int(lv.get_size()) != ours.size:
        reason = "libvslvm reads it differently (name or size)"
    for logical, physical, _length in ours.extents if reason is None else ():
        if bytes(lv.read_buffer_at_offset(SECTOR * 8, logical)) != image.read_at(
                physical, SECTOR * 8):
            reason = f"libvslvm reads other bytes at its byte {logical}"
            break
    if reason is None:
        return ours
    return LogicalVolume(ours.vg, ours.name, ours.id, ours.size, (), reason)


class ExtentImage(LayerImage):
    """A logical volume's bytes, mapped onto the image, for The Sleuth Kit (offset 0)."""

    def __init__(self, image: EvidenceImage, extents: tuple[tuple[int, int, int], ...]) -> None:
        self.image = image
        self.paths = image.paths
        self.extents = extents
        self.size = sum(length for _, _, length in extents)
        super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL)

    def read_at(self, offset: int, size: int) -> bytes:
        out = bytearray()
        for logical, physical, length in self.extents:
            if size <= 0:
                break
            if logical <= offset < logical + length:
                take = min(size, logical + length - offset)
                out += self.image.read_at(physical + offset - logical, take)
                offset += take
                size -= take
        return bytes(out)
