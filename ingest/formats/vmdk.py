"""VMware VMDK through libvmdk: monolithic or split, sparse, flat or stream-optimised, deltas.

The descriptor (a text file, or embedded in a monolithic sparse file) names the extent
files; each is found beside it and handed to libvmdk as a file object opened ``"rb"``.
A delta disk names its parent in ``parentFileNameHint`` and records the parent's content
id (CID), which must match the parent found.
"""

from __future__ import annotations

from pathlib import Path

import pyvmdk

from ingest.errors import UnsupportedImageError
from ingest.formats.layer import Layer, Locate, open_file, opened

FAMILY = "libvmdk"
SPARSE_MAGIC = (b"KDMV", b"COWD")  # VMware 4+ hosted sparse, ESX sparse
DESCRIPTOR_MAGIC = b"# disk descriptorfile"
NO_PARENT_CID = 0xFFFFFFFF

_DISK_TYPES = {getattr(pyvmdk.disk_types, n): n for n in dir(pyvmdk.disk_types)
               if not n.startswith("_")}
_EXTENT_TYPES = {getattr(pyvmdk.extent_types, n): n for n in dir(pyvmdk.extent_types)
                 if not n.startswith("_")}


def sniff(head: bytes, tail: bytes, size: int) -> str | None:
    if head[:4] in SPARSE_MAGIC:
        return "vmdk"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").lower().startswith(DESCRIPTOR_MAGIC):
        return "vmdk"
    return None


def open_layer(fmt: str, path: Path, locate: Locate) -> Layer:
    handle = pyvmdk.handle()
    with opened(fmt, FAMILY, handle, path, "VMDK", hint=lambda: _extent_hint(path)) as layer:
        extents = []
        for i in range(handle.get_number_of_extents()):
            extent = handle.get_extent_descriptor(i)
            name = extent.get_filename()
            if not name:
                raise UnsupportedImageError(
                    f"{path}: extent {i} ({_EXTENT_TYPES.get(extent.get_type(), '?')}) names"
                    " no file; exhibit reads only file-backed extents")
            extent_path = locate(name, f"extent {i}")
            extents.append(extent_path)
            if extent_path not in layer.paths:
                layer.paths.append(extent_path)
        layer.files.extend(open_file(p) for p in extents)
        try:
            handle.open_extent_data_files_as_file_objects(layer.files[1:])
        except OSError as exc:
            raise UnsupportedImageError(f"cannot open the extents of VMDK {path}: {exc}") from exc
        layer.parent_name = handle.get_parent_filename() or None
        own = handle.get_content_identifier()
        parent = handle.get_parent_content_identifier()
        layer.own_id = f"CID {own:08x}" if own is not None else None
        if parent is not None and parent != NO_PARENT_CID:
            layer.parent_id = f"CID {parent:08x}"
        layer.info = {
            "disk_type": _DISK_TYPES.get(handle.get_disk_type(), str(handle.get_disk_type())),
            "extents": str(len(extents)),
            "media_size": str(handle.get_media_size()),
        }
        if layer.parent_name:
            layer.info["parent_name"] = layer.parent_name
    return layer


def _extent_hint(path: Path) -> str:
    """What to say when a sparse extent is given instead of its descriptor."""
    with path.open("rb") as fh:
        if fh.read(4) in SPARSE_MAGIC:
            return " (an extent of a split VMDK? give its descriptor file)"
    return ""
