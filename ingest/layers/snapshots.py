"""Volume shadow copies of an NTFS volume, each readable as a volume of its own.

Windows keeps earlier states of a volume as copy-on-write stores (VSS); libvshadow reads
the catalog and rebuilds each store's view of the whole volume. Each store becomes a
``SnapshotImage``: a ``pytsk3.Img_Info`` whose bytes are that view, so The Sleuth Kit
walks and reads a snapshot exactly as it walks the live volume (the filesystem starts at
offset 0 of the snapshot image). libvshadow only reads: the volume is handed to it as a
read-only file object over our evidence reader.

Detection is quiet when there is nothing to find (no VSS header at 0x1e00, or shadow
copies enabled with no catalog); a header that is there but cannot be read, or a store
that cannot be opened, is an ``IngestError`` the caller records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytsk3
import pyvshadow

from ingest.errors import IngestError
from ingest.image import EvidenceImage
from ingest.layers import LayerImage
from ingest.location import Snapshot, iso_utc
from ingest.streams import RandomAccessStream

HEADER_OFFSET = 0x1E00  # the VSS volume header sits in NTFS's boot code area
STORE_BLOCK = 0x4000  # the copy-on-write unit of the Microsoft software provider
UNCHANGED_NOTE = ("unchanged since the snapshot: the live volume has the same data runs and"
                  " no store holds a block of them")
_NONRES = int(pytsk3.TSK_FS_ATTR_NONRES)
_NTFS_DATA = int(pytsk3.TSK_FS_ATTR_TYPE_NTFS_DATA)
VSS_IDENTIFIER = bytes.fromhex("6b87083876c1484eb7ae04046e6cc752")
FILETIME_EPOCH = 116444736000000000


class VolumeFile(RandomAccessStream):
    """One volume of the evidence as a read-only file object (what libvshadow reads)."""

    def __init__(self, image: EvidenceImage, start: int, length: int) -> None:
        super().__init__(max(0, min(length, image.size - start)))
        self._image = image
        self._start = start

    def read_at(self, offset: int, length: int) -> bytes:
        return self._image.read_at(self._start + offset, length)


@dataclass(slots=True)
class SnapshotScan:
    """The stores found on one volume and the ones that could not be read."""

    snapshots: list[Snapshot] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    enabled: bool = False  # a VSS header is present (shadow copies switched on)


def _created(store: object) -> str | None:
    try:
        value = int(store.get_creation_time_as_integer())  # type: ignore[attr-defined]
    except (OSError, AttributeError, TypeError, ValueError):
        return None
    if value <= FILETIME_EPOCH:
        return None
    seconds, rest = divmod(value - FILETIME_EPOCH, 10_000_000)
    return iso_utc(seconds, rest * 100)


def has_vss_header(image: EvidenceImage, start: int) -> bool:
    """Whether the volume at ``start`` carries a VSS volume header (cheap, no libvshadow)."""
    head = image.read_at(start + HEADER_OFFSET, len(VSS_IDENTIFIER))
    return head == VSS_IDENTIFIER


def _open_volume(image: EvidenceImage, start: int, length: int) -> tuple[object, VolumeFile]:
    handle = VolumeFile(image, start, length)
    volume = pyvshadow.volume()
    try:
        volume.open_file_object(handle)
    except (OSError, ValueError) as exc:
        raise IngestError(
            f"the shadow copy header or catalog of the volume at byte offset {start} of "
            f"{image.paths[0]} cannot be read: {str(exc).strip()}") from exc
    return volume, handle


def find_snapshots(image: EvidenceImage, start: int, length: int) -> SnapshotScan:
    """Every readable store of the volume at ``start``, in catalog order.

    A catalog libvshadow rejects is an ``IngestError``; a store it lists but cannot
    describe is named in ``errors`` and the other stores are still returned.
    """
    scan = SnapshotScan()
    if not has_vss_header(image, start):
        return scan
    scan.enabled = True
    volume, _ = _open_volume(image, start, length)
    try:
        count = int(volume.get_number_of_stores())  # type: ignore[attr-defined]
        for index in range(count):
            try:
                store = volume.get_store(index)  # type: ignore[attr-defined]
                ident = str(store.get_copy_identifier() or store.get_identifier())
                size = int(store.get_volume_size())
            except (OSError, ValueError) as exc:
                scan.errors.append(f"shadow copy store {index} of the volume at byte offset"
                                   f" {start}: unreadable: {str(exc).strip()}")
                continue
            if size <= 0:
                scan.errors.append(f"shadow copy store {index} of the volume at byte offset"
                                   f" {start}: states a volume size of {size} bytes")
                continue
            scan.snapshots.append(Snapshot(index=index, id=ident, created=_created(store)))
    finally:
        volume.close()  # type: ignore[attr-defined]
    return scan


class SnapshotImage(LayerImage):
    """One store's view of the whole volume, for The Sleuth Kit (filesystem at offset 0)."""

    def __init__(self, image: EvidenceImage, start: int, snapshot: Snapshot) -> None:
        self.image = image
        self.snapshot = snapshot
        self.paths = image.paths  # error messages name the evidence
        self._volume, self._file = _open_volume(image, start, image.size - start)
        try:
            count = int(self._volume.get_number_of_stores())  # type: ignore[attr-defined]
            if snapshot.index >= count:
                raise IngestError(f"the volume at byte offset {start} has {count} shadow "
                                  f"copy stores, not store {snapshot.index}")
            self._store = self._volume.get_store(snapshot.index)  # type: ignore[attr-defined]
            ident = str(self._store.get_copy_identifier() or self._store.get_identifier())
            self.size = int(self._store.get_volume_size())
        except (OSError, ValueError) as exc:
            self._volume.close()  # type: ignore[attr-defined]
            raise IngestError(f"shadow copy store {snapshot.index} of the volume at byte "
                              f"offset {start} cannot be opened: {str(exc).strip()}") from exc
        except IngestError:
            self._volume.close()  # type: ignore[attr-defined]
            raise
        if ident != snapshot.id:
            self._volume.close()  # type: ignore[attr-defined]
            raise IngestError(f"shadow copy store {snapshot.index} of the volume at byte "
                              f"offset {start} is {ident}, not {snapshot.id}: the catalog "
                              f"changed since the walk")
        super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL)

    def read_at(self, offset: int, size: int) -> bytes:
        size = max(0, min(size, self.size - offset))
        if size == 0:
            return b""
        try:
            return bytes(self._store.read_buffer_at_offset(size, offset))
        except (OSError, ValueError) as exc:
            raise OSError(f"shadow copy store {self.snapshot.index}: read of {size} bytes "
                          f"at {offset} failed: {str(exc).strip()}") from exc

    def saved_blocks(self) -> frozenset[int]:
        """The 16 KiB blocks (by number) this store, or a newer one it reads through,
        holds a copy of: everywhere else the snapshot reads the live volume's bytes."""
        saved: set[int] = set()
        stores = int(self._volume.get_number_of_stores())  # type: ignore[attr-defined]
        for index in range(self.snapshot.index, stores):
            store = self._volume.get_store(index)  # type: ignore[attr-defined]
            for number in range(int(store.get_number_of_blocks())):
                block = store.get_block(number)
                # The relative offset names the next store's block for a forwarder: both
                # count, so a doubt makes a file analysed again, never wrongly shared.
                saved.add(int(block.original_offset) // STORE_BLOCK)
                saved.add(int(block.relative_offset) // STORE_BLOCK)
        return frozenset(saved)

    def close(self) -> None:
        self._volume.close()  # type: ignore[attr-defined]


def data_layout(file_obj: object, stream: str | None) -> tuple[object, ...] | None:
    """(size, flags, runs) of a file's $DATA stream when non-resident, else None.

    A resident stream lives in its MFT record, which the snapshot may hold a copy of:
    such small files are simply analysed in both places.
    """
    wanted = None if stream is None else stream.encode("utf-8", "surrogateescape")
    try:
        for attr in file_obj:  # type: ignore[attr-defined]
            info = attr.info
            if int(info.type) != _NTFS_DATA:
                continue
            name = info.name or None
            if name == b"$Data":
                name = None
            if name != wanted:
                continue
            if not int(info.flags) & _NONRES:
                return None
            runs = tuple((int(r.addr), int(r.len), int(r.offset), int(r.flags)) for r in attr)
            return (int(info.size), int(info.flags), runs)
    except OSError:
        return None
    return None


def unchanged_since(live_layout: tuple[object, ...] | None,
                    snap_layout: tuple[object, ...] | None, block_size: int,
                    saved: frozenset[int]) -> bool:
    """Whether a snapshot's stream reads exactly the live stream's bytes.

    Same size, flags and runs, and not one block of those runs is held by a store: the
    snapshot then reads every byte of it from the live volume, at the same place. (One
    case this does not see: libvshadow zero-fills blocks the newest store's bitmap marks
    free at snapshot time; a consistent snapshot never marks a file's data free.)
    """
    if live_layout is None or snap_layout is None or live_layout != snap_layout:
        return False
    for addr, length, _offset, flags in snap_layout[2]:  # type: ignore[misc]
        if flags or not length:  # sparse or special runs: no claim
            continue
        first = addr * block_size // STORE_BLOCK
        last = ((addr + length) * block_size - 1) // STORE_BLOCK
        if len(saved) < last - first:
            if any(first <= number <= last for number in saved):
                return False
        elif any(number in saved for number in range(first, last + 1)):
            return False
    return True
