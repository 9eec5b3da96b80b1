"""Where an image container keeps its metadata blocks: EXIF, XMP, vendor blocks.

The EXIF analyzer's fallbacks need the raw blocks, not a full decode. Each walker follows
the container's own structure (JPEG marker segments up to the start of scan, PNG chunks,
RIFF chunks, the first TIFF IFD, HEIF items through pillow-heif) and slices the blocks
out, so the cost is one step per segment or chunk, never a Python loop over the bytes.
A structure that runs past the end of the data ends the walk: what was found before it
is kept, and nothing is read beyond the data given.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

#: APP1 prefixes (JPEG), and the PNG iTXt keyword exiftool and Adobe write XMP under.
EXIF_PREFIX = b"Exif\x00\x00"
XMP_PREFIX = b"http://ns.adobe.com/xap/1.0/\x00"
PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RAW_PROFILE = b"Raw profile type "

#: Largest XMP packet we parse. Real packets are kilobytes (a JPEG APP1 holds 64 KiB);
#: Photoshop's DocumentAncestors lists reach a few MiB. Beyond this it is not a camera's.
MAX_XMP_BYTES = 4 * 1024 * 1024


class ContainerError(ValueError):
    """A metadata block that cannot be what it claims (e.g. XMP too large to be real)."""


@dataclass
class MetadataBlocks:
    """The raw metadata blocks found in one file (``None``: not present)."""

    exif: bytes | None = None  # a TIFF structure ("II*\\0"/"MM\\0*"), no "Exif" prefix
    xmp: bytes | None = None
    ciff: bytes | None = None  # a Canon CIFF heap, from the start of its header
    picture_info: list[bytes] = field(default_factory=list)  # JPEG APP12 text blocks
    problems: list[str] = field(default_factory=list)  # blocks that were there but unusable


_STANDALONE = frozenset((0x01, *range(0xD0, 0xD9)))  # TEM, RSTn, SOI: no length field


def jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """``(marker, payload_start, payload_end)`` of each marker segment before the scan."""
    pos = 2
    size = len(data)
    while pos + 4 <= size and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:  # no length field
            pos += 2
            continue
        if marker == 0xDA:  # start of scan: no more metadata segments
            return
        (length,) = struct.unpack_from(">H", data, pos + 2)
        end = pos + 2 + length
        if length < 2 or end > size:
            return
        yield marker, pos + 4, end
        pos = end


def png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """``(type, data_start, data_end)`` of each PNG chunk up to IEND (CRCs not checked)."""
    pos = len(PNG_SIGNATURE)
    size = len(data)
    while pos + 8 <= size:
        length, kind = struct.unpack_from(">I4s", data, pos)
        start = pos + 8
        end = start + length
        if end > size:
            return
        yield kind, start, end
        if kind == b"IEND":
            return
        pos = end + 4


def riff_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """``(fourcc, data_start, data_end)`` of each top-level chunk of a RIFF/WebP file."""
    pos = 12
    size = min(len(data), 8 + struct.unpack_from("<I", data, 4)[0]) if len(data) >= 8 else 0
    while pos + 8 <= size:
        kind, length = struct.unpack_from("<4sI", data, pos)
        start = pos + 8
        end = start + length
        if end > size:
            return
        yield kind, start, end
        pos = end + (length & 1)  # chunks are padded to an even size


def tiff_ifd0_tag(data: bytes, wanted: int) -> bytes | None:
    """The value bytes of one tag of a TIFF's first IFD (for XMP: tag 700, XMLPacket)."""
    if len(data) < 8 or data[:2] not in (b"II", b"MM"):
        return None
    endian = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack_from(endian + "I", data, 4)
    if offset + 2 > len(data):
        return None
    (count,) = struct.unpack_from(endian + "H", data, offset)
    if offset + 2 + 12 * count > len(data):
        return None
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}
    for index in range(count):
        tag, kind, n, value = struct.unpack_from(endian + "HHI4s", data, offset + 2 + 12 * index)
        if tag != wanted or kind not in sizes:
            continue
        length = n * sizes[kind]
        if length <= 4:
            return value[:length]
        (where,) = struct.unpack(endian + "I", value)
        return data[where : where + length] if where + length <= len(data) else None
    return None


def _png_itxt(payload: bytes) -> bytes | None:
    """The text of an iTXt chunk whose keyword is the XMP one (decompressed, bounded)."""
    keyword, sep, rest = payload.partition(b"\x00")
    if keyword != PNG_XMP_KEYWORD or not sep or len(rest) < 2:
        return None
    compressed, _method, rest = rest[0], rest[1], rest[2:]
    _language, _, rest = rest.partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    if not compressed:
        return text
    return _inflate(text, "PNG iTXt XMP")


def _take_xmp(blocks: MetadataBlocks, packet: bytes | None, where: str) -> None:
    if packet is None or blocks.xmp is not None:
        return
    if len(packet) > MAX_XMP_BYTES:
        blocks.problems.append(f"XMP in {where} is {len(packet)} bytes, more than "
                               f"{MAX_XMP_BYTES}: not parsed")
        return
    blocks.xmp = packet


def _jpeg(data: bytes, blocks: MetadataBlocks) -> None:
    for marker, start, end in jpeg_segments(data):
        if marker == 0xE1 and blocks.exif is None and data.startswith(EXIF_PREFIX, start):
            blocks.exif = data[start + len(EXIF_PREFIX) : end]
        elif marker == 0xE1 and data.startswith(XMP_PREFIX, start):
            _take_xmp(blocks, data[start + len(XMP_PREFIX) : end], "APP1")
        elif marker == 0xE0 and data[start + 6 : start + 14] == b"HEAPJPGM":
            blocks.ciff = data[start:end]
        elif marker == 0xEC:
            payload = data[start:end]
            if b"[picture info]" in payload or b"Type=" in payload:
                blocks.picture_info.append(payload)


