"""Where a byte range lives on the seized media, and what the walk found there.

Every finding, database row, Dask task key and ledger entry names its evidence by one
``EvidenceLocation``: image (its SHA-256) → volume (index, byte offset) → filesystem
type → inode (meta address) and path → data stream → each derivation. Nothing here
imports pytsk3, so analyzers, the pipeline and the ledger can share these types without
touching evidence formats.

Evidence derived from a file's content (an archive member, a picture embedded in a
document or appended to data, a carved range, a video frame) is not a new kind of key:
its location is the parent's plus one :class:`Derivation` per step, the way dfVFS chains
path specifications, so any derived byte range can be re-read from the evidence alone.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

FileKind = Literal["file", "directory", "symlink", "other"]

_ESCAPE = re.compile(r"\\(\\|x[0-9a-fA-F]{2})")


def decode_name(raw: bytes) -> str:
    r"""Decode a name from the media without losing a byte.

    Valid UTF-8 passes through unchanged. Each byte that is not part of valid UTF-8
    becomes ``\xNN``; a literal backslash becomes ``\\`` so the escape is reversible
    (``encode_name(decode_name(b)) == b`` for every ``b``). Backslashes cannot occur in
    FAT/NTFS names, so Windows media reads as it always did.
    """
    try:  # the common case, ~5x faster (issue 18: the walk's cost per entry)
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="surrogateescape")
    else:
        if "\\" not in text:
            return text
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        else:
            out.append(ch)
    return "".join(out)


def encode_name(text: str) -> bytes:
    """Invert :func:`decode_name`: the exact bytes the media held."""
    parts: list[bytes] = []
    pos = 0
    for match in _ESCAPE.finditer(text):
        parts.append(text[pos : match.start()].encode("utf-8"))
        token = match.group(1)
        parts.append(b"\\" if token == "\\" else bytes([int(token[1:], 16)]))
        pos = match.end()
    parts.append(text[pos:].encode("utf-8"))
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class Derivation:
    """One step from a stream's content to evidence inside it, and how it was taken."""

    method: str  # e.g. "zip", "gzip", "embedded-jpeg", "carve", "frame"
    version: str  # of the method's implementation: a re-extraction must use the same
    inner: str | None = None  # member path inside a container
    offset: int | None = None  # byte range in the parent stream, when it is one
    length: int | None = None
    # Image byte runs ((offset, length), …) when the range is not one contiguous piece of
    # its parent: a carved picture read across allocated blocks. None: ``offset``/``length``.
    runs: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        if self.runs is not None:  # JSON gives lists: keep the record hashable and equal
            object.__setattr__(self, "runs", tuple((int(o), int(n)) for o, n in self.runs))

    def key(self) -> str:
        inner = f":{self.inner}" if self.inner is not None else ""
        span = f"@{self.offset}+{self.length}" if self.offset is not None else ""
        return f"!{self.method}{inner}{span}"

    def to_dict(self) -> dict[str, Any]:
        # ``runs`` only where there are some: older records serialise (and hash) as before.
        return {f.name: ([list(r) for r in value] if f.name == "runs" else value)
                for f in fields(self)
                if (value := getattr(self, f.name)) is not None or f.name != "runs"}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A volume shadow copy the entry was read through (the live volume has none).

    ``index`` is the store's position in the volume's VSS catalog (libvshadow's order,
    what ``vshadowinfo`` numbers from 1 as "Store: index+1"); ``id`` the shadow copy's
    GUID, so a re-read can prove it reads the same store; ``created`` its creation time.
    """

    index: int
    id: str
    created: str | None = None  # ISO 8601 UTC

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "created": self.created}


@dataclass(frozen=True, slots=True)
class EvidenceLocation:
    """A serializable address of one data stream on one piece of evidence."""

    evidence_id: str  # the case's name for the image (ingest.acquisition.evidence_id_for)
    volume_index: int  # index in the volume system; -1 when the image has none
    volume_offset: int  # byte offset of the volume in the image
    fs_type: str  # e.g. "fat32", "ext4", "ntfs"
    inode: int  # meta address as The Sleuth Kit numbers it
    path: str  # "/" + path from the filesystem root, decoded with decode_name
    stream: str | None = None  # NTFS alternate data stream name; None = default
    derivation: tuple[Derivation, ...] = ()  # steps into the stream's content, outermost first
    snapshot: Snapshot | None = None  # the shadow copy of the volume read; None = live

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Pickled by value, not by dataclass state: the walk sends every entry from its
        # child process, and unpickling by __init__ takes half the time.
        return EvidenceLocation, (self.evidence_id, self.volume_index, self.volume_offset,
                                  self.fs_type, self.inode, self.path, self.stream,
                                  self.derivation, self.snapshot)

    def key(self) -> str:
        """A compact, stable string form (used in task keys and log lines)."""
        stream = f":{self.stream}" if self.stream else ""
        derived = "".join(step.key() for step in self.derivation)
        vss = f"~vss{self.snapshot.index}" if self.snapshot is not None else ""
        return (
            f"{self.evidence_id[:16]}/v{self.volume_index}@{self.volume_offset}{vss}"
            f"/{self.fs_type}/i{self.inode}{self.path}{stream}{derived}"
        )

    def derive(self, step: Derivation) -> EvidenceLocation:
        """The location of evidence taken from this one's content by ``step``."""
        return replace(self, derivation=(*self.derivation, step))

    def to_dict(self) -> dict[str, Any]:
        # Flat fields: a dict comprehension, not ``asdict``'s deep copy (per file). A
        # location with no derivation serialises without the key, as before derivations.
        data = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("derivation", "snapshot")}
        if self.derivation:
            data["derivation"] = [step.to_dict() for step in self.derivation]
        if self.snapshot is not None:  # likewise: a live location reads as it always did
            data["snapshot"] = self.snapshot.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvidenceLocation:
        steps = tuple(Derivation(**step) for step in data.get("derivation", ()))
        snap = data.get("snapshot")
        return cls(**{**data, "derivation": steps,
                      "snapshot": None if snap is None else Snapshot(**snap)})


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One name the filesystem walk found (allocated, deleted or orphan)."""

    location: EvidenceLocation
    name: str  # last path component, decoded with decode_name
    size: int
    kind: FileKind
    allocated: bool  # False for deleted names and orphans
    mtime: str | None = None  # ISO 8601 UTC ("2024-05-01T10:00:00Z"); None when unset
    atime: str | None = None
    ctime: str | None = None  # metadata change time (ext, NTFS $SI change)
    crtime: str | None = None  # creation time
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    meta_allocated: bool | None = None  # the inode's own allocation state, when known
    notes: tuple[str, ...] = field(default=())  # walk remarks (e.g. "no metadata")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return FileEntry, (self.location, self.name, self.size, self.kind, self.allocated,
                           self.mtime, self.atime, self.ctime, self.crtime, self.mode,
                           self.uid, self.gid, self.meta_allocated, self.notes)

    @property
    def extension(self) -> str:
        """Lower-case extension without the dot; '' when the name has none."""
        base = self.name.rsplit("/", 1)[-1]
        if "." not in base.strip("."):
            return ""
        return base.rsplit(".", 1)[-1].lower()

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["location"] = self.location.to_dict()
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileEntry:
        data = dict(data)
        data["location"] = EvidenceLocation.from_dict(data["location"])
        data["notes"] = tuple(data.get("notes", ()))
        return cls(**data)


def iso_utc(seconds: int, nanos: int = 0) -> str | None:
    """A filesystem timestamp as ISO 8601 UTC with its nanoseconds, ``None`` for unset or
    unrepresentable (every walker writes times this one way, so exports compare)."""
    if not seconds and not nanos:
        return None
    try:
        stamp = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
    if stamp.year >= 1000:  # formatted by hand: strftime was most of the walk's time
        text = (f"{stamp.year}-{stamp.month:02d}-{stamp.day:02d}T{stamp.hour:02d}:"
                f"{stamp.minute:02d}:{stamp.second:02d}")
    else:  # what strftime's %Y makes of years before 1000 is the platform's own
        text = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += f".{nanos:09d}"
    return text + "Z"
