"""EnCase E01 media data through the system's libewf (``libewf.so.2``), by ctypes.

pyewf, as published on PyPI, is built with libewf's own deflate decoder (its build
configures ``--disable-shared-libs``, which leaves zlib out): it reads ~24 MB/s of media
on the development machine, where libewf built against zlib (Debian's ``libewf2``, the
library under ``ewfverify``) reads ~210 MB/s with MD5 computed as well. E01 is the
commonest evidence container, and every byte of it is read twice: by the acquisition
hash and by the workers (issue 18).

Only media reads come through here. pyewf stays the authority on the image's structure
— segments, media size, stored hashes, header values — and the reader checks that both
libraries agree on the size and the first sector before using this one (``ewf``).
Only EWF version 1 (``EVF``) segments as local files: Ex01 (``EVF2``), logical L01 and
objects in a store are read by pyewf, as before.

pyewf is also the authority on damage. This libewf (20140813) hands back zeros for a
chunk it cannot read — even one in a missing segment, which pyewf refuses to read —
and counts it as a checksum error; the reader gives up this library at the first such
error and reads that range and every later one through pyewf (``damaged``).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path

SONAME = "libewf.so.2"  # Debian/Ubuntu package libewf2
_ERROR_TEXT = 512


@cache
def _library() -> ctypes.CDLL | None:
    """The system's libewf, or None where it is not installed."""
    try:
        lib = ctypes.CDLL(SONAME)
    except OSError:
        return None
    handle_p, error_pp = ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)
    signatures = {
        "libewf_get_version": (ctypes.c_char_p, []),
        "libewf_get_access_flags_read": (ctypes.c_int, []),
        "libewf_handle_initialize": (ctypes.c_int, [ctypes.POINTER(ctypes.c_void_p), error_pp]),
        "libewf_handle_open": (ctypes.c_int, [handle_p, ctypes.POINTER(ctypes.c_char_p),
                                              ctypes.c_int, ctypes.c_int, error_pp]),
        "libewf_handle_get_media_size": (ctypes.c_int, [handle_p,
                                                        ctypes.POINTER(ctypes.c_uint64),
                                                        error_pp]),
        "libewf_handle_read_random": (ctypes.c_ssize_t, [handle_p, ctypes.c_void_p,
                                                         ctypes.c_size_t, ctypes.c_int64,
                                                         error_pp]),
        "libewf_handle_get_number_of_checksum_errors": (
            ctypes.c_int, [handle_p, ctypes.POINTER(ctypes.c_uint32), error_pp]),
        "libewf_handle_close": (ctypes.c_int, [handle_p, error_pp]),
        "libewf_handle_free": (ctypes.c_int, [ctypes.POINTER(ctypes.c_void_p), error_pp]),
        "libewf_error_sprint": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p,
                                               ctypes.c_size_t]),
        "libewf_error_free": (None, [error_pp]),
    }
    try:
        for name, (restype, argtypes) in signatures.items():
            function = getattr(lib, name)
            function.restype, function.argtypes = restype, argtypes
    except AttributeError:  # another libewf than the one this binding was written for
        return None
    return lib


def version() -> str | None:
    """The system libewf's version (e.g. ``20140813``), or None where it is absent."""
    lib = _library()
    return None if lib is None else lib.libewf_get_version().decode("ascii", "replace")


class LibewfError(OSError):
    """libewf refused to open or read the image; its own message."""


class NativeEwf:
    """One read-only libewf handle on an E01's segments; the handle is not thread-safe,
    so reads take a lock (ctypes releases the GIL while libewf inflates)."""

    def __init__(self, segments: Sequence[Path]) -> None:
        lib = _library()
        if lib is None:
            raise LibewfError(f"{SONAME} is not installed")
        self._lib = lib
        self._lock = threading.Lock()
        self._handle = ctypes.c_void_p()
        self._buffer = ctypes.create_string_buffer(0)
        self._call("libewf_handle_initialize", ctypes.byref(self._handle))
        names = (ctypes.c_char_p * len(segments))(*(bytes(p) for p in segments))
        try:
            self._call("libewf_handle_open", self._handle, names, len(segments),
                       lib.libewf_get_access_flags_read())
            size = ctypes.c_uint64()
            self._call("libewf_handle_get_media_size", self._handle, ctypes.byref(size))
        except LibewfError:
            self._free()
            raise
        self.size = int(size.value)

    def _call(self, name: str, *args: object, lowest: int = 1) -> int:
        """libewf's ``name``; its result, below ``lowest`` (libewf's failure) an error."""
        error = ctypes.c_void_p()
        result = getattr(self._lib, name)(*args, ctypes.byref(error))
        if result < lowest:
            raise LibewfError(f"{name}: {self._message(error)}")
        return int(result)

    def _message(self, error: ctypes.c_void_p) -> str:
        if not error:
            return "failed"
        text = ctypes.create_string_buffer(_ERROR_TEXT)
        self._lib.libewf_error_sprint(error, text, _ERROR_TEXT)
        self._lib.libewf_error_free(ctypes.byref(error))
        return " ".join(text.value.decode("utf-8", "replace").split()) or "failed"

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes of media from ``offset`` (fewer only at the end)."""
        with self._lock:
            if not self._handle:
                raise LibewfError("the handle is closed")
            if len(self._buffer) < size:
                self._buffer = ctypes.create_string_buffer(size)
            done = self._call("libewf_handle_read_random", self._handle, self._buffer, size,
                              offset, lowest=0)  # a byte count: 0 is no failure
            return ctypes.string_at(self._buffer, done)

    def damaged(self) -> bool:
        """Whether any chunk read so far could not be read as stored (libewf then gives
        zeros): a checksum error, a chunk that does not inflate, a missing segment."""
        with self._lock:
            if not self._handle:
                return True
            count = ctypes.c_uint32()
            self._call("libewf_handle_get_number_of_checksum_errors", self._handle,
                       ctypes.byref(count))
            return count.value > 0

    def close(self) -> None:
        with self._lock:
            if self._handle:
                error = ctypes.c_void_p()
                self._lib.libewf_handle_close(self._handle, ctypes.byref(error))
                if error:
                    self._lib.libewf_error_free(ctypes.byref(error))
                self._free()

    def _free(self) -> None:
        error = ctypes.c_void_p()
        self._lib.libewf_handle_free(ctypes.byref(self._handle), ctypes.byref(error))
        if error:
            self._lib.libewf_error_free(ctypes.byref(error))
