"""PDQ: pinned values, properties, other formats, and Facebook's reference as the oracle.

The oracle is ThreatExchange's own ``pdq-photo-hasher``, compiled (``conftest.py``, shared
with the export test) from the C++ source
that the installed ``pdqhash`` release ships in its sdist (``pip download`` of the same
version, so the reference and the binding are the same code). It reads PPM natively
(CImg), so it gets exactly the pixels we decoded and does its own luma conversion,
512×512 resize and hashing. ThreatExchange's published test photos (``pdq/data``) are
binary files we cannot fetch here; this comparison on generated pictures stands in.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from conftest import PDQ_RESIZED_TOLERANCE, pdq_reference
from PIL import Image, ImageOps
from test_analyzers import PINNED_PIXELS_SHA256, PINNED_SEED, encode, procedural

from analyzers.perceptual import DIHEDRAL, PerceptualHashAnalyzer, decode

# Computed with pdqhash 0.2.8 (ThreatExchange C++), Pillow 13.0.0; confirmed bit for bit
# by the reference binary in test_reference_equals_binding_on_small_images.
PINNED_PDQ = "da814e257a8d7b62c9d36f3159c279718ec3b7b28c3c9170aac592af556c02ce"


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def hashes(data: bytes) -> dict:
    return PerceptualHashAnalyzer().analyze(data, None, {})  # type: ignore[arg-type]


def test_pinned_pdq_of_a_lossless_png() -> None:
    img = procedural(PINNED_SEED)
    assert hashlib.sha256(img.tobytes()).hexdigest() == PINNED_PIXELS_SHA256
    found = hashes(encode(img, "PNG"))
    assert found["pdq"] == PINNED_PDQ
    assert found["pdq_quality"] == 100
    assert found["pdq_dihedral"][0] == PINNED_PDQ and len(found["pdq_dihedral"]) == 8
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in found["pdq_dihedral"])


@pytest.mark.parametrize("seed", [3, 9, 1234])
def test_reference_equals_binding_on_small_images(reference_hasher: Path, tmp_path: Path,
                                                  seed: int) -> None:
    """≤ 512 px: no resize on either side, so the hashes must be identical, all 8 of them."""
    img = procedural(seed, (480, 360))
    ours = hashes(encode(img, "PNG"))
    assert pdq_reference(reference_hasher, img, tmp_path) == [ours["pdq"]]
    assert pdq_reference(reference_hasher, img, tmp_path, "--pdqdih") == ours["pdq_dihedral"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reference_agrees_within_a_few_bits_on_large_jpegs(reference_hasher: Path,
                                                           tmp_path: Path, seed: int) -> None:
    """Large JPEG: we draft-decode and box-resize, the reference decodes fully: a few bits."""
    data = encode(procedural(seed, (1600, 1200)), "JPEG", quality=90)
    full = Image.open(io.BytesIO(data))
    (ref,) = pdq_reference(reference_hasher, full, tmp_path)
    ours = hashes(data)
    assert ours["decoded_width"] == 800  # drafted at 1/2, still ≥ 512
    assert hamming(ours["pdq"], ref) <= PDQ_RESIZED_TOLERANCE


@pytest.mark.parametrize(("transform", "variant"), [
    (ImageOps.mirror, "flip_y"), (ImageOps.flip, "flip_x"),
    (lambda im: im.rotate(90, expand=True), "rotate270"),
    (lambda im: im.rotate(180), "rotate180"),
    (lambda im: im.transpose(Image.Transpose.TRANSPOSE), "flip_plus1"),
])
def test_dihedral_variants_find_mirrored_and_rotated_copies(transform, variant: str) -> None:
    base = procedural(11, (1024, 768))
    known = hashes(encode(base, "PNG"))["pdq"]
    copy = hashes(encode(transform(base), "JPEG", quality=80))
    distances = dict(zip(DIHEDRAL, (hamming(known, h) for h in copy["pdq_dihedral"]),
                         strict=True))
    assert distances[variant] <= 16
    assert min(distances, key=distances.__getitem__) == variant
    assert hamming(known, copy["pdq"]) > 64  # the plain hash alone would miss it


def test_near_copies_close_and_unrelated_far() -> None:
    base = procedural(11, (1024, 768))
    known = hashes(encode(base, "PNG"))
    for copy in (base.resize((512, 384), Image.Resampling.BILINEAR),
                 base.resize((256, 192), Image.Resampling.LANCZOS)):
        near = hashes(encode(copy, "JPEG", quality=50))
        assert hamming(known["pdq"], near["pdq"]) <= 31
    for seed in (12, 13, 14):
        other = hashes(encode(procedural(seed, (1024, 768)), "PNG"))
        assert min(hamming(known["pdq"], h) for h in other["pdq_dihedral"]) >= 80


def test_flat_image_has_low_quality() -> None:
    found = hashes(encode(Image.new("RGB", (600, 400), (120, 120, 120)), "PNG"))
    assert found["pdq_quality"] < 50


@pytest.mark.parametrize(("fmt", "params"), [
    ("HEIF", {"quality": 90}), ("WEBP", {"quality": 90}), ("TIFF", {}), ("BMP", {}),
    ("GIF", {}),
])
def test_other_formats_hash_like_the_png(fmt: str, params: dict) -> None:
    img = procedural(21, (640, 480))
    png = hashes(encode(img, "PNG"))
    data = encode(img, fmt, **params)
    found = hashes(data)
    assert found["format"] == fmt
    assert hamming(png["pdq"], found["pdq"]) <= 24, fmt
    assert hamming(png["phash"], found["phash"]) <= 8, fmt


def test_gif_first_frame_is_hashed() -> None:
    first, second = procedural(31, (320, 240)), procedural(32, (320, 240))
    out = io.BytesIO()
    first.save(out, "GIF", save_all=True, append_images=[second], duration=100)
    found = hashes(out.getvalue())
    assert hamming(found["pdq"], hashes(encode(first, "PNG"))["pdq"]) <= 24
    assert hamming(found["pdq"], hashes(encode(second, "PNG"))["pdq"]) > 64


def test_heic_is_recognised_and_decoded() -> None:
    data = encode(procedural(41, (800, 600)), "HEIF", quality=80)
    image, dims = decode(data, 512)
    assert dims["format"] == "HEIF" and image.size == (800, 600)
