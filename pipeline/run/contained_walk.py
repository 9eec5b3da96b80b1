"""Each filesystem's walk in a child process with a time limit.

A hostile image can stall The Sleuth Kit inside one call (ext2/3 with a huge stated size
costs time linear in that size when its directory is listed) or crash it, and the walk
runs in native code no Python timer can interrupt. So the driver asks a child process:
which filesystems a volume holds, then the entries of each, streamed in chunks. The
child sends what it holds before TSK lists each directory, so what was walked before a
stall has reached the driver. No message for ``timeout`` seconds is a stall: the child
is killed, the entries so far are kept, the stall is reported with the directory being
listed, and the next request starts a fresh child (one per evidence otherwise: starting
one costs ~0.3 s, the imports of ``ingest``).

The child is ``python -m pipeline.run.contained_walk FD``, talking over a socket pair:
unlike ``multiprocessing``'s spawn it never re-imports the caller's ``__main__``, so
embedding ``Triage`` in a script needs no ``if __name__ == "__main__"`` guard. It dies
with the driver (``PR_SET_PDEATHSIG``) even when stuck inside TSK.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import fields
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NoReturn

from ingest.errors import IngestError
from ingest.image import EvidenceImage, ImageSpec
from ingest.layers import apfs
from ingest.layers.snapshots import SnapshotScan, find_snapshots
from ingest.location import FileEntry, Snapshot
from ingest.volumes import Volume
from ingest.walk import FilesystemWalker, WalkStats, open_filesystems, volume_source

DEFAULT_WALK_TIMEOUT = 300.0  # seconds without any progress from The Sleuth Kit
_CHUNK = 512  # entries per message
_COUNTERS = tuple(f.name for f in fields(WalkStats) if f.name != "notes")
_ROOT = str(Path(__file__).resolve().parents[2])  # where ``pipeline`` and ``ingest`` live


class WalkContained(IngestError):
    """The walk stalled or crashed in its child process and was stopped there."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code  # "WalkStalled" | "WalkCrashed": the error record's name


class WalkProcess:
    """A child process that walks one image's filesystems for the driver."""

    def __init__(self, spec: ImageSpec, evidence_id: str,
                 timeout: float = DEFAULT_WALK_TIMEOUT) -> None:
        if timeout <= 0:
            raise ValueError(f"walk timeout must be positive, got {timeout}")
        self.spec = spec
        self.evidence_id = evidence_id
        self.timeout = timeout
        self.stats = WalkStats()  # of the last walk, as far as it got
        self.described: dict[str, dict[str, Any]] = {}  # fs type -> what it is (APFS names)
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def __enter__(self) -> WalkProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def close(self) -> None:
        """Stop the child (politely, then by force)."""
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(("stop",))
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(2)
        self._kill()

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def _connection(self) -> Connection:
        if self._conn is None:
            mine, theirs = socket.socketpair()
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (_ROOT, env.get("PYTHONPATH")) if p)
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "pipeline.run.contained_walk",
                     str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL)
            finally:
                theirs.close()
            self._conn = Connection(mine.detach())
            self._conn.send((self.spec, self.evidence_id))
        return self._conn

    def _send(self, request: tuple[Any, ...], doing: str) -> None:
        try:
            self._connection().send(request)
        except OSError:  # the child died since its last answer
            self._crashed(doing)

    def _crashed(self, doing: str) -> NoReturn:
        code = None
        with contextlib.suppress(subprocess.TimeoutExpired, AttributeError):
            code = self._proc.wait(5)  # type: ignore[union-attr]
        self._kill()
        raise WalkContained(f"the walk process ended (exit code {code}) while {doing}",
                            "WalkCrashed")

    def _receive(self, doing: str) -> tuple[Any, ...]:
        conn = self._connection()
        if not conn.poll(self.timeout):
            self._kill()
            raise WalkContained(
                f"no progress for {self.timeout:g} s inside The Sleuth Kit while {doing}: "
                f"stopped (walk process killed)", "WalkStalled")
        try:
            return conn.recv()  # type: ignore[no-any-return]
        except (EOFError, OSError):
            self._crashed(doing)

    def detect(self, volume: Volume) -> list[str]:
        """The filesystem types on the volume; IngestError when there is none."""
        doing = f"opening the filesystem at byte offset {volume.start}"
        self._send(("detect", volume), doing)
        _, types, error, described = self._receive(doing)
        if error:
            raise IngestError(error)
        self.described.update(described)
        return list(types)

    def snapshots(self, volume: Volume) -> SnapshotScan:
        """The volume's shadow copy stores (libvshadow runs in the child too)."""
        doing = f"reading the shadow copy catalog of the volume at byte offset {volume.start}"
        self._send(("snapshots", volume), doing)
        _, scan, error = self._receive(doing)
        if error:
            raise IngestError(error)
        return scan  # type: ignore[no-any-return]

    def walk(self, volume: Volume, fs_type: str,
             snapshot: Snapshot | None = None) -> Iterator[FileEntry]:
        """The filesystem's entries (of one shadow copy of it, given ``snapshot``);
        ``stats`` fills as they come. A stall or crash raises ``WalkContained`` after
        the entries that arrived before it."""
        self.stats = WalkStats()
        where = "" if snapshot is None else f" (shadow copy {snapshot.index})"
        self._send(("walk", volume, fs_type, snapshot), f"starting the walk of the {fs_type}"
                   f" filesystem at byte offset {volume.start}{where}")
        listing = "/"
        done = False
        try:
            while True:
                message = self._receive(
                    f"listing {listing} of the {fs_type} filesystem at byte offset "
                    f"{volume.start}{where} (it and the directories not yet listed were not"
                    f" walked)")
                if message[0] == "end":
                    done = True
                    if message[1]:
                        raise IngestError(message[1])
                    return
                _, entries, counters, notes, now_listing = message
                for name, value in zip(_COUNTERS, counters, strict=True):
                    setattr(self.stats, name, value)
                self.stats.notes.extend(notes)
                listing = now_listing or listing
                yield from entries
        finally:
            if not done:  # abandoned or stopped mid-stream: the child's state is unknown
                self._kill()


