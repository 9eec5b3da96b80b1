"""Thumbnails: a small JPEG of each image, made once during triage, for the report.

The report must show matched images without the examiner's machine ever re-reading the
evidence, and without embedding full-size pictures. So while the worker already holds
an image's bytes, this analyzer takes the raster the perceptual hashes decoded
(:func:`analyzers.perceptual.decode` at PDQ's 512 px, reduced-scale for JPEG, with the
decompression-bomb guards and EXIF orientation applied; one decode serves both) and
encodes an upright thumbnail of at most :data:`SIDE` pixels on its longer side, as a
baseline JPEG of quality :data:`QUALITY` with no metadata (no EXIF, so no GPS position
or serial number travels with it).

Findings: ``sha256`` (of the thumbnail's bytes; its name in ``CASE/thumbnails/``),
``width``, ``height``, ``bytes`` and ``blob_base64`` (the JPEG itself). The worker moves
``blob_base64`` out of the result record before the record is hashed into its batch's
Merkle tree (``pipeline.run.worker.detach_blobs``): the record keeps the digest, the driver
writes the bytes to ``CASE/thumbnails/<sha256>.jpg`` and lists the digests in the
batch's ledger entry. The encoding is deterministic for a given Pillow/libjpeg, which
the analyzer's library versions record.
"""

from __future__ import annotations

import base64
import hashlib
import io

from PIL import Image, features

from analyzers.base import Analyzer, Findings
from analyzers.perceptual import PDQ_SIDE, decode
from ingest.location import FileEntry

SIDE = 160  # longer side in pixels: enough to recognise a picture, small in a report
QUALITY = 75


def make_thumbnail(data: bytes, side: int = SIDE, quality: int = QUALITY) -> tuple[bytes, int, int]:
    """Encode the upright thumbnail of an image file's bytes; returns (JPEG, width, height)."""
    if side < 1 or not 1 <= quality <= 95:
        raise ValueError(f"bad thumbnail size {side} or quality {quality}")
    image, _dims = decode(data, PDQ_SIDE)
    image = image.copy()  # decode's image is shared with the perceptual hashes
    image.thumbnail((side, side), Image.Resampling.BICUBIC, reducing_gap=2.0)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, optimize=False, progressive=False)
    return out.getvalue(), image.width, image.height


class ThumbnailAnalyzer(Analyzer):
    """A small metadata-free JPEG of every image, so reports never re-read evidence."""

    name = "thumbnail"
    version = "1.1.0"
    input = "content"
    max_size = 256 * 1024 * 1024  # as the perceptual hashes: the same decode limits

    def applies_to(self, entry: FileEntry, findings: dict[str, Findings]) -> bool:
        mime = findings.get("filetype", {}).get("mime") or ""
        return entry.kind == "file" and mime.startswith("image/")

    def analyze(self, data: bytes, entry: FileEntry, findings: dict[str, Findings]) -> Findings:
        jpeg, width, height = make_thumbnail(data)
        return {
            "sha256": hashlib.sha256(jpeg).hexdigest(),
            "width": width,
            "height": height,
            "bytes": len(jpeg),
            "blob_base64": base64.b64encode(jpeg).decode("ascii"),
        }

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        versions = {"pillow": Image.__version__}
        for feature in ("libjpeg_turbo", "jpg"):
            version = features.version(feature)
            if version is not None:
                versions[feature] = str(version)
        return versions
