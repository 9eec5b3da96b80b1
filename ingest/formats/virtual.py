"""Virtual disks (VMDK, VHD, VHDX, QCOW, DMG): detection, the chain of container files, reading.

A virtual disk is more than one file more often than not: a VMDK descriptor names its
extents, a differencing VHD/VHDX names its parent, a QCOW image its backing file. Every
such file is found *beside* the one that names it (or among the further paths the
examiner gave), opened ``"rb"`` and handed to the libyal library as a file object, so no
library ever holds a writable handle on evidence. The chain is resolved the same way in
the driver and in every Dask worker: ``ImageSpec.paths`` lists every container file,
top layer first, and re-resolving from them must give exactly them.

Absolute parent paths recorded in the evidence (``C:\\VMs\\base.vhd``) name the suspect's
machine, not the examiner's, so only their last component is looked for beside the
child; a relative one is also tried relative to the child's folder, as the hypervisor does.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Sequence
from pathlib import Path, PureWindowsPath
from typing import Any

from ingest.errors import IngestError, UnsupportedImageError
from ingest.formats import modi, qcow, vhdi, vmdk
from ingest.formats.layer import Layer
from ingest.remote.objects import RemotePath

FORMATS: tuple[str, ...] = ("vmdk", "vhd", "vhdx", "qcow", "dmg", "sparseimage")
MEDIA_HASH_NOTE = (
    "acquisition hashes are over the virtual disk's media bytes (the disk the guest saw,"
    " parents and backing files applied), not over the container files; each container"
    " file's own SHA-256 is recorded beside them"
)
MAX_CHAIN = 64  # parents deep; a loop or a runaway chain ends with an error, not a hang


class MissingContainerFileError(IngestError):
    """A file the virtual disk needs (extent, parent, backing file) is not there."""


def _modules() -> dict[str, Any]:
    return {"vmdk": vmdk, "vhd": vhdi, "vhdx": vhdi, "qcow": qcow, "dmg": modi,
            "sparseimage": modi}


def sniff(path: Path) -> str | None:
    """The virtual-disk format of ``path`` by its content, or None."""
    try:
        with path.open("rb") as fh:
            head = fh.read(1024)
            size = fh.seek(0, 2)
            tail = b""
            if size >= 1024:
                fh.seek(size - 512)
                tail = fh.read(512)
    except OSError as exc:
        raise UnsupportedImageError(f"cannot read image file {path}: {exc}") from exc
    for module in dict.fromkeys(_modules().values()):
        fmt = module.sniff(head, tail, size)
        if fmt is not None:
            return fmt
    return None


def _real(path: Path | RemotePath) -> str:
    """What a file is, for comparing names: its real path, or an object's URL."""
    return path.url if isinstance(path, RemotePath) else os.path.realpath(path)


class _Finder:
    """Finds the files a layer names: among the paths the examiner gave, else beside it."""

    def __init__(self, first: Path, extra: Sequence[Path]) -> None:
        self.first = first
        self.extra = list(extra)
        self.used: set[int] = set()

    def _given(self, candidates: list[Path], base: str) -> Path | None:
        """A given path that is the very file a candidate names (candidates in order), else
        the first of that name."""
        for candidate in candidates:
            wanted = _real(candidate)
            for i, path in enumerate(self.extra):
                if _real(path) == wanted:
                    self.used.add(i)
                    return path
        for i, path in enumerate(self.extra):
            if i not in self.used and path.name == base:
                self.used.add(i)
                return path
        return None

    def locate(self, name: str, beside: Path, what: str) -> Path:
        stated = name.replace("\\", "/")
        base = stated.rsplit("/", 1)[-1]
        if not base:
            raise UnsupportedImageError(f"{beside}: the {what} has an empty name")
        tried: list[Path] = []
        if not (stated.startswith("/") or PureWindowsPath(name).drive) and stated != base:
            tried.append(beside.parent / stated if isinstance(beside, RemotePath)
                         else Path(os.path.normpath(beside.parent / stated)))
        tried.append(beside.parent / base)
        given = self._given(tried, base)
        if given is not None:
            return given
        for candidate in tried:
            if candidate.is_file():
                return candidate
        raise MissingContainerFileError(
            f"{beside}: its {what} {name!r} is missing (looked for "
            f"{', '.join(str(p) for p in tried)}); put it beside the image or give its path"
            f" after the image's: exhibit triage {self.first} PATH")

    def unused(self) -> list[Path]:
        return [p for i, p in enumerate(self.extra) if i not in self.used]


