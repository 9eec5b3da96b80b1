"""EnCase (E01/Ex01/L01) images through libewf, with the hashes and header values they store.

pyewf reads the structure, the stored hashes and header values, and the media of every
kind of EWF image; the media of an E01 on local disk is read by the system's libewf when
it is installed and agrees with pyewf (``libewf_native``: ~9x faster, zlib's inflate).
``EXHIBIT_EWF_READER=pyewf`` keeps every read in pyewf.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyewf

from ingest.errors import IngestError, UnsupportedImageError
from ingest.formats.libewf_native import LibewfError, NativeEwf
from ingest.remote.objects import RemotePath

SIGNATURES = (b"EVF\x09\x0d\x0a\xff\x00", b"LVF\x09\x0d\x0a\xff\x00", b"EVF2\r\n\x81\x00")
_EWF_HASHES = {"md5": "MD5", "sha1": "SHA1", "sha256": "SHA256"}
READER_ENV = "EXHIBIT_EWF_READER"  # "pyewf": no media read through the system's libewf


class EwfReader:
    """Reads an EnCase image through libewf; the handle is not thread-safe, so lock it."""

    def __init__(self, paths: Sequence[Path | RemotePath]) -> None:
        self._files: list[Any] = []
        self._lock = threading.Lock()
        self._name = str(paths[0])
        self._handle = pyewf.handle()
        self._native: NativeEwf | None = None
        self._native_used = False
        self._native_gave_up_at: int | None = None  # media offset of the first damage
        try:
            for path in paths:
                # "rb" only: libewf never gets a writable file object.
                self._files.append(path.open("rb"))
            self._handle.open_file_objects(self._files, "r")
            self.size = int(self._handle.get_media_size())
            # A truncated E01 opens fine and fails on the first chunk: find out now.
            first = self._handle.read_buffer_at_offset(min(self.size, 512), 0)
            self._native = _native_reader(paths, self._files[0], self.size, first)
            self._native_used = self._native is not None
        except IngestError:  # an object in a store that could not be read
            self.close()
            raise
        except (OSError, ValueError) as exc:
            self.close()
            raise UnsupportedImageError(f"cannot open EWF image {paths[0]}: {exc}") from exc

    def read_at(self, offset: int, size: int) -> bytes:
        if offset < 0 or size < 0:
            raise ValueError(f"negative offset/size: {offset}, {size}")
        size = max(0, min(size, self.size - offset))
        if size == 0:
            return b""
        native = self._native
        if native is not None:
            try:
                data = native.read_at(offset, size)
                if len(data) == size and not native.damaged():
                    return data
            except LibewfError:
                pass
            self._give_up_native(native, offset)  # pyewf reads this range and later ones
        with self._lock:
            try:
                return self._handle.read_buffer_at_offset(size, offset)
            except OSError as exc:
                for segment in self._files:  # an object in a store: its own, clearer error
                    failure = getattr(segment, "failure", None)
                    if failure is not None:
                        raise failure from exc
                raise IngestError(
                    f"EWF read error in {self._name} at media offset {offset}: {exc}"
                ) from exc

    def stored_hashes(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, name in _EWF_HASHES.items():
            try:
                value = self._handle.get_hash_value(name)
            except (OSError, KeyError):
                value = None
            if value:
                out[key] = str(value).lower()
        return out

    def metadata(self) -> dict[str, str]:
        try:
            values = self._handle.get_header_values() or {}
        except OSError:
            values = {}
        out = {str(k): str(v) for k, v in values.items() if v not in (None, "")}
        out["bytes_per_sector"] = str(self._handle.get_bytes_per_sector())
        out["media_size"] = str(self.size)
        return out

    def _give_up_native(self, native: NativeEwf, offset: int) -> None:
        with self._lock:
            if self._native is native:
                self._native = None
                self._native_gave_up_at = offset
        native.close()  # waits for a read in flight; a later one is refused, then pyewf

    @property
    def media_reader(self) -> str:
        """Which library read the media: ``libewf-system``, ``pyewf``, or the first, then
        pyewf from where it met damage (recorded with the acquisition hash)."""
        if not self._native_used:
            return "pyewf"
        if self._native_gave_up_at is None:
            return "libewf-system"
        return f"libewf-system, then pyewf from media offset {self._native_gave_up_at}"

    def close(self) -> None:
        if self._native is not None:
            self._native.close()
            self._native = None
        with contextlib.suppress(OSError):  # never opened: nothing to close
            self._handle.close()
        while self._files:
            self._files.pop().close()


def _native_reader(paths: Sequence[Path | RemotePath], opened: Any, size: int,
                   first: bytes) -> NativeEwf | None:
    """The system's libewf on the same segments, if it applies here and agrees with
    pyewf on the media size and the first sector; else None (pyewf reads). ``opened``:
    the first segment as pyewf holds it (read in place, its position left alone)."""
    if os.environ.get(READER_ENV) == "pyewf" or not all(isinstance(p, Path) for p in paths):
        return None
    if os.pread(opened.fileno(), len(SIGNATURES[0]), 0) != SIGNATURES[0]:  # Ex01, L01
        return None
    try:
        native = NativeEwf([Path(p) for p in paths])
    except LibewfError:
        return None
    try:
        if native.size == size and native.read_at(0, len(first)) == first:
            return native
    except LibewfError:
        pass
    native.close()
    return None
