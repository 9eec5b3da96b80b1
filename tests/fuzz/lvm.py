"""An LVM2 volume group to fuzz: the sample image's label and metadata as regions.

``build_lvm_base(directory)`` unpacks ``sample_data/lvm.img.gz`` (a partition holding one
physical volume with three logical volumes, two of them in two segments, made by lvm2's
own tools: ``sample_data/lvm.sh``) and names its LVM structures — the label sector, the
metadata area header and the metadata text — and the first 4 KiB of every extent as
regions, so ``fuzz.vdisks.plan_vdisk_mutation`` flips, overwrites and zeroes them, or cuts
the image short.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from fuzz.images import Region
from fuzz.vdisks import VdiskBase

NAME = "lvm"
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "lvm.img.gz"
PV_START = 1 << 20  # partition 1 (lvm.lvs.txt); the first extent 1 MiB further on
EXTENT = 1 << 20  # lvm.sh: vgcreate -s 1m


def build_lvm_base(directory: Path) -> VdiskBase:
    index = directory / "lvm.json"
    image = directory / "lvm.img"
    if not index.exists():
        directory.mkdir(parents=True, exist_ok=True)
        data = gzip.decompress(SAMPLE.read_bytes())
        image.write_bytes(data)
        text = data.find(b"contents = \"Text Format Volume Group\"", PV_START)
        if text < 0:
            raise RuntimeError(f"{SAMPLE}: no LVM2 metadata text found")
        regions = [["lvm:label", PV_START + 512, 512], ["lvm:mda_header", PV_START + 4096, 512],
                   ["lvm:metadata", text - text % 512, 4096]]
        first = PV_START + (1 << 20)
        regions += [[f"lvm:extent{i}", first + i * EXTENT, 4096]
                    for i in range(16) if first + i * EXTENT < len(data)]
        image.chmod(0o444)
        index.write_text(json.dumps(regions))
    regions = tuple((image.name, Region(*r)) for r in json.loads(index.read_text()))
    return VdiskBase(NAME, image, (image,), regions)
