"""Pictures and attachments in PDF documents: every image XObject on every page, by pypdf.

A JPEG (``/DCTDecode``) or JPEG 2000 (``/JPXDecode``) image is given as its stream's data
after any outer filters — the picture file as it was embedded, so its MD5 matches the
source picture when the writer embedded it unchanged (img2pdf, most scanners). Any other
image (Flate, CCITT, JBIG2, run-length...) is decoded by pypdf and given as a PNG, with
the note ``converted to PNG``: the pixels are evidence, the bytes are ours.

Images in form XObjects are found too; an image object used on several pages is given
once, under the first page that shows it. Inline images (``BI … ID … EI`` in a content
stream) are not read by this version. Files attached to the document (its EmbeddedFiles
name tree, PDF portfolios included) follow the pages as children ``attachment N/name``.
A child's bytes are produced when it is opened — one image in memory at a time; images
over :data:`MAX_PIXELS` are not converted (their opener raises ContainerError).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

from pypdf import PdfReader
from pypdf.errors import PdfReadError, PyPdfError
from pypdf.generic import IndirectObject

from ingest.derive.base import Child, ContainerError
from ingest.location import Derivation

_RAW_FILTERS = {"/DCTDecode": "jpg", "/DCT": "jpg", "/JPXDecode": "jp2"}
MAX_PIXELS = 100_000_000  # a larger non-JPEG image is not converted (memory)
_MAX_FORM_DEPTH = 12  # nested form XObjects followed before giving up (loops, bombs)
_ERRORS = (PyPdfError, PdfReadError, OSError, ValueError, KeyError, TypeError,
           AttributeError, RecursionError)


class PdfImageReader:
    """Image XObjects of a PDF, page by page."""

    method = "pdf"
    version = "1"

    def sniff(self, head: bytes) -> bool:
        return b"%PDF-" in head[:1024]

    def children(self, stream: BinaryIO, size: int, name: str) -> Iterator[Child]:
        stream.seek(0)
        try:
            reader = PdfReader(stream)
            if reader.is_encrypted and not reader.decrypt(""):
                raise ContainerError("pdf: encrypted with a user password")
            pages = len(reader.pages)
        except _ERRORS as exc:
            raise ContainerError(f"not a readable PDF: {exc}") from exc
        seen: set[tuple[int, int]] = set()
        for number in range(1, pages + 1):
            try:
                resources = reader.pages[number - 1].get("/Resources")
                found = list(_images(resources, "", seen, 0))
            except _ERRORS as exc:
                raise ContainerError(f"pdf page {number}: {exc}") from exc
            for path, image in found:
                yield self._child(number, path, image)
        yield from self._attachments(reader)

    def _attachments(self, reader: PdfReader) -> Iterator[Child]:
        """Files attached to the document (the EmbeddedFiles name tree: portfolios too)."""
        try:
            attached = list(reader.attachment_list)
        except _ERRORS as exc:
            raise ContainerError(f"pdf attachments: {exc}") from exc
        for index, item in enumerate(attached, 1):
            try:
                label = str(item.name or item.alternative_name or f"attachment-{index}")
                stated = item.size
                changed = item.modification_date
            except _ERRORS:
                label, stated, changed = f"attachment-{index}", None, None
            leaf = label.replace("\\", "/").rsplit("/", 1)[-1] or f"attachment-{index}"
            step = Derivation(self.method, self.version, inner=f"attachment {index}/{label}")
            yield Child(step, leaf, _attachment_opener(item, label),
                        size=stated if isinstance(stated, int) else None,
                        mtime=_iso(changed), notes=("attachment",))

    def _child(self, number: int, path: str, image: Any) -> Child:
        inner = f"page {number}/{path}"
        filters = image.get("/Filter")
        filters = list(filters) if isinstance(filters, list) else [filters] if filters else []
        raw = _RAW_FILTERS.get(str(filters[-1])) if filters else None
        leaf = f"page{number}-{path.replace('/', '-')}"
        step = Derivation(self.method, self.version, inner=inner)
        if raw is not None:
            stated = _resolve(image.get("/Length")) if len(filters) == 1 else None
            return Child(step, f"{leaf}.{raw}", _opener(image, raw=True, what=inner),
                         size=int(stated) if isinstance(stated, int) else None)
        return Child(step, f"{leaf}.png", _opener(image, raw=False, what=inner),
                     notes=("converted to PNG",))


def _images(resources: Any, prefix: str, seen: set[tuple[int, int]],
            depth: int) -> Iterator[tuple[str, Any]]:
    """(path, image object) for each image XObject not seen before, forms followed."""
    if depth > _MAX_FORM_DEPTH:
        return
    resources = _resolve(resources)
    if not hasattr(resources, "get"):
        return
    xobjects = _resolve(resources.get("/XObject"))
    if not hasattr(xobjects, "items"):
        return
    for key, reference in xobjects.items():
        identity = ((reference.idnum, reference.generation)
                    if isinstance(reference, IndirectObject) else None)
        if identity is not None and identity in seen:
            continue
        if identity is not None:
            seen.add(identity)
        xobject = _resolve(reference)
        subtype = xobject.get("/Subtype") if hasattr(xobject, "get") else None
        path = f"{prefix}{str(key).lstrip('/')}"
        if subtype == "/Image":
            yield path, xobject
        elif subtype == "/Form":
            yield from _images(xobject.get("/Resources"), path + "/", seen, depth + 1)


def _attachment_opener(item: Any, label: str) -> Callable[[], BinaryIO]:
    def open_attachment() -> BinaryIO:
        try:
            return io.BytesIO(item.content)
        except Exception as exc:  # pypdf raises many types on damaged streams
            raise ContainerError(f"pdf attachment {label!r}: {exc}") from exc
    return open_attachment


def _iso(stamp: datetime | None) -> str | None:
    if not isinstance(stamp, datetime):
        return None
    if stamp.tzinfo is None:
        return None  # a PDF date without a zone: local time of an unknown machine
    return stamp.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _resolve(value: Any) -> Any:
    return value.get_object() if isinstance(value, IndirectObject) else value


def _opener(image: Any, raw: bool, what: str) -> Callable[[], BinaryIO]:
    def open_image() -> BinaryIO:
        try:
            if raw:
                return io.BytesIO(image.get_data())
            width, height = _resolve(image.get("/Width", 0)), _resolve(image.get("/Height", 0))
            if int(width) * int(height) > MAX_PIXELS:
                raise ContainerError(f"pdf image {what}: {width}×{height} pixels is over the "
                                     f"{MAX_PIXELS}-pixel limit for converting to PNG")
            picture = image.decode_as_image()
            if picture is None:
                raise ContainerError(f"pdf image {what}: pypdf cannot decode it")
            out = io.BytesIO()
            picture.save(out, format="PNG")
            out.seek(0)
            return out
        except ContainerError:
            raise
        except Exception as exc:  # pypdf and Pillow raise many types on damaged images
            raise ContainerError(f"pdf image {what}: {exc}") from exc
    return open_image
