"""An NTFS volume with shadow copies to fuzz, its VSS structures named as regions.

``build_vss_base(directory)`` writes (``tests/vss_images.py``) an NTFS volume holding
pictures and text, and two stores: the older with a picture deleted since, the newer with
a text file in an earlier version. The regions are the VSS volume header, the catalog,
and each store's header, block list, block range list and bitmap, so
``fuzz.vdisks.plan_vdisk_mutation`` mutates them like any container's structures (or
truncates the image into the stores).
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import uuid
from pathlib import Path

import vss_images as vss

from fuzz.images import Region
from fuzz.vdisks import VdiskBase

NAME = "ntfs-vss"


def _picture(seed: int) -> bytes:
    from io import BytesIO

    from PIL import Image

    rng = random.Random(seed)
    img = Image.new("RGB", (64, 48), tuple(rng.randrange(256) for _ in range(3)))
    out = BytesIO()
    img.save(out, "JPEG", quality=80)
    return out.getvalue()


def build_vss_base(directory: Path) -> VdiskBase:
    """The shadowed volume, built once into ``directory`` (cached by an index)."""
    index = directory / "vss.json"
    image = directory / "shadowed.img"
    if index.exists():
        regions = tuple((image.name, Region(*r)) for r in json.loads(index.read_text()))
        return VdiskBase(NAME, image, (image,), regions)
    directory.mkdir(parents=True, exist_ok=True)
    total = vss.NTFS_BYTES + (2 << 20)
    base = vss.ntfs_volume(directory / "base.img", {
        "a.jpg": _picture(1), "b.jpg": _picture(2), "notes.txt": b"first\n" * 900}, total)
    old = directory / "old.img"
    shutil.copy(base, old)
    vss.add_files(old, {"deleted.jpg": _picture(3)})
    live = image
    shutil.copy(base, live)
    vss.add_files(live, {"notes.txt": b"second\n" * 900})
    vss.write_stores(live, [vss.StoreSpec(old.read_bytes(), uuid.uuid4(), 1_600_000_000),
                            vss.StoreSpec(base.read_bytes(), uuid.uuid4(), 1_600_003_600)],
                     vss.NTFS_BYTES)
    base.unlink()
    old.unlink()
    regions = [Region("vss:header", vss.HEADER_AT, 128),
               Region("vss:catalog", vss.NTFS_BYTES, 512)]
    data = live.read_bytes()
    catalog = data[vss.NTFS_BYTES : vss.NTFS_BYTES + vss.BLOCK]
    for at in range(128, vss.BLOCK, 128):
        kind, list_at, _ident, header_at, ranges_at, bitmap_at = struct.unpack_from(
            "<QQ16sQQQ", catalog, at)
        if kind != 3:
            continue
        regions += [Region("vss:store_header", header_at, 256),
                    Region("vss:block_list", list_at, 512),
                    Region("vss:block_ranges", ranges_at, 128),
                    Region("vss:bitmap", bitmap_at, 256)]
    live.chmod(0o444)
    index.write_text(json.dumps([[r.name, r.start, r.length] for r in regions]))
    return VdiskBase(NAME, live, (live,), tuple((live.name, r) for r in regions))
