"""APFS containers through libfsapfs: every volume walked like a TSK filesystem.

The PyPI pytsk3's Sleuth Kit cannot open APFS pools, so a volume whose bytes start an
APFS container (``NXSB`` at byte 32) is read with libfsapfs instead. Each APFS volume of
the container is a filesystem of its own, named ``apfs.N`` (N: its index in the
container) in locations, so the walk's records have the shape ``ingest.walk`` gives
(inode = the file system identifier, as ``fls -B`` numbers it; path; times; mode) and
everything downstream works unchanged. Extended attributes (the resource fork
``com.apple.ResourceFork`` among them) are streams of their file, as NTFS alternate data
streams are. An encrypted volume is recorded as such: it is opened only with the
password or recovery key the examiner gives.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pyfsapfs

from ingest.errors import IngestError
from ingest.image import EvidenceImage
from ingest.layers import PASSWORD_ENV, RECOVERY_KEY_ENV
from ingest.layers.snapshots import VolumeFile
from ingest.location import EvidenceLocation, FileEntry, FileKind, iso_utc
from ingest.volumes import Volume

SIGNATURE_OFFSET = 32
SIGNATURE = b"NXSB"
PREFIX = "apfs."
MAX_DEPTH = 128
# The examiner's keys reach the walk's child process and every worker through the
# environment (``exhibit triage --volume-password/--recovery-key`` set them), never
# through task arguments, the case database or the ledger.


def is_container(image: EvidenceImage, start: int) -> bool:
    """Whether the volume at ``start`` begins an APFS container (its superblock magic)."""
    return image.read_at(start + SIGNATURE_OFFSET, 4) == SIGNATURE


def fs_name(index: int) -> str:
    return f"{PREFIX}{index}"


def volume_index(fs_type: str) -> int | None:
    """N of an ``apfs.N`` filesystem type; None for any other type."""
    if not fs_type.startswith(PREFIX) or not fs_type[len(PREFIX):].isdigit():
        return None
    return int(fs_type[len(PREFIX):])


@dataclass(frozen=True, slots=True)
class ApfsVolumeInfo:
    """What the ledger says of one APFS volume."""

    index: int
    name: str
    identifier: str
    encrypted: bool  # locked: unreadable without a password or recovery key

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "identifier": self.identifier,
                "encrypted": self.encrypted}


class ApfsContainer:
    """One APFS container on a volume of the evidence, opened read-only."""

    def __init__(self, image: EvidenceImage, start: int, length: int | None = None,
                 password: str | None = None, recovery_key: str | None = None) -> None:
        self.start = start
        self.password = password if password is not None else os.environ.get(PASSWORD_ENV)
        self.recovery_key = (recovery_key if recovery_key is not None
                             else os.environ.get(RECOVERY_KEY_ENV))
        self._file = VolumeFile(image, start, image.size - start if length is None else length)
        self._container = pyfsapfs.container()
        try:
            self._container.open_file_object(self._file)
        except (OSError, ValueError) as exc:
            raise IngestError(f"the APFS container at byte offset {start} of {image.paths[0]}"
                              f" cannot be read: {str(exc).strip()}") from exc

    def volumes(self) -> list[ApfsVolumeInfo]:
        out = []
        try:
            for index in range(int(self._container.get_number_of_volumes())):
                vol = self._container.get_volume(index)
                out.append(ApfsVolumeInfo(index, str(vol.get_name() or ""),
                                          str(vol.get_identifier() or ""),
                                          bool(vol.is_locked())))
        except (OSError, ValueError) as exc:
            raise IngestError(f"the APFS container at byte offset {self.start}: volume list"
                              f" unreadable: {str(exc).strip()}") from exc
        return out

    def volume(self, index: int) -> Any:
        """The pyfsapfs volume, unlocked with the examiner's key when it is encrypted."""
        try:
            vol = self._container.get_volume(index)
        except (OSError, ValueError) as exc:
            raise IngestError(f"APFS volume {index} at byte offset {self.start} cannot be "
                              f"opened: {str(exc).strip()}") from exc
        if vol.is_locked():
            if self.password is None and self.recovery_key is None:
                raise IngestError(f"APFS volume {index} ({vol.get_name()!r}) at byte offset "
                                  f"{self.start} is encrypted: not read without a password or"
                                  f" recovery key")
            if self.password is not None:
                vol.set_password(self.password)
            if self.recovery_key is not None:
                vol.set_recovery_password(self.recovery_key)
            if not vol.unlock():
                raise IngestError(f"APFS volume {index} ({vol.get_name()!r}) at byte offset "
                                  f"{self.start}: the password or recovery key given does "
                                  f"not unlock it")
        return vol

    def close(self) -> None:
        self._container.close()


def _iso(nanos: int | None) -> str | None:
    return iso_utc(*divmod(int(nanos), 1_000_000_000)) if nanos else None


def _time(entry: Any, name: str) -> str | None:
    try:
        return _iso(getattr(entry, f"get_{name}_as_integer")())
    except (OSError, ValueError, AttributeError):
        return None


def _kind(mode: int) -> FileKind:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