def _serve(conn: Connection) -> None:
    """The child: answer ``detect`` and ``walk`` requests until ``stop``."""
    spec, evidence_id = conn.recv()
    image: EvidenceImage | None = None
    opened: dict[int, dict[str, Any]] = {}  # volume offset -> fs type -> FS_Info
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request[0] == "stop":
            return
        try:
            if image is None:
                image = spec.open()
            if request[0] == "detect":
                volume = request[1]
                opened[volume.start], described = _detect(image, volume)
                conn.send(("detected", list(opened[volume.start]), None, described))
            elif request[0] == "snapshots":
                volume = request[1]
                conn.send(("snapshots", find_snapshots(image, volume.start, volume.length),
                           None))
            else:
                _, volume, fs_type, snapshot = request
                fs = None if snapshot else opened.get(volume.start, {}).get(fs_type)
                _stream(image, volume, evidence_id, fs_type, fs, conn, snapshot)
        except IngestError as exc:
            conn.send({"detect": ("detected", [], str(exc), {}),
                       "snapshots": ("snapshots", None, str(exc))}.get(
                           request[0], ("end", str(exc))))


def _detect(image: EvidenceImage, volume: Volume
            ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The filesystems on a volume (TSK's, or each volume of an APFS container) and what
    the ledger should say of them."""
    try:
        return {name: fs for fs, name in open_filesystems(*volume_source(image, volume))}, {}
    except IngestError:
        if volume.extents or not apfs.is_container(image, volume.start):
            raise
    container = apfs.ApfsContainer(image, volume.start, volume.length)
    infos = container.volumes()
    if not infos:
        raise IngestError(f"the APFS container at byte offset {volume.start} has no volume")
    return ({apfs.fs_name(v.index): container for v in infos},
            {apfs.fs_name(v.index): v.to_dict() for v in infos})


def _stream(image: EvidenceImage, volume: Volume, evidence_id: str, fs_type: str,
            fs: Any, conn: Connection, snapshot: Snapshot | None = None) -> None:
    chunk: list[FileEntry] = []
    sent_notes = 0
    walker: FilesystemWalker | apfs.ApfsWalker | None = None

    def flush(listing: str | None = None) -> None:
        nonlocal chunk, sent_notes
        stats = walker.stats if walker is not None else WalkStats()
        notes = stats.notes[sent_notes:]
        sent_notes += len(notes)
        conn.send(("chunk", chunk, [getattr(stats, n) for n in _COUNTERS], notes, listing))
        chunk = []

    failure = None
    try:
        index = apfs.volume_index(fs_type)
        if index is not None:
            container = fs if fs is not None else apfs.ApfsContainer(image, volume.start,
                                                                     volume.length)
            walker = apfs.ApfsWalker(container, volume, index, evidence_id, on_directory=flush)
        else:
            walker = FilesystemWalker(image, volume, evidence_id, fs=fs, fs_type=fs_type,
                                      on_directory=flush, snapshot=snapshot)
        for entry in walker:
            chunk.append(entry)
            if len(chunk) >= _CHUNK:
                flush()
    except IngestError as exc:
        failure = str(exc)
    flush()
    if isinstance(walker, FilesystemWalker) and walker.source is not image:
        walker.source.close()  # a shadow copy store opened for this walk
    conn.send(("end", failure))


def _main(fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    with contextlib.suppress(OSError, AttributeError):  # Linux: die with the driver
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    _serve(Connection(fd))  # a driver gone before that closed the socket: recv ends it


if __name__ == "__main__":
    _main(int(sys.argv[1]))
