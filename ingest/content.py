"""Read one file's bytes by location, for an analysis worker.

Workers get an ``ImageSpec`` and inode lists, never pytsk3 objects (they do not pickle),
so each process opens the image once and keeps one ``FS_Info`` per volume offset.

Size rule: a stream whose stated size exceeds the bytes the image holds from its
volume's start cannot be real content — corrupt metadata (a 2^40-byte file on a 10 MB
image) or a sparse file larger than its whole volume. Reading it would take hours of
zeros or read errors, so it is not read: ``ImplausibleSizeError`` names both sizes and
the worker stores it as the file's ``read`` error. Sparse files up to the volume's size
are read like any other (holes read as zeros), bounded by the per-file time limit.
"""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import pytsk3

from ingest.errors import IngestError
from ingest.image import EvidenceImage, ImageSpec
from ingest.layers import apfs
from ingest.layers.bitlocker import DecryptedImage, is_bitlocker
from ingest.layers.lvm import ExtentImage
from ingest.layers.snapshots import SnapshotImage
from ingest.location import Snapshot
from ingest.streams import RandomAccessStream
from ingest.volumes import find_volumes
from ingest.walk import open_filesystem, open_snapshot_filesystem

DEFAULT_CHUNK = 1 << 20
MAX_CACHED_READERS = 4  # open images per worker process (a long-lived cluster sees many)


class ImplausibleSizeError(IngestError):
    """A stream's stated size exceeds what its volume can hold: not read (see above)."""
_NTFS_DATA = int(pytsk3.TSK_FS_ATTR_TYPE_NTFS_DATA)


class ContentReader:
    """Streams file contents out of one image; TSK calls are serialised by a lock."""

    def __init__(self, spec: ImageSpec, image: EvidenceImage | None = None) -> None:
        self.spec = spec
        self.image = image if image is not None else spec.open()
        self._filesystems: dict[tuple[int, str | None, Snapshot | None], tuple[Any, str]] = {}
        self._snapshots: list[SnapshotImage] = []
        self._mapped: dict[int, tuple[tuple[int, int, int], ...]] | None = None  # LVM LVs
        self._lock = threading.RLock()

    def filesystem(self, volume_offset: int, fs_type: str | None = None,
                   snapshot: Snapshot | None = None) -> tuple[Any, str]:
        """The cached (FS_Info, fs_type) at ``volume_offset`` bytes; ``fs_type`` picks one
        of several filesystems on the same volume, ``snapshot`` one of its shadow copies."""
        key = (volume_offset, fs_type, snapshot)
        with self._lock:
            if key not in self._filesystems:
                if fs_type is not None and apfs.volume_index(fs_type) is not None:
                    self._filesystems[key] = (apfs.ApfsContainer(self.image, volume_offset),
                                              fs_type)
                elif snapshot is None and volume_offset in self._logical_volumes():
                    source = ExtentImage(self.image, self._logical_volumes()[volume_offset])
                    self._filesystems[key] = open_filesystem(source, 0, fs_type)  # type: ignore[arg-type]
                elif snapshot is None and is_bitlocker(self.image, volume_offset):
                    plain = DecryptedImage(self.image, volume_offset,
                                           self.image.size - volume_offset)
                    self._filesystems[key] = open_filesystem(plain, 0, fs_type)  # type: ignore[arg-type]
                elif snapshot is None:
                    self._filesystems[key] = open_filesystem(self.image, volume_offset,
                                                             fs_type)
                else:
                    source, fs, name = open_snapshot_filesystem(self.image, volume_offset,
                                                                snapshot, fs_type)
                    self._snapshots.append(source)
                    self._filesystems[key] = (fs, name)
            return self._filesystems[key]

    def _logical_volumes(self) -> dict[int, tuple[tuple[int, int, int], ...]]:
        """Extents of the image's LVM logical volumes by start (looked up once)."""
        if self._mapped is None:
            self._mapped = {v.start: v.extents for v in find_volumes(self.image).volumes
                            if v.extents}
        return self._mapped

    def _where(self, volume_offset: int, inode: int, stream: str | None) -> str:
        suffix = f":{stream}" if stream else ""
        return f"{self.spec.paths[0]} @ byte {volume_offset}, inode {inode}{suffix}"

    def _target(self, volume_offset: int, inode: int, stream: str | None,
                fs_type: str | None = None,
                snapshot: Snapshot | None = None) -> tuple[Any, int, tuple]:
        """(pytsk3 File, size, extra read_random args selecting the stream)."""
        fs, _ = self.filesystem(volume_offset, fs_type, snapshot)
        index = apfs.volume_index(fs_type or "")
        if index is not None:  # libfsapfs: the file or one extended attribute
            target = apfs.ApfsFile(fs, index, inode, stream)
            return target, target.size, ()
        try:
            file_obj = fs.open_meta(inode=inode)
        except OSError as exc:
            raise IngestError(
                f"cannot open {self._where(volume_offset, inode, stream)}: {str(exc).strip()}"
            ) from exc
        meta = file_obj.info.meta
        if meta is None:
            raise IngestError(f"no metadata for {self._where(volume_offset, inode, stream)}")
        if stream is None:
            return file_obj, int(meta.size), ()
        wanted = stream.encode("utf-8", "surrogateescape")
        for attr in file_obj:
            if int(attr.info.type) == _NTFS_DATA and attr.info.name == wanted:
                return file_obj, int(attr.info.size), (attr.info.type, attr.info.id)
        raise IngestError(f"no such stream: {self._where(volume_offset, inode, stream)}")

    def size(self, volume_offset: int, inode: int, stream: str | None = None,
             fs_type: str | None = None) -> int:
        with self._lock:
            return self._target(volume_offset, inode, stream, fs_type)[1]

    def iter_chunks(
        self, volume_offset: int, inode: int, stream: str | None = None,
        chunk_size: int = DEFAULT_CHUNK, fs_type: str | None = None,
        snapshot: Snapshot | None = None,
    ) -> Iterator[bytes]:
        """The stream's bytes in order; IngestError naming the location on a read error."""
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        with self._lock:
            file_obj, size, extra = self._target(volume_offset, inode, stream, fs_type,
                                                 snapshot)
        available = self.image.size - volume_offset
        if size > available:
            raise ImplausibleSizeError(
                f"stated size of {size} bytes exceeds the {available} bytes the image holds"
                f" from the volume start; not read (corrupt metadata, or a sparse file larger"
                f" than its volume): {self._where(volume_offset, inode, stream)}"
            )
        offset = 0
        while offset < size:
            want = min(chunk_size, size - offset)
            with self._lock:
                try:
                    data = file_obj.read_random(offset, want, *extra)
                except OSError as exc:
                    raise IngestError(
                        f"read error at file offset {offset} of "
                        f"{self._where(volume_offset, inode, stream)}: {str(exc).strip()}"
                    ) from exc
            if not data:
                raise IngestError(
                    f"short read at file offset {offset} of {size} bytes of "
                    f"{self._where(volume_offset, inode, stream)}"
                )
            offset += len(data)
            yield data

    def open_stream(self, volume_offset: int, inode: int, stream: str | None = None,
                    fs_type: str | None = None,
                    snapshot: Snapshot | None = None) -> io.BufferedReader:
        """A seekable, read-only file object over one stream (containers need random access)."""
        with self._lock:
            file_obj, size, extra = self._target(volume_offset, inode, stream, fs_type,
                                                 snapshot)
        where = self._where(volume_offset, inode, stream)
        return io.BufferedReader(_StreamFile(self._lock, file_obj, size, extra, where),
                                 buffer_size=DEFAULT_CHUNK)

    def read_all(self, volume_offset: int, inode: int, stream: str | None = None,
                 fs_type: str | None = None, snapshot: Snapshot | None = None) -> bytes:
        return b"".join(self.iter_chunks(volume_offset, inode, stream, fs_type=fs_type,
                                         snapshot=snapshot))

    def close(self) -> None:
        with self._lock:
            self._filesystems.clear()
            for source in self._snapshots:
                source.close()
            self._snapshots.clear()
            self.image.close()


