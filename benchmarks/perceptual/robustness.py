"""Robustness of pHash, dHash and PDQ to the edits offenders make, on real photographs.

Photos: the photographs bundled with scikit-image (``pip install -r requirements.txt``):
astronaut, camera(man), coffee, chelsea (a cat), rocket, motorcycle (left view of the
stereo pair), Hubble deep field, immunohistochemistry, retina, coins, moon, page (a
scanned page), clock, text, cell, brick, grass, gravel — 18 distinct pictures; the
drawings and synthetic patterns it also bundles are left out.

For each photo the original is hashed from a lossless PNG, then each copy below is made,
encoded (JPEG q=90 unless the transformation is the encoding), and hashed by exhibit's
own analyzer (``PerceptualHashAnalyzer``: the same decode, draft and PDQ resize as a
triage). Reported per transformation and algorithm: **recall** = share of photos whose
copy is within the threshold of its original (PDQ: the closest of the copy's 8 dihedral
variants, and only when the copy's PDQ quality ≥ 50, as matching does). **False-match
rate** = share of pairs of *different* photos (originals and all copies) within the
threshold. A threshold sweep shows where the defaults sit.

Usage: ``python benchmarks/perceptual/robustness.py [--markdown]``.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from analyzers.perceptual import PerceptualHashAnalyzer  # noqa: E402
from pipeline.matching.known import Thresholds  # noqa: E402

PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "stereo_motorcycle",
          "hubble_deep_field", "immunohistochemistry", "retina", "coins", "moon", "page",
          "clock", "text", "cell", "brick", "grass", "gravel")


def load_photos() -> dict[str, Image.Image]:
    from skimage import data

    photos = {}
    for name in PHOTOS:
        array = getattr(data, name)()
        if name == "stereo_motorcycle":
            array = array[0]
            name = "motorcycle"
        photos[name] = Image.fromarray(np.asarray(array)).convert("RGB")
    return photos


def crop(fraction: float) -> Callable[[Image.Image], Image.Image]:
    def apply(img: Image.Image) -> Image.Image:
        dx, dy = round(img.width * fraction), round(img.height * fraction)
        return img.crop((dx, dy, img.width - dx, img.height - dy))
    return apply


def caption(img: Image.Image) -> Image.Image:
    out = img.copy()
    draw = ImageDraw.Draw(out)
    band = max(12, img.height // 8)
    draw.rectangle((0, img.height - band, img.width, img.height), fill=(0, 0, 0))
    draw.text((img.width // 20, img.height - band + band // 4), "shared 2024 - do not repost",
              fill=(255, 255, 255))
    return out


def resize(factor: float) -> Callable[[Image.Image], Image.Image]:
    return lambda img: img.resize((max(1, round(img.width * factor)),
                                   max(1, round(img.height * factor))),
                                  Image.Resampling.LANCZOS)


# name -> (pixel transformation, encoding)
TRANSFORMS: dict[str, tuple[Callable[[Image.Image], Image.Image], tuple[str, dict]]] = {
    "resize 50%": (resize(0.5), ("JPEG", {"quality": 90})),
    "resize 25%": (resize(0.25), ("JPEG", {"quality": 90})),
    "JPEG q=50": (lambda i: i, ("JPEG", {"quality": 50})),
    "PNG": (lambda i: i, ("PNG", {})),
    "crop 5%": (crop(0.05), ("JPEG", {"quality": 90})),
    "crop 10%": (crop(0.10), ("JPEG", {"quality": 90})),
    "mirror": (ImageOps.mirror, ("JPEG", {"quality": 90})),
    "rotate 90°": (lambda i: i.rotate(90, expand=True), ("JPEG", {"quality": 90})),
    "brightness +30%": (lambda i: ImageEnhance.Brightness(i).enhance(1.3),
                        ("JPEG", {"quality": 90})),
    "contrast -30%": (lambda i: ImageEnhance.Contrast(i).enhance(0.7),
                      ("JPEG", {"quality": 90})),
    "caption overlay": (caption, ("JPEG", {"quality": 90})),
}


def encode(img: Image.Image, fmt: str, params: dict) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def ham(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def distance(algo: str, known: dict, copy: dict, min_quality: int) -> int | None:
    """Distance as matching computes it; None where matching would not try (PDQ quality)."""
    if algo != "pdq":
        return ham(known[algo], copy[algo])
    if copy["pdq_quality"] < min_quality:
        return None
    return min(ham(known["pdq"], v) for v in copy["pdq_dihedral"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the raw distances here")
    args = parser.parse_args()
    analyzer = PerceptualHashAnalyzer()
    defaults = Thresholds()
    photos = load_photos()
    hashes: dict[str, dict[str, dict]] = {}
    for name, img in photos.items():
        hashes[name] = {"original": analyzer.analyze(encode(img, "PNG", {}), None, {})}
        for tname, (transform, (fmt, params)) in TRANSFORMS.items():
            copy = transform(img)
            hashes[name][tname] = analyzer.analyze(encode(copy, fmt, params), None, {})
    algos = ("phash", "dhash", "pdq")
    limits = {a: getattr(defaults, a) for a in algos}
    print(f"{len(photos)} photos: {', '.join(photos)}")
    print(f"default thresholds: pHash ≤ {limits['phash']}, dHash ≤ {limits['dhash']},"
          f" PDQ ≤ {limits['pdq']} (quality ≥ {defaults.pdq_quality})\n")
    print("| transformation | pHash recall | dHash recall | PDQ recall | median distance"
          " pHash / dHash / PDQ |")
    print("|---|---|---|---|---|")
    raw: dict[str, object] = {}
    for tname in TRANSFORMS:
        cells, medians = [], []
        for algo in algos:
            ds = [distance(algo, hashes[p]["original"], hashes[p][tname], defaults.pdq_quality)
                  for p in photos]
            found = sum(1 for d in ds if d is not None and d <= limits[algo])
            cells.append(f"{found}/{len(ds)} ({100 * found / len(ds):.0f}%)")
            valid = [d for d in ds if d is not None]
            medians.append(str(int(np.median(valid))) if valid else "-")
            raw[f"{tname}/{algo}"] = ds
        print(f"| {tname} | " + " | ".join(cells) + f" | {' / '.join(medians)} |")
    # false matches: every pair of different photos, every version of each
    versions = ["original", *TRANSFORMS]
    names = list(photos)
    print("\n| algorithm | threshold | false-match rate among different photos |"
          " closest different pair |")
    print("|---|---|---|---|")
    closest: dict[str, int] = {}
    pair_ds: dict[str, list[int]] = {a: [] for a in algos}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for va in versions:
                for vb in ("original",):
                    for algo in algos:
                        d = distance(algo, hashes[b][vb], hashes[a][va], defaults.pdq_quality)
                        if d is not None:
                            pair_ds[algo].append(d)
    for algo in algos:
        ds = np.array(pair_ds[algo])
        closest[algo] = int(ds.min())
        rate = float((ds <= limits[algo]).mean())
        print(f"| {algo} | ≤ {limits[algo]} | {rate:.4%} ({int((ds <= limits[algo]).sum())}"
              f" of {len(ds)} pairs) | {closest[algo]} |")
    print("\nthreshold sweep (recall over all transformations except mirror/rotate for pHash/"
          "dHash; false-match rate over different-photo pairs):\n")
    print("| algorithm | threshold | recall | false-match rate |")
    print("|---|---|---|---|")
    for algo, sweep in (("phash", range(4, 17, 2)), ("dhash", range(4, 17, 2)),
                        ("pdq", range(15, 64, 8))):
        for t in sweep:
            hits = total = 0
            for tname in TRANSFORMS:
                if algo != "pdq" and tname in ("mirror", "rotate 90°"):
                    continue
                for p in photos:
                    d = distance(algo, hashes[p]["original"], hashes[p][tname],
                                 defaults.pdq_quality)
                    total += 1
                    hits += d is not None and d <= t
            fmr = float((np.array(pair_ds[algo]) <= t).mean())
            print(f"| {algo} | {t} | {hits / total:.1%} | {fmr:.3%} |")
    quality = [hashes[p][v]["pdq_quality"] for p in photos for v in versions]
    print(f"\nPDQ quality: min {min(quality)}, median {int(np.median(quality))};"
          f" below 50: {sum(q < 50 for q in quality)} of {len(quality)} images")
    if args.json:
        args.json.write_text(json.dumps({"distances": raw, "pairs": pair_ds}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
