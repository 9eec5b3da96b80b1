"""Objects in a store as evidence files: a path-like name and a read-only, cached, checked reader.

Reads are ranged GETs through fsspec. Two access patterns meet here (measured by
``benchmarks/scaling/run.py``, figures in the README): the walk reads metadata in small
scattered pieces (The Sleuth Kit asks for 64 KiB at a time), the analysis and the
acquisition hash read file contents front to back, in pieces from 64 KiB (TSK's own
cache line) to several MiB. So a read smaller than a block goes through an LRU cache of
whole blocks — one GET brings the neighbouring metadata the walk asks for next, and is
the read-ahead of a file read in small pieces — and a read of a block or more is
fetched exactly, bypassing the cache. The cache is one per process, shared by every open
object and keyed by URL and ETag, so an E01 of a hundred segments holds one cache, not a
hundred.

A read is all or nothing: a GET that fails (dropped connection, timeout, 5xx) or that
returns fewer bytes than asked is retried with bounded exponential backoff, then ends in
a :class:`RemoteReadError`; a shorter image is never handed on, so a hash is never taken
over the wrong bytes. An object replaced since it was registered (another ETag) is
refused when a worker opens it.
"""

from __future__ import annotations

import stat as stat_module
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from ingest.errors import IngestError, UnsupportedImageError
from ingest.remote import url_protocol
from ingest.streams import RandomAccessStream

# 4 MiB blocks: on the photos image the walk needs 6 GETs instead of 19 (1 MiB) or 158
# (64 KiB), the analysis 41 instead of 207 or 382, for 1.1-2.4x the bytes asked (README).
BLOCK_SIZE = 4 << 20
CACHE_BLOCKS = 16  # 64 MiB per process, shared by every open object (an E01 of a hundred
# segments must not hold a hundred caches)
RETRIES = 4
BACKOFF_S = 0.25
BACKOFF_MAX_S = 4.0


class RemoteError(IngestError):
    """An object in a store that cannot be found, reached or read as asked."""


class RemoteReadError(RemoteError):
    """A byte range that could not be read completely, even after retries."""


@dataclass
class FetchStats:
    """What a reader asked of the store: for the benchmark and the tests."""

    requests: int = 0
    bytes: int = 0
    retries: int = 0


def _credential_hint(protocol: str) -> str:
    if protocol in ("s3", "s3a"):
        return (" (check the credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE"
                " or ~/.aws/credentials, and AWS_ENDPOINT_URL for MinIO/Ceph)")
    return " (check the store's credentials)"


def _translate(exc: BaseException, url: str, doing: str) -> RemoteError:
    """A store's error as an examiner can act on it."""
    protocol = url_protocol(url) or "?"
    if isinstance(exc, FileNotFoundError):
        return RemoteError(f"{url}: no such object (while {doing})")
    if isinstance(exc, PermissionError) or "AccessDenied" in str(exc) \
            or "InvalidAccessKeyId" in str(exc) or "SignatureDoesNotMatch" in str(exc):
        return RemoteError(f"{url}: access denied while {doing}: {exc}"
                           f"{_credential_hint(protocol)}")
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        return RemoteError(f"{url}: no credentials for {protocol}://{_credential_hint(protocol)}")
    return RemoteError(f"{url}: {doing} failed: {type(exc).__name__}: {exc}")


