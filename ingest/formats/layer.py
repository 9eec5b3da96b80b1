"""One opened layer of a virtual disk: the part each format module hands to ``virtual``.

Format modules (``vmdk``, ``vhdi``, ``qcow``) open their container with ``open_file`` —
``"rb"``, so no library ever holds a writable handle — and describe what it names: its
extents (found through ``Locate``), its parent and the identities that tie them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ingest.errors import UnsupportedImageError

Locate = Callable[[str, str], Path]  # (name as the container states it, what it is) -> file


@dataclass
class Layer:
    """One opened container of a chain: its libyal handle and the files it holds open."""

    format: str
    family: str  # the libyal library; a parent must be of the same one
    handle: Any
    paths: list[Path]  # this layer's container files, its own file first
    files: list[BinaryIO] = field(default_factory=list)
    parent_name: str | None = None
    parent_id: str | None = None  # what the layer records of its parent's identity
    own_id: str | None = None
    info: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # never fully opened: nothing to close
            self.handle.close()
        while self.files:
            self.files.pop().close()


@contextlib.contextmanager
def opened(fmt: str, family: str, handle: Any, path: Path, what: str,
           hint: Callable[[], str] = str) -> Iterator[Layer]:
    """A layer whose own file is opened read-only and handed to its libyal ``handle``.

    Inside the block the format module reads what the container names; whatever fails
    there, the layer (handle and files) is closed before the error goes on.
    """
    layer = Layer(fmt, family, handle, [path])
    try:
        layer.files.append(open_file(path))
        try:
            handle.open_file_object(layer.files[0], "r")
        except OSError as exc:
            raise UnsupportedImageError(f"cannot open {what} {path}{hint()}: {exc}") from exc
        yield layer
    except BaseException:
        layer.close()
        raise


def open_file(path: Path) -> BinaryIO:
    """A container file opened for reading only: the one way files reach a library."""
    try:
        return path.open("rb")
    except OSError as exc:
        raise UnsupportedImageError(f"cannot open container file {path}: {exc}") from exc
