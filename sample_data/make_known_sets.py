"""The sample's perceptual hash sets: the known images that are NOT on the sample image.

Run by ``generate.sh`` after ``make_photos.py``. The known originals (``SRC/known``) are
hashed with exhibit's own perceptual analyzer (pHash, dHash, PDQ), and their digests
computed, and both sets below are written. Only altered copies of them are on the image
(``Saved/`` on the data partition), so a triage can find them only by near matching.

Usage: make_known_sets.py SRC OUTDIR
  OUTDIR/known_media.csv        CSV set: md5,sha1,sha256,phash,dhash,pdq,category,
                                category_label,series,description
  OUTDIR/known_media_vics.json  the same media as a Project VIC VICS 2.0 hash set
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository: exhibit's analyzer hashes the set
sys.path.insert(0, str(HERE))

from make_photos import KNOWN, UNRELATED_KNOWN  # noqa: E402

from analyzers.perceptual import PerceptualHashAnalyzer  # noqa: E402

LABELS = {1: "Sample category 1 (known series)", 2: "Sample category 2",
          3: "Sample category 3"}


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    src, out = Path(argv[1]), Path(argv[2])
    analyzer = PerceptualHashAnalyzer()
    rows = []
    for number, known in enumerate((*KNOWN, UNRELATED_KNOWN), start=1):
        data = (src / "known" / known.name).read_bytes()
        found = analyzer.analyze(data, None, {})  # type: ignore[arg-type]
        rows.append({
            "media_id": 1000 + number, "name": known.name, "size": len(data),
            "md5": hashlib.md5(data).hexdigest(), "sha1": hashlib.sha1(data).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest(), "phash": found["phash"],
            "dhash": found["dhash"], "pdq": found["pdq"], "category": known.category,
            "series": known.series,
        })
    with (out / "known_media.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["md5", "sha1", "sha256", "phash", "dhash", "pdq", "category",
                         "category_label", "series", "media_id", "description"])
        for r in rows:
            writer.writerow([r["md5"], r["sha1"], r["sha256"], r["phash"], r["dhash"], r["pdq"],
                             r["category"], LABELS[r["category"]], r["series"], r["media_id"],
                             f"known sample image {r['name']} (not on the sample image)"])
    media = [{
        "MediaID": r["media_id"], "Category": r["category"], "MD5": r["md5"].upper(),
        "SHA1": r["sha1"].upper(), "SHA256": r["sha256"].upper(), "MediaSize": r["size"],
        "IsPrecategorized": True, "Series": r["series"],
        "AlternativeHashes": [{"HashName": "PDQ", "HashValue": r["pdq"]},
                              {"HashName": "pHash", "HashValue": r["phash"]},
                              {"HashName": "dHash", "HashValue": r["dhash"]}],
        "MediaFiles": [{"FileName": r["name"], "FilePath": f"\\\\known\\\\{r['name']}"}],
    } for r in rows]
    doc = {"@odata.context": "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/"
                             "CUSTOM/$metadata#Media", "value": media}
    (out / "known_media_vics.json").write_text(json.dumps(doc, indent=1) + "\n",
                                               encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