class RemotePath:
    """An object named by URL, answering what detection asks of a ``pathlib.Path``.

    ``pin`` is the ETag the object had when registered: opening a replaced object fails.
    """

    def __init__(self, url: str, pin: str | None = None) -> None:
        protocol = url_protocol(url)
        if protocol is None:
            raise ValueError(f"not a URL: {url!r}")
        self.url = url.rstrip("/") if url.count("/") > 3 else url
        self.protocol = protocol
        self.pin = pin
        self._fs: Any = None
        self._path = ""
        self._info: dict[str, Any] | None = None

    # -- naming --------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.url.split("://", 1)[1].rsplit("/", 1)[-1]

    @property
    def parent(self) -> RemotePath:
        head, _, _ = self.url.rpartition("/")
        return RemotePath(head if "://" in head and not head.endswith(":/") else self.url)

    def __truediv__(self, name: str) -> RemotePath:
        return RemotePath(f"{self.url}/{name}")

    def resolve(self) -> RemotePath:
        return self

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"RemotePath({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    # -- the store -----------------------------------------------------------------

    @property
    def fs(self) -> Any:
        """The fsspec filesystem, configured only by the store's standard variables/files."""
        if self._fs is None:
            import fsspec.core

            try:
                self._fs, self._path = fsspec.core.url_to_fs(self.url)
            except (ImportError, ValueError) as exc:
                raise RemoteError(f"{self.url}: cannot use {self.protocol}:// ({exc}); install"
                                  " the fsspec package for it (s3fs, gcsfs, adlfs)") from exc
        return self._fs

    @property
    def key(self) -> str:
        """The object's path as the filesystem names it (``bucket/key``)."""
        _ = self.fs
        return self._path

    def info(self) -> dict[str, Any]:
        """Size, ETag and version id of the object (one HEAD, then remembered)."""
        if self._info is None:
            try:
                self.fs.invalidate_cache(self.key)
                raw = self.fs.info(self.key)
            except Exception as exc:
                raise _translate(exc, self.url, "looking up the object") from exc
            if raw.get("type", "file") != "file":
                raise UnsupportedImageError(f"{self.url} is a folder (prefix), not an object")
            etag = raw.get("ETag") or raw.get("etag")
            self._info = {
                "url": self.url, "size": int(raw.get("size") or 0),
                "etag": str(etag).strip('"') if etag else None,
                "version_id": raw.get("VersionId") or raw.get("version_id")
                or (str(raw["generation"]) if raw.get("generation") else None),
            }
            if self.pin is not None and self._info["etag"] != self.pin:
                raise RemoteError(
                    f"{self.url} changed since it was registered (ETag {self._info['etag']},"
                    f" registered {self.pin}): the store holds other bytes under that name")
        return self._info

    def stat(self) -> SimpleNamespace:
        size = self.info()["size"]
        return SimpleNamespace(st_size=size, st_mode=stat_module.S_IFREG | 0o444,
                               st_mtime_ns=0)

    def is_file(self) -> bool:
        try:
            self.info()
        except (RemoteError, UnsupportedImageError):
            return False
        return True

    def iterdir(self) -> Iterator[RemotePath]:
        """The objects beside this one (one LIST): split sets and segments are found so."""
        try:
            names = self.fs.ls(self.key, detail=False, refresh=True)
        except Exception as exc:
            raise _translate(exc, self.url, "listing the objects beside it") from exc
        for name in names:
            yield RemotePath(name if "://" in name else f"{self.protocol}://{name}")

    def open(self, mode: str = "rb") -> RemoteFile:
        if mode != "rb":
            raise ValueError(f"evidence in a store is opened 'rb' only, not {mode!r}")
        return RemoteFile(self)


