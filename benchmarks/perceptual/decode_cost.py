"""Per-image cost of decode + every perceptual hash, with and without reduced-scale JPEG decode.

For 1, 3 and 12 MP JPEGs (a bundled scikit-image photograph upscaled, q=90), timed with
exhibit's own code path (``analyzers.perceptual.decode`` + pHash, dHash, PDQ with its 8
dihedral variants):

- **draft**: ``decode(data, 512)`` — libjpeg decodes at the smallest 1/2, 1/4, 1/8 scale
  that keeps ≥ 512 px for PDQ (what a triage does);
- **full**: the same without ``Image.draft`` (a full-resolution decode, as a naive tool
  would do).

Also the split: decode alone, each hash alone (on the drafted image). Median of N runs.

Usage: ``python benchmarks/perceptual/decode_cost.py [--runs 7]``.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from analyzers import perceptual  # noqa: E402

SIZES = {"1 MP": (1152, 864), "3 MP": (2048, 1536), "12 MP": (4000, 3000)}


def photo(size: tuple[int, int]) -> bytes:
    from skimage import data

    img = Image.fromarray(np.asarray(data.coffee())).resize(size, Image.Resampling.BICUBIC)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def full_decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return ImageOps.exif_transpose(img).convert("RGB")


def hash_all(img: Image.Image) -> None:
    for algorithm in perceptual.DEFAULT_ALGORITHMS:
        algorithm.compute(img)


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print("| image | draft: decode + all hashes | full decode + all hashes | speed-up |"
          " draft decode | pHash | dHash | PDQ (+8 variants) | decoded size |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, size in SIZES.items():
        data = photo(size)
        drafted, dims = perceptual.decode(data, perceptual.PDQ_SIDE)
        draft_total = median_ms(lambda d=data: hash_all(perceptual.decode(d, 512)[0]),
                                args.runs)
        full_total = median_ms(lambda d=data: hash_all(full_decode(d)), args.runs)
        decode_only = median_ms(lambda d=data: perceptual.decode(d, 512), args.runs)
        parts = [median_ms(lambda a=a, img=drafted: a.compute(img), args.runs)
                 for a in perceptual.DEFAULT_ALGORITHMS]
        print(f"| {label} {size[0]}×{size[1]} ({len(data) // 1024} KiB) | {draft_total:.1f} ms"
              f" | {full_total:.1f} ms | {full_total / draft_total:.1f}× | {decode_only:.1f} ms"
              f" | {parts[0]:.1f} ms | {parts[1]:.1f} ms | {parts[2]:.1f} ms |"
              f" {dims['decoded_width']}×{dims['decoded_height']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
