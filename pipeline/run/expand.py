"""Derived evidence on the worker: open what hides inside a file, and analyse that too.

After a file's own analysis, its first bytes are offered to the container readers
(``ingest.derive``). The members of a recognised container are copied out one at a
time — into memory, or a temporary file in the case's scratch folder past
:data:`SPOOL_MEMORY` — analysed by every analyzer like a file, and offered to the readers
in turn, to the depth the limits allow. Each member's record travels back inside its
planned file's record (``children``), so the batch stays one unit: the driver stores
the file and everything derived from it in one transaction, under one Merkle root.

Every limit hit, unreadable member and broken container becomes an error record on the
container or the member; nothing is dropped without a record. Expansion is a
pseudo-analyzer (:data:`EXPAND`) in the task's analyzer list, so a native crash while
expanding is found and isolated by the runner's probing like any analyzer's.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from analyzers.base import Analyzer
from analyzers.run import analyze_chunks
from ingest.derive import (
    RATIO_FLOOR,
    SNIFF_BYTES,
    Child,
    ContainerReader,
    LimitExceeded,
    Limits,
    container_reader,
)
from ingest.derive.pictures import OVERLAP, EmbeddedPictureScanner, find_signatures
from ingest.location import FileEntry
from pipeline.run import EXPAND, EXPAND_VERSION

VERSION = EXPAND_VERSION  # EXPAND: the pseudo-analyzer name (task analyzers, culprits, errors)
SPOOL_MEMORY = 16 << 20  # a member up to this size stays in memory
CHUNK = 1 << 20
# How pictures end, for the "is there data after it?" check of a stream that is one.
_TERMINATORS = {"jpeg": b"\xff\xd9", "png": b"IEND\xaeB`\x82", "gif": b";"}
_JPEG_JOIN = b"\xff\xd9\xff\xd8\xff"


class Tap:
    """Pass a file's chunks through unchanged, noting what the expansion needs to know.

    It keeps the head (readers sniff it) and the last bytes, and looks for pictures
    inside the bytes as they pass (``ingest.derive.pictures``), so nothing is read twice:
    chunks of plain ASCII cannot hold a picture's header and are only carried over for
    the boundary; a stream that is itself a picture is not searched inline (its data
    would cost as much as hashing it again) but checked at the end for data after it.
    """

    def __init__(self, chunks: Iterator[bytes], scan_bytes: int = 0) -> None:
        self._chunks = chunks
        self._head = bytearray()
        self.last = b""
        self.scanner = EmbeddedPictureScanner() if scan_bytes > 0 else None
        self._scan_bytes = scan_bytes
        self.candidates: list[tuple[int, str]] = []
        self.picture: str | None = None  # the kind, when the stream starts as a picture
        self.joined = False  # a JPEG end followed at once by a JPEG start (copy /b a + b)

    @property
    def head(self) -> bytes:
        return bytes(self._head)

    def __iter__(self) -> Iterator[bytes]:
        offset = 0
        for chunk in self._chunks:
            if len(self._head) < SNIFF_BYTES:
                self._head += chunk[: SNIFF_BYTES - len(self._head)]
            if self.scanner is not None and offset < self._scan_bytes:
                self._scan(chunk, offset)
            self.last = (self.last + chunk[-16:])[-16:]
            offset += len(chunk)
            yield chunk

    def _scan(self, chunk: bytes, offset: int) -> None:
        scanner = self.scanner
        if scanner is None:
            return
        if offset == 0:
            start = find_signatures(chunk[:32])
            self.picture = start[0][1] if start and start[0][0] == 0 else None
        if self.picture is not None:
            self.joined = self.joined or _JPEG_JOIN in self.last + chunk
        elif chunk.isascii():
            tail = chunk[-OVERLAP:]
            self.candidates.extend(scanner.candidates(tail, offset + len(chunk) - len(tail)))
        else:
            self.candidates.extend(scanner.candidates(chunk, offset))

    def needs_picture_scan(self) -> bool:
        """Whether pictures may hide in this stream (data after a picture, or candidates)."""
        if self.scanner is None:
            return False
        if self.picture is None:
            return bool(self.candidates) or self.scanner.stopped_at is not None
        ends = _TERMINATORS.get(self.picture)
        return self.joined or (ends is not None and not self.last.rstrip(b"\0").endswith(ends))


@dataclass
class Context:
    """One batch's expansion: what it may still copy out, and how to analyse a member."""

    limits: Limits
    analyzers: list[Analyzer]
    versions: dict[str, str]
    watch: Callable[[], Any]  # a context manager: the per-file watchdog for one member
    scratch: str | None = None  # where members larger than SPOOL_MEMORY are spooled
    copied: int = 0  # bytes copied out in this batch so far