class ApfsWalker:
    """Every entry of one APFS volume, as ``ingest.walk.FilesystemWalker`` yields them."""

    def __init__(self, container: ApfsContainer, volume: Volume, index: int, evidence_id: str,
                 on_directory: Callable[[str], None] | None = None) -> None:
        from ingest.walk import WalkStats  # the shared counters (walk imports this module)

        self.container = container
        self.volume = volume
        self.index = index
        self.fs_type = fs_name(index)
        self.evidence_id = evidence_id
        self.on_directory = on_directory
        self.stats = WalkStats()
        self._vol = container.volume(index)

    def __iter__(self) -> Iterator[FileEntry]:
        if self.on_directory is not None:
            self.on_directory("/")
        try:
            root = self._vol.get_root_directory()
        except (OSError, ValueError) as exc:
            raise IngestError(f"APFS volume {self.index} at byte offset {self.volume.start}:"
                              f" root directory unreadable: {str(exc).strip()}") from exc
        yield from self._walk(root, "", [int(root.get_identifier())])

    def _note(self, text: str) -> None:
        self.stats.skipped += 1
        self.stats.notes.append(text)

    def _walk(self, directory: Any, prefix: str, stack: list[int]) -> Iterator[FileEntry]:
        try:
            children = list(directory.sub_file_entries)
        except (OSError, ValueError) as exc:
            self._note(f"/{prefix}: directory listing failed: {str(exc).strip()}")
            return
        for child in children:
            name = str(child.get_name() or "").replace("/", "\\x2f")
            path = f"{prefix}/{name}" if prefix else name
            try:
                entry = self._entry(child, path, name)
            except (OSError, ValueError) as exc:
                self._note(f"/{path}: unreadable entry: {str(exc).strip()}")
                continue
            yield entry
            yield from self._xattrs(child, entry)
            if entry.kind != "directory":
                continue
            ident = entry.location.inode
            if ident in stack:
                self._note(f"/{path}: directory loop (identifier {ident} is its own ancestor)")
            elif len(stack) >= MAX_DEPTH:
                self._note(f"/{path}: not entered, depth limit {MAX_DEPTH} reached")
            else:
                if self.on_directory is not None:
                    self.on_directory("/" + path)
                yield from self._walk(child, path, [*stack, ident])

    def _entry(self, child: Any, path: str, name: str) -> FileEntry:
        mode = int(child.get_file_mode() or 0)
        kind = _kind(mode)
        location = EvidenceLocation(
            evidence_id=self.evidence_id, volume_index=self.volume.index,
            volume_offset=self.volume.start, fs_type=self.fs_type,
            inode=int(child.get_identifier()), path="/" + path)
        entry = FileEntry(
            location=location, name=name, size=int(child.get_size() or 0), kind=kind,
            allocated=True, mtime=_time(child, "modification_time"),
            atime=_time(child, "access_time"), ctime=_time(child, "inode_change_time"),
            crtime=_time(child, "creation_time"), mode=mode & 0o7777,
            uid=int(child.get_owner_identifier()), gid=int(child.get_group_identifier()),
            meta_allocated=True)
        if kind == "file":
            self.stats.files += 1
        elif kind == "directory":
            self.stats.dirs += 1
        else:
            self.stats.other += 1
        return entry

    def _xattrs(self, child: Any, entry: FileEntry) -> list[FileEntry]:
        """One entry per extended attribute: the resource fork and the rest, as streams."""
        out: list[FileEntry] = []
        try:
            attrs = list(child.extended_attributes)
        except (OSError, ValueError) as exc:
            self.stats.notes.append(f"{entry.location.path}: extended attributes unreadable:"
                                    f" {str(exc).strip()}")
            return out
        for attr in attrs:
            stream = str(attr.get_name())
            location = replace(entry.location, stream=stream)
            out.append(FileEntry(
                location=location, name=f"{entry.name}:{stream}", size=int(attr.get_size()),
                kind="file", allocated=True, mtime=entry.mtime, atime=entry.atime,
                ctime=entry.ctime, crtime=entry.crtime, mode=entry.mode, uid=entry.uid,
                gid=entry.gid, meta_allocated=True, notes=("extended attribute",)))
            self.stats.streams += 1
        return out


class ApfsFile:
    """One APFS file's data or one of its extended attributes, for ``ContentReader``."""

    def __init__(self, container: ApfsContainer, index: int, inode: int,
                 stream: str | None) -> None:
        vol = container.volume(index)
        try:
            entry = vol.get_file_entry_by_identifier(inode)
        except (OSError, ValueError) as exc:
            raise IngestError(f"APFS volume {index}: no file with identifier {inode}: "
                              f"{str(exc).strip()}") from exc
        self._target: Any = entry
        if stream is not None:
            try:
                attr = entry.get_extended_attribute_by_name(stream)
            except (OSError, ValueError, KeyError) as exc:
                raise IngestError(f"APFS volume {index}, identifier {inode}: no extended "
                                  f"attribute {stream!r}") from exc
            if attr is None:
                raise IngestError(f"APFS volume {index}, identifier {inode}: no extended "
                                  f"attribute {stream!r}")
            self._target = attr
        self.size = int(self._target.get_size() or 0)

    def read_random(self, offset: int, length: int) -> bytes:
        try:
            return bytes(self._target.read_buffer_at_offset(length, offset))
        except (OSError, ValueError) as exc:
            raise OSError(str(exc).strip()) from exc