_CACHE: OrderedDict[tuple[str, str | None, int, int], bytes] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget every cached block (benchmarks measure cold reads)."""
    with _CACHE_LOCK:
        _CACHE.clear()


class RemoteFile(RandomAccessStream):
    """A read-only, seekable file over one object, for libyal libraries and the raw reader."""

    def __init__(self, path: RemotePath, block_size: int = BLOCK_SIZE,
                 cache_blocks: int = CACHE_BLOCKS) -> None:
        self.size = path.info()["size"]
        super().__init__(self.size)
        self.path = path
        self.url = path.url
        self.block_size = block_size
        self.cache_blocks = cache_blocks
        self.stats = FetchStats()
        self.failure: RemoteError | None = None  # the last read that failed for good
        self._identity = (self.url, path.info()["etag"], block_size)

    # -- ranged reads --------------------------------------------------------------

    def read_at(self, offset: int, size: int) -> bytes:
        """Bytes at ``offset``; short only at the end of the object."""
        if offset < 0 or size < 0:
            raise ValueError(f"negative offset/size: {offset}, {size}")
        end = min(offset + size, self.size)
        if end <= offset:
            return b""
        if end - offset >= self.block_size:
            return self._fetch(offset, end)
        first, last = offset // self.block_size, (end - 1) // self.block_size
        data = b"".join(self._block(i) for i in range(first, last + 1))
        start = offset - first * self.block_size
        return data[start:start + end - offset]

    def _block(self, index: int) -> bytes:
        key = (*self._identity, index)
        with _CACHE_LOCK:
            block = _CACHE.get(key)
            if block is not None:
                _CACHE.move_to_end(key)
                return block
        start = index * self.block_size  # fetched outside the lock: other readers go on
        block = self._fetch(start, min(start + self.block_size, self.size))
        with _CACHE_LOCK:
            _CACHE[key] = block
            while len(_CACHE) > self.cache_blocks:
                _CACHE.popitem(last=False)
        return block

    def _fetch(self, start: int, end: int) -> bytes:
        """One ranged GET of exactly ``end - start`` bytes, retried; never fewer bytes."""
        want = end - start
        delay = BACKOFF_S
        problem = ""
        for attempt in range(RETRIES):
            if attempt:
                self.stats.retries += 1
                time.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
            self.stats.requests += 1
            try:
                data = self.path.fs.cat_file(self.path.key, start=start, end=end)
            except (FileNotFoundError, PermissionError) as exc:
                raise _translate(exc, self.url, f"reading bytes {start}-{end - 1}") from exc
            except Exception as exc:  # a dropped connection, a timeout, a 5xx: retried
                if "AccessDenied" in str(exc) or "InvalidAccessKeyId" in str(exc):
                    raise _translate(exc, self.url, f"reading bytes {start}-{end - 1}") from exc
                problem = f"{type(exc).__name__}: {exc}"
                continue
            self.stats.bytes += len(data)
            if len(data) == want:
                return data
            problem = f"short read: {len(data)} of {want} bytes"
        self.failure = RemoteReadError(
            f"{self.url}: bytes {start}-{end - 1} could not be read after {RETRIES} attempts"
            f" ({problem}); nothing from them was used — run the same command again to"
            " resume")
        raise self.failure

    # -- the file protocol (the rest is RandomAccessStream's) -------------------------

    def read(self, size: int = -1) -> bytes:
        """One ranged read for the whole request (a large read is one GET, not many)."""
        if size is None or size < 0:
            size = self.size - self._pos
        data = self.read_at(self._pos, size)
        self._pos += len(data)
        return data

    def get_offset(self) -> int:
        return self._pos


def ewf_segments(first: RemotePath) -> list[RemotePath]:
    """The EWF segment objects beside ``first`` (``.E01``, ``.E02`` … ``.EAA`` …), in order."""
    stem, dot, ext = first.name.rpartition(".")
    if not dot or len(ext) != 3:
        return [first]
    lead = ext[0]
    found: dict[int, RemotePath] = {}
    for sibling in first.parent.iterdir():
        s_stem, s_dot, s_ext = sibling.name.rpartition(".")
        if s_stem != stem or not s_dot:
            continue
        number = _ewf_number(s_ext, lead)
        if number is not None:
            found[number] = sibling
    numbers = sorted(found)
    if not numbers or numbers[0] != 1 or numbers != list(range(1, len(numbers) + 1)):
        missing = next((n for n in range(1, len(numbers) + 2) if n not in found), 1)
        raise UnsupportedImageError(f"EWF segments of {first.url} are not a complete set:"
                                    f" segment {missing} is missing")
    return [found[n] for n in numbers]


def _ewf_number(ext: str, lead: str) -> int | None:
    """libewf's segment numbering: E01…E99, then EAA…EZZ, FAA… (same case as the first)."""
    if len(ext) != 3 or ext[0].isupper() != lead.isupper():
        return None
    upper, lead = ext.upper(), lead.upper()
    if upper[0] == lead and upper[1:].isdigit():
        return int(upper[1:]) or None
    if upper.isalpha() and upper[0] >= lead:
        return 100 + (ord(upper[0]) - ord(lead)) * 676 + (ord(upper[1]) - 65) * 26 \
            + ord(upper[2]) - 65
    return None
