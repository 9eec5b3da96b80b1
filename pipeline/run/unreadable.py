"""When a triage examined nothing: say so first, plainly, and name what the input looks like.

An image that hashes fine but holds no volume or filesystem exhibit can read (a VMDK, a
QCOW2, an APFS container, an encrypted volume…) used to end as "0 filesystems walked" and
one error among the counts, exit 0: in a batch of a hundred images, easy to miss. The
conductor asks :func:`nothing_examined` after the walk (a resumed run asks again, from the
stored walk and the image's bytes, so it says the same), records the answer in the ledger
and the summary, and the CLI exits non-zero unless the examiner allowed it.
"""

from __future__ import annotations

from typing import Any

from ingest.image import EvidenceImage
from ingest.signatures import identify
from pipeline.case.database import CaseDatabase

_TABLE_NAMES = {"dos": "MBR", "gpt": "GPT", "mac": "Apple partition map",
                "bsd": "BSD disklabel", "sun": "Sun VTOC"}


def nothing_examined(db: CaseDatabase, image: EvidenceImage,
                     evidence_id: str) -> dict[str, Any] | None:
    """None when a filesystem was walked; else the kind of input and the plain statement.

    ``kind`` names what the whole image looks like; on a partitioned image whose volumes
    hold nothing readable, each volume's own look is listed too (e.g. a LUKS partition).
    """
    volumes = db.volumes(evidence_id)
    if any(v["status"] == "walked" for v in volumes):
        return None
    evidence = db.evidence(evidence_id)
    table = evidence["partition_table"] if evidence is not None else None
    looks: list[dict[str, Any]] = []
    if table is None:
        kind = identify(image.read_at, 0, image.size)
        said = f"the image looks like: {kind}"
    else:
        kind = f"{_TABLE_NAMES.get(table, table)} partition table"
        for v in volumes:
            if v["status"] != "no-filesystem":
                continue
            length = max(0, min(v["length"], image.size - v["offset"]))
            looks.append({"index": v["idx"], "offset": v["offset"],
                          "kind": identify(image.read_at, v["offset"], length)})
        inside = "; ".join(f"volume {x['index']} at byte {x['offset']:,} looks like: "
                           f"{x['kind']}" for x in looks) or "no allocated volume"
        said = f"the image holds an {kind}: {inside}" if kind.startswith(("MBR", "Apple"))\
            else f"the image holds a {kind}: {inside}"
    statement = f"Nothing examined: no volume or filesystem could be read; {said}."
    return {"kind": kind, "volumes": looks, "statement": statement}