def _inflate(payload: bytes, what: str) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(payload, MAX_XMP_BYTES + 1)
    except zlib.error as exc:
        raise ContainerError(f"{what} does not inflate: {exc}") from exc
    if len(out) > MAX_XMP_BYTES:
        raise ContainerError(f"{what} inflates to more than {MAX_XMP_BYTES} bytes")
    return out


def _raw_profile(kind: bytes, payload: bytes) -> tuple[bytes, bytes] | None:
    """``(profile, bytes)`` of an ImageMagick "Raw profile type exif|APP1|xmp" text chunk.

    ImageMagick keeps a converted photo's EXIF and XMP this way (tEXt/zTXt, hex digits
    after a name and length line); ExifTool reads them, so we do too.
    """
    keyword, sep, rest = payload.partition(b"\x00")
    if not sep or not keyword.startswith(RAW_PROFILE):
        return None
    profile = keyword[len(RAW_PROFILE) :].lower()
    if profile not in (b"exif", b"app1", b"xmp"):
        return None
    if kind == b"zTXt":
        text = _inflate(rest[1:], f"PNG zTXt {keyword.decode('latin-1')}")
    elif kind == b"tEXt":
        text = rest
    else:
        return None
    lines = text.lstrip().split(b"\n", 2)
    if len(lines) < 3:
        raise ContainerError(f"PNG {keyword.decode('latin-1')} has no length line")
    try:
        raw = bytes.fromhex(lines[2].decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContainerError(f"PNG {keyword.decode('latin-1')} is not hex: {exc}") from exc
    if profile == b"xmp":
        return b"xmp", raw
    return b"exif", raw[6:] if raw.startswith(EXIF_PREFIX) else raw


def _png(data: bytes, blocks: MetadataBlocks) -> None:
    for kind, start, end in png_chunks(data):
        try:
            if kind == b"eXIf" and blocks.exif is None:
                blocks.exif = data[start:end]
            elif kind == b"iTXt" and blocks.xmp is None:
                _take_xmp(blocks, _png_itxt(data[start:end]), "a PNG iTXt chunk")
            elif kind in (b"tEXt", b"zTXt"):
                found = _raw_profile(kind, data[start:end])
                if found and found[0] == b"exif" and blocks.exif is None:
                    blocks.exif = found[1]
                elif found and found[0] == b"xmp":
                    _take_xmp(blocks, found[1], "a PNG raw profile")
        except ContainerError as exc:
            blocks.problems.append(str(exc))


def _webp(data: bytes, blocks: MetadataBlocks) -> None:
    for kind, start, end in riff_chunks(data):
        if kind == b"EXIF" and blocks.exif is None:
            block = data[start:end]
            blocks.exif = block[6:] if block.startswith(EXIF_PREFIX) else block
        elif kind == b"XMP ":
            _take_xmp(blocks, data[start:end], "the WebP XMP chunk")


def heif_exif(data: bytes) -> bytes | None:
    """The EXIF item of a HEIF file as a TIFF block, through libheif (pillow-heif)."""
    import pillow_heif  # here, not at import: see analyzers/perceptual.py

    try:
        exif = pillow_heif.open_heif(io.BytesIO(data)).info.get("exif")
    except Exception as exc:  # pillow-heif raises ValueError, SyntaxError, IndexError…
        raise ContainerError(f"HEIF container not readable by libheif: {exc!r}") from exc
    if not exif:
        return None
    return exif[6:] if exif.startswith(EXIF_PREFIX) else exif


def _heif(data: bytes, blocks: MetadataBlocks) -> None:
    import pillow_heif

    try:
        info = pillow_heif.open_heif(io.BytesIO(data)).info
        exif, xmp = info.get("exif"), info.get("xmp")
    except Exception as exc:  # pillow-heif raises ValueError, SyntaxError, IndexError…
        blocks.problems.append(f"HEIF container not readable by libheif: {exc!r}")
        return
    if exif:
        blocks.exif = exif[6:] if exif.startswith(EXIF_PREFIX) else exif
    if xmp:
        _take_xmp(blocks, bytes(xmp), "a HEIF XMP item")


def is_heif(data: bytes) -> bool:
    """ISO base media file with a HEIF brand (pillow-heif 1.x reads no AVIF)."""
    if data[4:8] != b"ftyp":
        return False
    if data[8:12] in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"):
        return True
    box = data[8 : min(struct.unpack_from(">I", data)[0], 64)]
    return data[8:12] in (b"mif1", b"msf1") and b"avif" not in box and b"avis" not in box


def locate_blocks(data: bytes) -> MetadataBlocks:
    """The metadata blocks of ``data``, by container type (unknown containers: none)."""
    blocks = MetadataBlocks()
    if data[:2] == b"\xff\xd8":
        _jpeg(data, blocks)
    elif data.startswith(PNG_SIGNATURE):
        _png(data, blocks)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        _webp(data, blocks)
    elif data[:4] in (b"II*\x00", b"MM\x00*"):
        blocks.exif = data
        _take_xmp(blocks, tiff_ifd0_tag(data, 700), "TIFF tag 700")
    elif data[:2] == b"II" and data[6:14] == b"HEAPCCDR":  # Canon CRW: all CIFF
        blocks.ciff = data
    elif is_heif(data):
        _heif(data, blocks)
    return blocks
