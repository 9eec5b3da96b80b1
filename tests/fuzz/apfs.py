"""An APFS container to fuzz: ``mkapfs``'s structures as regions for the mutations.

``build_apfs_base(directory)`` makes a container with one named volume (``mkapfs -L``)
and names every 4 KiB block that is not all zeros (container superblock and its
checkpoint copies, checkpoint maps, object map, volume superblock, B-tree nodes, space
manager) as a region, so ``fuzz.vdisks.plan_vdisk_mutation`` flips, overwrites and zeroes
them, or cuts the container short.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from fuzz.images import Region
from fuzz.vdisks import VdiskBase

NAME = "apfs"
SIZE = 128 << 20  # mkapfs's smallest container
BLOCK = 4096


def build_apfs_base(directory: Path) -> VdiskBase:
    index = directory / "apfs.json"
    image = directory / "container.img"
    if not index.exists():
        directory.mkdir(parents=True, exist_ok=True)
        with image.open("wb") as fh:
            fh.truncate(SIZE)
        tool = shutil.which("mkapfs")
        if tool is None:
            raise RuntimeError("mkapfs is not installed (apt-get install apfsprogs)")
        subprocess.run([tool, "-L", "Fuzzed HD", str(image)], check=True, capture_output=True)
        data = image.read_bytes()
        regions = [[f"apfs:block{at // BLOCK}", at, BLOCK]
                   for at in range(0, len(data), BLOCK) if data[at : at + BLOCK].strip(b"\0")]
        image.chmod(0o444)
        index.write_text(json.dumps(regions))
    regions = tuple((image.name, Region(*r)) for r in json.loads(index.read_text()))
    return VdiskBase(NAME, image, (image,), regions)