@dataclass
class Node:
    """A stream that may be a container: a planned file or a member already copied out."""

    entry: FileEntry
    key: str
    tap: Tap
    size: int
    open: Callable[[], IO[bytes]]  # seekable and read-only
    errors: list[dict[str, Any]]  # the node's record's errors (expansion problems go here)
    sha256: str | None = None
    depth: int = 0
    ancestors: tuple[str, ...] = ()  # SHA-256 of the containers above (a zip quine stops)
    children: list[dict[str, Any]] = field(default_factory=list)


def expand(ctx: Context, node: Node) -> list[dict[str, Any]]:
    """Records of everything derived from ``node``, depth first, in container order.

    A container's members, else the pictures found inside the stream's bytes.
    """
    reader: ContainerReader | None = container_reader(node.tap.head)
    scanner = node.tap.scanner
    if reader is None and scanner is not None and node.tap.needs_picture_scan():
        reader = _PictureReader(scanner, node.tap)
    if reader is None:
        return []
    out: list[dict[str, Any]] = []
    if node.depth >= ctx.limits.depth:
        node.errors.append(_limit(reader, "depth", f"not expanded: {node.depth} derivation"
                                  f" steps deep, the limit is {ctx.limits.depth}"))
        return out
    if node.sha256 is not None and node.sha256 in node.ancestors:
        node.errors.append(_error(reader, "RecursiveContainer", "not expanded: the same"
                                  " content as a container it is inside (a zip quine)"))
        return out
    started = time.monotonic()
    copied_here = 0
    seen: dict[str, int] = {}
    try:
        with node.open() as stream:
            for count, child in enumerate(reader.children(stream, node.size,
                                                          node.entry.name), start=1):
                if count > ctx.limits.members:
                    raise LimitExceeded("members", f"expansion stopped after"
                                        f" {ctx.limits.members} members (the limit)")
                if time.monotonic() - started > ctx.limits.seconds:
                    raise LimitExceeded("seconds", f"expansion stopped after"
                                        f" {ctx.limits.seconds:g} s (the limit)")
                key = node.key + child.step.key()
                seen[key] = seen.get(key, 0) + 1
                if seen[key] > 1:  # two members of the same name: keys stay distinct
                    key = f"{key}#{seen[key] - 1}"
                copied_here += _member(ctx, node, reader, child, key, copied_here, out)
    except LimitExceeded as exc:
        node.errors.append(_limit(reader, exc.limit, str(exc)))
    except Exception as exc:  # a damaged container: what was read before is kept
        node.errors.append(_error(reader, type(exc).__name__, str(exc) or type(exc).__name__))
    return out


def expand_member(ctx: Context, node: Node, reader: ContainerReader, child: Child, key: str,
                  copied_here: int, out: list[dict[str, Any]]) -> int:
    """:func:`_member` for a child its caller found itself (a carved picture)."""
    return _member(ctx, node, reader, child, key, copied_here, out)


def _member(ctx: Context, node: Node, reader: ContainerReader, child: Child, key: str,
            copied_here: int, out: list[dict[str, Any]]) -> int:
    """Copy out, analyse and expand one member; returns the bytes copied out."""
    entry = FileEntry(location=node.entry.location.derive(child.step), name=child.name,
                      size=child.size or 0, kind="directory" if child.kind == "directory"
                      else "file", allocated=node.entry.allocated, mtime=child.mtime,
                      notes=child.notes)
    record = {"key": key, "parent_key": node.key, "entry": None,
              "record": {"entry": key, "location": entry.location.to_dict(),
                         "analyzers": ctx.versions, "findings": {}, "errors": []}}
    out.append(record)
    errors: list[dict[str, Any]] = record["record"]["errors"]
    if child.kind == "directory":
        record["entry"] = entry.to_dict()
        return 0
    if child.open is None:
        reason = "encrypted: not readable without the key" if "encrypted" in child.notes \
            else "the container gives no way to read this member"
        errors.append(_skip(reader, reason))
        record["entry"] = entry.to_dict()
        return 0
    with ctx.watch():
        try:
            spool, copied, digest = _copy_out(ctx, child, copied_here)
        except LimitExceeded as exc:
            errors.append(_skip(reader, f"not extracted: {exc}"))
            record["entry"] = entry.to_dict()
            raise
        except Exception as exc:
            errors.append(_error(reader, type(exc).__name__, f"cannot read the member: {exc}",
                                 stage="read"))
            record["entry"] = entry.to_dict()
            return 0
    try:
        entry = replace(entry, size=copied)
        record["entry"] = entry.to_dict()
        tap = Tap(_chunks(spool), ctx.limits.scan_bytes)
        with ctx.watch():
            findings, found_errors = analyze_chunks(tap, entry, ctx.analyzers,
                                                    opener=lambda: _reopen(spool))
        record["record"]["findings"] = findings
        errors.extend(dict(e, stage="analyze") for e in found_errors)
        below = Node(entry=entry, key=key, tap=tap, size=copied,
                     open=lambda: _reopen(spool), errors=errors, sha256=digest,
                     depth=node.depth + 1,
                     ancestors=(*node.ancestors, *([node.sha256] if node.sha256 else [])))
        out.extend(expand(ctx, below))
    finally:
        spool.close()
    return copied