def open_chain(fmt: str, first: Path, extra: Sequence[Path] = ()) -> list[Layer]:
    """Open ``first`` and every extent and parent it needs, parents joined to children."""
    modules = _modules()
    finder = _Finder(first, extra)
    layers: list[Layer] = []
    try:
        path, layer_fmt = first, fmt
        while True:
            layer = modules[layer_fmt].open_layer(
                layer_fmt, path, lambda name, what, p=path: finder.locate(name, p, what))
            layers.append(layer)
            if layer.parent_name is None:
                break
            what = "backing file" if layer_fmt == "qcow" else "parent"
            parent = finder.locate(layer.parent_name, path, what)
            if any(parent.resolve() == other.resolve() for lay in layers for other in lay.paths):
                raise UnsupportedImageError(f"{path}: its {what} {parent} is already in the "
                                            "chain (a loop)")
            if len(layers) >= MAX_CHAIN:
                raise UnsupportedImageError(f"{first}: more than {MAX_CHAIN} parents")
            parent_fmt = sniff(parent)
            if parent_fmt is None or layer.family != modules[parent_fmt].FAMILY:
                raise UnsupportedImageError(
                    f"{path}: its {what} {parent} is {parent_fmt or 'not a virtual disk'};"
                    f" a {layer_fmt} image can only be read over a parent the same library"
                    " reads")
            path, layer_fmt = parent, parent_fmt
        _join(layers)
        unused = finder.unused()
        if unused:
            raise UnsupportedImageError(
                f"{first} does not use {', '.join(str(p) for p in unused)} (given after it;"
                " only extents, parents and backing files of the image may follow it)")
    except BaseException:
        for layer in layers:
            layer.close()
        raise
    return layers


def _join(layers: list[Layer]) -> None:
    """Check each parent is the one its child was made from, then join them bottom-up."""
    for child, parent in itertools.pairwise(layers):
        if child.parent_id and parent.own_id and child.parent_id != parent.own_id:
            raise UnsupportedImageError(
                f"{parent.paths[0]} is not the parent {child.paths[0]} was made from: the child"
                f" records parent identifier {child.parent_id}, the file has {parent.own_id}")
    for child, parent in reversed(list(itertools.pairwise(layers))):
        try:
            child.handle.set_parent(parent.handle)
        except OSError as exc:
            raise UnsupportedImageError(
                f"cannot join {child.paths[0]} to its parent {parent.paths[0]}: {exc}") from exc


def container_files(layers: list[Layer]) -> list[Path]:
    """Every container file of the chain, top layer first, each once."""
    out: list[Path] = []
    for layer in layers:
        for path in layer.paths:
            if path not in out:
                out.append(path)
    return out


def resolve(fmt: str, first: Path, extra: Sequence[Path] = ()) -> list[Path]:
    """The container files of the virtual disk at ``first`` (opened, checked, closed)."""
    layers = open_chain(fmt, first, extra)
    try:
        return container_files(layers)
    finally:
        for layer in layers:
            layer.close()


class VirtualDiskReader:
    """The media bytes of a virtual disk through libyal; handles are not thread-safe: lock."""

    def __init__(self, fmt: str, paths: Sequence[Path | RemotePath]) -> None:
        paths = [p if isinstance(p, RemotePath) else Path(p) for p in paths]
        self.format = fmt
        self._lock = threading.Lock()
        self._layers = open_chain(fmt, paths[0], paths[1:])
        try:
            found = container_files(self._layers)
            if found != paths:
                raise IngestError(f"{paths[0]}: the container files are now {found}, not the "
                                  f"{paths} the image was registered with")
            top = self._layers[0].handle
            self.size = int(top.get_media_size())
            # A truncated or damaged container may open fine and fail on the first read.
            if self.size > 0:
                self.read_at(0, min(self.size, 512))
        except BaseException:
            self.close()
            raise

    def read_at(self, offset: int, size: int) -> bytes:
        if offset < 0 or size < 0:
            raise ValueError(f"negative offset/size: {offset}, {size}")
        size = max(0, min(size, self.size - offset))
        if size == 0:
            return b""
        with self._lock:
            try:
                data = self._layers[0].handle.read_buffer_at_offset(size, offset)
            except (OSError, ValueError) as exc:
                raise IngestError(f"{self.format} read error in {self._layers[0].paths[0]} at"
                                  f" media offset {offset}: {exc}") from exc
        if len(data) != size:  # libqcow, for one, returns what a truncated file still has
            raise IngestError(f"{self.format} image {self._layers[0].paths[0]} gave {len(data)}"
                              f" of {size} bytes at media offset {offset}: a container file is"
                              " truncated or damaged")
        return data

    def stored_hashes(self) -> dict[str, str]:
        return {}  # none of these containers stores an acquisition hash

    def metadata(self) -> dict[str, str]:
        out: dict[str, str] = {"media_size": str(self.size),
                               "hashed_over": "virtual disk media bytes",
                               "chain": " <- ".join(lay.paths[0].name for lay in self._layers)}
        for i, layer in enumerate(self._layers):
            prefix = "" if i == 0 else f"parent{i}_"
            out[f"{prefix}format"] = layer.format
            for key, value in layer.info.items():
                out[f"{prefix}{key}"] = value
        return out

    def close(self) -> None:
        for layer in getattr(self, "_layers", []):
            layer.close()
        self._layers = []