class _StreamFile(RandomAccessStream):
    """Random access to one stream through TSK's ``read_random``."""

    def __init__(self, lock: threading.RLock, file_obj: Any, size: int, extra: tuple,
                 where: str) -> None:
        super().__init__(size)
        self._lock = lock
        self._file = file_obj
        self._extra = extra
        self._where = where

    def read_at(self, offset: int, length: int) -> bytes:
        with self._lock:
            try:
                data = self._file.read_random(offset, length, *self._extra)
            except OSError as exc:
                raise IngestError(f"read error at file offset {offset} of {self._where}:"
                                  f" {str(exc).strip()}") from exc
        if not data:
            raise IngestError(f"short read at file offset {offset} of {self._where}")
        return bytes(data)


_READERS: OrderedDict[tuple[ImageSpec, tuple], ContentReader] = OrderedDict()
_READERS_LOCK = threading.Lock()


def _identity(spec: ImageSpec) -> tuple:
    """What the files at the spec's paths are now: a replaced image is a new image."""
    out = []
    for path in spec.paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
            continue
        out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def reader_for(spec: ImageSpec) -> ContentReader:
    """This process's reader for ``spec``: Dask workers open each image once.

    The cache is keyed by the files' identity too (a file replaced at the same path must
    not be read through a stale ``FS_Info``) and keeps the most recent few, so a worker
    that serves many cases does not accumulate open images.
    """
    key = (spec, _identity(spec))
    with _READERS_LOCK:
        reader = _READERS.get(key)
        if reader is not None:
            _READERS.move_to_end(key)
            return reader
        reader = _READERS[key] = ContentReader(spec)
        while len(_READERS) > MAX_CACHED_READERS:
            _READERS.popitem(last=False)[1].close()
        return reader


def close_readers() -> None:
    """Close every cached reader (worker teardown, tests)."""
    with _READERS_LOCK:
        while _READERS:
            _READERS.popitem()[1].close()
