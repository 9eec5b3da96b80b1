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
from ingest.location import FileEntry

EXPAND = "expand"  # the pseudo-analyzer name (task analyzers, culprits, error records)
VERSION = "1"
SPOOL_MEMORY = 16 << 20  # a member up to this size stays in memory
CHUNK = 1 << 20


class Tap:
    """Pass a file's chunks through unchanged, keeping its head for the readers to sniff."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._head = bytearray()

    @property
    def head(self) -> bytes:
        return bytes(self._head)

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if len(self._head) < SNIFF_BYTES:
                self._head += chunk[: SNIFF_BYTES - len(self._head)]
            yield chunk


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
    head: bytes
    size: int
    open: Callable[[], IO[bytes]]  # seekable and read-only
    errors: list[dict[str, Any]]  # the node's record's errors (expansion problems go here)
    sha256: str | None = None
    depth: int = 0
    ancestors: tuple[str, ...] = ()  # SHA-256 of the containers above (a zip quine stops)
    children: list[dict[str, Any]] = field(default_factory=list)


def expand(ctx: Context, node: Node) -> list[dict[str, Any]]:
    """Records of everything derived from ``node``, depth first, in container order."""
    reader = container_reader(node.head)
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
        tap = Tap(_chunks(spool))
        with ctx.watch():
            findings, found_errors = analyze_chunks(tap, entry, ctx.analyzers)
        record["record"]["findings"] = findings
        errors.extend(dict(e, stage="analyze") for e in found_errors)
        below = Node(entry=entry, key=key, head=tap.head, size=copied,
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