def _copy_out(ctx: Context, child: Child, copied_here: int) -> tuple[IO[bytes], int, str]:
    """The member's bytes in a spool file, checked against every byte limit as they come."""
    limits = ctx.limits
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - the caller closes it
        max_size=SPOOL_MEMORY, dir=_scratch(ctx.scratch), prefix="member-")
    digest = hashlib.sha256()
    copied = 0
    try:
        if child.open is None:
            raise ValueError("a member without an opener cannot be copied out")
        with child.open() as source:
            while True:
                data = source.read(CHUNK)
                if not data:
                    break
                copied += len(data)
                if copied > limits.member_bytes:
                    raise LimitExceeded("member_bytes", f"member larger than"
                                        f" {limits.member_bytes} bytes (the limit)")
                if copied_here + copied > limits.container_bytes:
                    raise LimitExceeded("container_bytes", f"members of this container"
                                        f" exceed {limits.container_bytes} bytes (the limit)")
                if ctx.copied + copied > limits.case_bytes:
                    raise LimitExceeded("case_bytes", "the budget of bytes copied out of"
                                        " containers in this case is spent")
                if (child.packed_size is not None and copied > RATIO_FLOOR
                        and copied > limits.ratio * max(child.packed_size, 1)):
                    raise LimitExceeded("ratio", f"more than {limits.ratio:g} bytes out per"
                                        f" byte in ({child.packed_size} packed): a"
                                        " decompression bomb")
                spool.write(data)
                digest.update(data)
    except BaseException:
        spool.close()
        raise
    finally:
        ctx.copied += copied
    return spool, copied, digest.hexdigest()


def _chunks(spool: IO[bytes]) -> Iterator[bytes]:
    spool.seek(0)
    while data := spool.read(CHUNK):
        yield data


class _PictureReader:
    """The embedded-picture scan as a container reader: its members are the pictures."""

    method = "embedded"
    version = VERSION

    def __init__(self, scanner: EmbeddedPictureScanner, tap: Tap) -> None:
        self._scanner = scanner
        self._candidates = None if tap.picture is not None else tap.candidates

    def sniff(self, head: bytes) -> bool:
        return True

    def children(self, stream: IO[bytes], size: int, name: str) -> Iterator[Child]:
        return self._scanner.children(stream, size, name, self._candidates)  # type: ignore[arg-type]


class _Borrowed:
    """The spool as a stream a reader may use and 'close' without closing the spool."""

    def __init__(self, spool: IO[bytes]) -> None:
        self._spool = spool
        spool.seek(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spool, name)

    def __enter__(self) -> _Borrowed:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None


def _reopen(spool: IO[bytes]) -> IO[bytes]:
    return _Borrowed(spool)  # type: ignore[return-value]


def _scratch(folder: str | None) -> str | None:
    if folder and Path(folder).is_dir():
        return folder
    return None  # a remote worker without the case folder: its own temporary folder


def _error(reader: ContainerReader, error: str, message: str,
           stage: str = "expand") -> dict[str, Any]:
    return {"stage": stage, "analyzer": EXPAND, "version": VERSION,
            "method": f"{reader.method} {reader.version}", "error": error,
            "message": message, "traceback": None}


def _limit(reader: ContainerReader, limit: str, message: str) -> dict[str, Any]:
    return dict(_error(reader, "LimitExceeded", message), limit=limit)


def _skip(reader: ContainerReader, message: str) -> dict[str, Any]:
    return dict(_error(reader, "Skipped", message), kind="skipped")
