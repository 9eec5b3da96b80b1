"""Find the volumes on an image: MBR (with logical partitions), GPT, and friends.

A disk without a partition table is common evidence (a USB stick formatted whole, a
logical image of one partition). Like dissect, we then treat the whole image as one
volume and say so in a warning instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytsk3

from ingest.errors import IngestError
from ingest.image import EvidenceImage
from ingest.layers import lvm

PartitionFlag = Literal["allocated", "unallocated", "meta"]
NO_TABLE_WARNING = "no partition table found; treating the whole image as one volume"

_VS_TYPES: tuple[tuple[object, str], ...] = (
    (pytsk3.TSK_VS_TYPE_DOS, "dos"),
    (pytsk3.TSK_VS_TYPE_GPT, "gpt"),
    (pytsk3.TSK_VS_TYPE_MAC, "mac"),
    (pytsk3.TSK_VS_TYPE_BSD, "bsd"),
    (pytsk3.TSK_VS_TYPE_SUN, "sun"),
)


@dataclass(frozen=True, slots=True)
class Volume:
    """One slot of the volume system (partition, table or gap), in bytes."""

    index: int  # TSK partition address (mmls slot); -1 for the whole-image volume
    start: int  # byte offset in the image
    length: int  # bytes
    description: str
    flag: PartitionFlag
    # An LVM logical volume: (logical, image offset, length) runs; ``start`` is its first.
    extents: tuple[tuple[int, int, int], ...] = ()

    @property
    def is_filesystem_candidate(self) -> bool:
        """Only allocated partitions can hold a filesystem worth opening."""
        return self.flag == "allocated"

    @property
    def sector_offset(self) -> int:
        """Start in 512-byte sectors, as ``fls -o`` wants it."""
        return self.start // 512


@dataclass(slots=True)
class VolumeScan:
    """What ``find_volumes`` found, with anything a reviewer should know."""

    volumes: list[Volume]
    partition_table: str | None
    block_size: int = 512
    warnings: list[str] = field(default_factory=list)

    @property
    def candidates(self) -> list[Volume]:
        return [v for v in self.volumes if v.is_filesystem_candidate]


def _flag(part_flags: object) -> PartitionFlag:
    if part_flags == pytsk3.TSK_VS_PART_FLAG_ALLOC:
        return "allocated"
    if part_flags == pytsk3.TSK_VS_PART_FLAG_META:
        return "meta"
    return "unallocated"


def _vs_name(vstype: object) -> str:
    for value, name in _VS_TYPES:
        if vstype == value:
            return name
    return str(vstype).removeprefix("TSK_VS_TYPE_").lower()


def whole_image_volume(image: EvidenceImage) -> Volume:
    return Volume(index=-1, start=0, length=image.size, description="whole image",
                  flag="allocated")


def find_volumes(image: EvidenceImage) -> VolumeScan:
    """List every slot of the image's volume system, or the whole image as one volume;
    an LVM2 physical volume among them adds its logical volumes (``_with_lvm``)."""
    return _with_lvm(image, _find_volumes(image))


def _with_lvm(image: EvidenceImage, scan: VolumeScan) -> VolumeScan:
    """Each LVM2 physical volume becomes a "meta" slot followed by its logical volumes,
    numbered after the table's slots; one that cannot be read is said in a warning."""
    out: list[Volume] = []
    number = max((v.index for v in scan.volumes), default=0) + 1
    for volume in scan.volumes:
        if not volume.is_filesystem_candidate:
            out.append(volume)
            continue
        try:
            found = lvm.find_logical_volumes(image, volume.start)
        except IngestError as exc:
            scan.warnings.append(str(exc))
            found = None
        if found is None:
            out.append(volume)
            continue
        vg = found[0].vg if found else "?"
        out.append(Volume(volume.index, volume.start, volume.length,
                          f"{volume.description} (LVM2 physical volume of {vg})", "meta"))
        for lv in found:
            if lv.unreadable:
                scan.warnings.append(f"LVM logical volume {lv.vg}/{lv.name} not read: "
                                     f"{lv.unreadable}")
                continue
            if lv.note:
                scan.warnings.append(f"LVM logical volume {lv.vg}/{lv.name}: {lv.note}")
            out.append(Volume(number, lv.start, lv.size, f"LVM2 {lv.vg}/{lv.name}",
                              "allocated", lv.extents))
            number += 1
    scan.volumes = out
    return scan


def _find_volumes(image: EvidenceImage) -> VolumeScan:
    try:
        vs = pytsk3.Volume_Info(image)
    except OSError:
        return VolumeScan([whole_image_volume(image)], None, warnings=[NO_TABLE_WARNING])
    except RuntimeError as exc:  # the image's own read failed under TSK (a cut container)
        return VolumeScan([whole_image_volume(image)], None, warnings=[
            f"the image could not be read where a volume system would be: {exc}"])
    block_size = int(vs.info.block_size)
    volumes: list[Volume] = []
    warnings: list[str] = []
    for part in vs:
        desc = part.desc.decode("utf-8", "replace") if isinstance(part.desc, bytes) else str(
            part.desc
        )
        start = int(part.start) * block_size
        length = int(part.len) * block_size
        flag = _flag(part.flags)
        if flag == "allocated" and start + length > image.size:
            warnings.append(
                f"partition {part.addr} ({desc}) ends at byte {start + length}, beyond the "
                f"image size {image.size}: the image may be truncated"
            )
        volumes.append(Volume(int(part.addr), start, length, desc, flag))
    return VolumeScan(volumes, _vs_name(vs.info.vstype), block_size, warnings)
