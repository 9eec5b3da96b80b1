"""Perceptual hashes: find the same picture after re-encoding, resizing or light edits.

One decode feeds every hash algorithm in :data:`DEFAULT_ALGORITHMS`; each declares the
shortest side it needs (pHash and dHash work on 32×32 / 9×8 grey images, so 64 px is
plenty; PDQ wants ≥ 512 px and slots in as another :class:`HashAlgorithm`). The decode:

1. ``Image.open`` on the bytes (lazy: only the header is parsed).
2. Decompression-bomb guard: images over :data:`MAX_PIXELS` declared pixels (Pillow's
   own warning threshold, 89,478,485 ≈ 9459² — a 100-MP photo is refused) raise
   :class:`AnalyzerError` before any pixel is decoded. Pillow's
   ``DecompressionBombWarning``/``Error`` are turned into the same error as a second
   guard. Nothing global is changed (``Image.MAX_IMAGE_PIXELS``,
   ``ImageFile.LOAD_TRUNCATED_IMAGES`` stay as they are): a truncated file is an error.
   ``warnings.catch_warnings`` is process-global state on Python 3.11, so with threads
   the explicit pixel check — not the warning filter — is the guard that counts.
3. JPEG: ``draft("RGB", (n, n))`` lets libjpeg decode at the smallest DCT scale (1/8,
   1/4, 1/2) that keeps the shorter side ≥ ``n`` = the largest ``min_side`` needed.
4. The first frame is loaded, EXIF orientation is applied (``ImageOps.exif_transpose``)
   so a rotated copy and an upright copy hash alike, then converted to RGB.

``width``/``height`` are the stored dimensions before drafting and rotation;
``decoded_width``/``decoded_height`` are the raster actually decoded (before rotation).
Hashes are hex strings as ``str(imagehash.ImageHash)`` gives them (16 hex digits for
64 bits); ``imagehash.hex_to_hash`` reads them back exactly.

PDQ (Facebook's 256-bit hash, through the ``pdqhash`` binding of ThreatExchange's C++
code) is computed the way ThreatExchange's ``pdq-photo-hasher`` does it: an image with a
side over 512 px is resized to 512×512 first (we use a box filter on the drafted raster
where the reference uses CImg's resize on the full decode; the Jarosz filters that follow
make the two agree within a few bits — see ``tests/test_pdq.py``). Findings: ``pdq``
(64 hex digits, ThreatExchange's own text form), ``pdq_quality`` (0–100; below 50 the
reference says not to trust the hash) and ``pdq_dihedral``: the hashes of the 8
rotations/mirrors in :data:`DIHEDRAL` order (the first is ``pdq`` itself), computed in
the same pass from the DCT, so a mirrored or rotated copy of a known image still matches.

HEIC/HEIF is opened through ``pillow-heif`` (registered as a Pillow plugin on import).
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy
import pdqhash
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError, features

from analyzers.base import Analyzer, AnalyzerError, Findings
from ingest.libraries import register_heif_opener
from ingest.location import FileEntry

MAX_PIXELS = 89_478_485  # = Pillow's default MAX_IMAGE_PIXELS (its warning threshold)
PDQ_SIDE = 512  # ThreatExchange's DOWNSAMPLE_DIMS: larger inputs are resized to 512×512
# pdqhash.compute_dihedral's order; names as in ThreatExchange's pdqhashing.h.
DIHEDRAL = ("original", "rotate90", "rotate180", "rotate270", "flip_x", "flip_y",
            "flip_plus1", "flip_minus1")


@dataclass(frozen=True)
class HashAlgorithm:
    """One perceptual hash computed from the shared decoded RGB image."""

    name: str  # findings key (when ``compute`` returns a dict, its keys are used instead)
    min_side: int  # shorter side in pixels the decoded image must keep
    compute: Callable[[Image.Image], str | Findings]


SMALL_SIDE = 128  # pHash/dHash input: box-reduced to about this (they resize to 32/9 px)


def _small(img: Image.Image) -> Image.Image:
    """A box-reduced copy for the 64-bit hashes.

    imagehash resizes with LANCZOS straight to 32×32 (pHash) or 9×8 (dHash); on the
    ≥ 512 px raster PDQ needs that costs ~10 ms. An integer box reduction to ≥ 128 px
    first is a fraction of that and changes the hashes by a bit or two at most. It is
    made once per image, in grey (where both hashes start), and shared by the two.
    """
    last = _LAST_SMALL.entry
    if last is not None and last[0] is img:  # pHash and dHash share one reduction
        return last[1]
    factor = min(img.size) // SMALL_SIDE
    small = (img.reduce(factor) if factor >= 2 else img).convert("L")
    _LAST_SMALL.entry = (img, small)
    return small


class _Last(threading.local):
    """This thread's most recent (input, …, outcome) of a costly step, to share it."""

    entry: tuple[Any, ...] | None = None


_LAST_SMALL = _Last()  # (raster, grey reduction)


# imagehash (and pillow-heif) are imported where first used, not with this module: the
# driver imports every analyzer to check the command's analyzer names and settings
# before the case opens, and their imports were ~0.1 s of its start (issue 18).


def _phash(img: Image.Image) -> str:
    import imagehash

    return str(imagehash.phash(_small(img), hash_size=8))


def _dhash(img: Image.Image) -> str:
    import imagehash

    return str(imagehash.dhash(_small(img), hash_size=8))


def bits_to_hex(bits: numpy.ndarray) -> str:
    """pdqhash's bit vector (most significant bit first) as ThreatExchange's hex string."""
    return numpy.packbits(numpy.asarray(bits, dtype=numpy.uint8)).tobytes().hex()


def pdq_input(img: Image.Image) -> numpy.ndarray:
    """The RGB raster PDQ hashes: ≤ 512×512 like the reference, as a uint8 array."""
    if img.width > PDQ_SIDE or img.height > PDQ_SIDE:
        img = img.resize((PDQ_SIDE, PDQ_SIDE), Image.Resampling.BOX)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return numpy.ascontiguousarray(numpy.asarray(img, dtype=numpy.uint8))


def _pdq(img: Image.Image) -> Findings:
    hashes, quality = pdqhash.compute_dihedral(pdq_input(img))
    variants = [bits_to_hex(h) for h in hashes]
    return {"pdq": variants[0], "pdq_quality": int(quality), "pdq_dihedral": variants}


DEFAULT_ALGORITHMS: tuple[HashAlgorithm, ...] = (
    HashAlgorithm("phash", 64, _phash),
    HashAlgorithm("dhash", 64, _dhash),
    HashAlgorithm("pdq", PDQ_SIDE, _pdq),
)


_LAST = _Last()  # (data, min_side, max_pixels, decoded image and dimensions or error)


def decode(
    data: bytes, min_side: int, max_pixels: int = MAX_PIXELS
) -> tuple[Image.Image, Findings]:
    """Decode ``data`` once for hashing; return the upright RGB image and its dimensions.

    The perceptual hashes and the thumbnail need the same raster of the same bytes, and
    the decode is most of their cost (libjpeg's entropy decoding cannot be scaled away),
    so the last outcome — image or error — is kept per thread and handed out again when
    the very same ``bytes`` object comes back with the same parameters. Callers must not
    modify the returned image. The cache holds one file's bytes until the next decode.
    """
    cached = _LAST.entry
    if cached is not None and cached[0] is data and cached[1:3] == (min_side, max_pixels):
        outcome = cached[3]
        if isinstance(outcome, AnalyzerError):
            raise AnalyzerError(str(outcome))
        return outcome
    try:
        outcome = _decode(data, min_side, max_pixels)
    except AnalyzerError as exc:
        _LAST.entry = (data, min_side, max_pixels, exc)
        raise
    _LAST.entry = (data, min_side, max_pixels, outcome)
    return outcome


def _decode(data: bytes, min_side: int, max_pixels: int) -> tuple[Image.Image, Findings]:
    if min_side < 1:
        raise ValueError(f"min_side must be positive, got {min_side}")
    register_heif_opener()
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:
            raise AnalyzerError(f"not an image Pillow can open: {exc}") from exc
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise AnalyzerError(f"refused as a decompression bomb: {exc}") from exc
        # Not ``with img``: closing would discard the raster we return, and copying it
        # back out costs as much as the hashes. The source is in memory; nothing leaks.
        width, height = img.size
        if width * height > max_pixels:
            raise AnalyzerError(
                f"refused as a decompression bomb: {width}x{height} = {width * height} "
                f"pixels exceeds the limit of {max_pixels}"
            )
        image_format = img.format
        if image_format == "JPEG":
            img.draft("RGB", (min_side, min_side))
        try:
            img.load()
            decoded_size = img.size
            # exif_transpose copies even when there is nothing to turn: ask first.
            orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
            upright = ImageOps.exif_transpose(img) if orientation in range(2, 9) else img
            rgb = upright if upright.mode == "RGB" else upright.convert("RGB")
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise AnalyzerError(f"refused as a decompression bomb: {exc}") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            # "image file is truncated", broken Huffman data, bad chunk CRCs…
            raise AnalyzerError(f"cannot decode {image_format} image: {exc}") from exc
    return rgb, {
        "width": width,
        "height": height,
        "decoded_width": decoded_size[0],
        "decoded_height": decoded_size[1],
        "format": image_format,
    }


class PerceptualHashAnalyzer(Analyzer):
    """64-bit pHash/dHash and 256-bit PDQ: find known images after they were altered."""

    name = "perceptual"
    version = "2.0.0"
    input = "content"
    max_size = 256 * 1024 * 1024

    def __init__(self, algorithms: Sequence[HashAlgorithm] = DEFAULT_ALGORITHMS) -> None:
        if not algorithms:
            raise ValueError("at least one hash algorithm is needed")
        self.algorithms = tuple(algorithms)
        self.min_side = max(a.min_side for a in self.algorithms)

    def applies_to(self, entry: FileEntry, findings: dict[str, Findings]) -> bool:
        mime = findings.get("filetype", {}).get("mime") or ""
        return entry.kind == "file" and mime.startswith("image/")

    def analyze(self, data: bytes, entry: FileEntry, findings: dict[str, Findings]) -> Findings:
        image, dims = decode(data, self.min_side)
        result: Findings = {}
        for algorithm in self.algorithms:
            value = algorithm.compute(image)
            if isinstance(value, dict):
                result.update(value)
            else:
                result[algorithm.name] = value
        result.update(dims)
        return result

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        # Resampling and IDCT details change hashes between releases: record them all.
        import imagehash
        import pillow_heif

        versions = {
            "pillow": Image.__version__,
            "imagehash": imagehash.__version__,
            "numpy": numpy.__version__,
            "pdqhash": _package_version("pdqhash"),
            "pillow_heif": pillow_heif.__version__,
            "libheif": str(pillow_heif.libheif_version()),
        }
        for feature in ("libjpeg_turbo", "zlib", "libtiff", "webp"):
            version = features.version(feature)
            if version is not None:
                versions[feature] = str(version)
        try:
            import scipy  # imagehash.phash uses scipy.fftpack when it is installed

            versions["scipy"] = scipy.__version__
        except ImportError:
            pass
        return versions


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover - imported above, so installed
        return "unknown"
