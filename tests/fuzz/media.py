"""Media files to fuzz: seeds made with Pillow, mutations aimed at their headers.

JPEG (SOF dimensions, DQT/DHT tables, the EXIF APP1 and its IFDs), PNG (IHDR with a
recomputed CRC so parsers believe it, chunk lengths, the zlib stream), TIFF (IFD counts,
next-IFD loops, strip offsets and counts), GIF (screen size, LZW data); plus
decompression bombs, truncated and zero-byte files, IFD loops and huge entry counts.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib
from dataclasses import dataclass

from PIL import Image


@functools.cache
def seed_files() -> dict[str, bytes]:
    """Small valid media, deterministic for one Pillow version."""
    rng = random.Random(6)
    pixels = bytes(rng.randrange(256) for _ in range(64 * 48 * 3))
    img = Image.frombytes("RGB", (64, 48), pixels)
    exif = Image.Exif()
    exif[0x010F] = "FuzzCam"  # Make
    exif[0x0110] = "Model 6"  # Model
    exif[0x0131] = "exhibit fuzz"  # Software
    exif[0x0112] = 1  # Orientation
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 09:00:00"  # DateTimeOriginal
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (52.0, 22.0, 1.5), "E", (4.0, 53.0, 2.25)
    out: dict[str, bytes] = {}
    for name, fmt, kwargs in (("photo.jpg", "JPEG", {"exif": exif, "quality": 80}),
                              ("plain.jpg", "JPEG", {"quality": 60, "progressive": True}),
                              ("image.png", "PNG", {}), ("image.tif", "TIFF", {"exif": exif}),
                              ("image.gif", "GIF", {})):
        buf = io.BytesIO()
        img.save(buf, fmt, **kwargs)
        out[name] = buf.getvalue()
    return out


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


@functools.cache
def png_bomb(width: int, height: int, bit_depth: int = 1, color: int = 0) -> bytes:
    """A valid PNG of ``width``×``height`` zero pixels: tiny file, huge decode."""
    row = (width * bit_depth + 7) // 8 + 1
    comp = zlib.compressobj(9)
    parts = [comp.compress(bytes(row)) for _ in range(min(height, 4096))]
    body = b"".join(parts)
    if height > 4096:  # the rest as one repeated block of zero rows
        block = bytes(row) * 64
        for _ in range((height - 4096) // 64):
            body += comp.compress(block)
    body += comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body)
            + _png_chunk(b"IEND", b""))


@dataclass
class MediaCase:
    name: str  # file name on the image (with the seed's extension, or a wrong one)
    data: bytes
    label: str


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start of length field, segment length) up to SOS."""
    out = []
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        length = struct.unpack_from(">H", data, pos + 2)[0]
        out.append((marker, pos + 2, length))
        if marker == 0xDA:
            break
        pos += 2 + length
    return out


def _tiff_ifd0(data: bytes, base: int) -> tuple[str, int] | None:
    order = data[base : base + 2]
    if order not in (b"II", b"MM"):
        return None
    endian = "<" if order == b"II" else ">"
    return endian, base + struct.unpack_from(endian + "I", data, base + 4)[0]


def _mutate_ifd(rng: random.Random, data: bytearray, base: int) -> str:
    """Huge entry counts, next-IFD loops, sub-IFD pointers back to IFD0, wild offsets."""
    found = _tiff_ifd0(bytes(data), base)
    if found is None:
        return "no TIFF header"
    endian, ifd = found
    if ifd + 2 > len(data):
        return "IFD0 beyond the data"
    count = struct.unpack_from(endian + "H", data, ifd)[0]
    choice = rng.choice(("count", "loop", "subloop", "offset", "type", "selfloop"))
    next_at = ifd + 2 + 12 * count
    if choice == "count":
        struct.pack_into(endian + "H", data, ifd, rng.choice((0xFFFF, 0x7FFF, 1000, 0)))
    elif choice in ("loop", "selfloop") and next_at + 4 <= len(data):
        struct.pack_into(endian + "I", data, next_at, ifd - base if choice == "selfloop"
                         else 8)
    elif count and ifd + 2 + 12 * count <= len(data):
        entry = ifd + 2 + 12 * rng.randrange(count)
        if choice == "subloop":  # any pointer entry now points at IFD0 again
            struct.pack_into(endian + "I", data, entry + 8, ifd - base)
        elif choice == "offset":
            struct.pack_into(endian + "I", data, entry + 8,
                             rng.choice((0xFFFFFFFF, 0x7FFFFFFF, len(data), 0)))
            struct.pack_into(endian + "I", data, entry + 4,
                             rng.choice((1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)))
        else:
            struct.pack_into(endian + "H", data, entry + 2, rng.choice((0, 13, 0xFFFF, 5)))
    return f"IFD {choice}"


def mutate(rng: random.Random, index: int) -> MediaCase:
    """One hostile media file (deterministic for ``rng``'s state)."""
    seeds = seed_files()
    seed_name = rng.choice(sorted(seeds))
    ext = seed_name.rsplit(".", 1)[1]
    data = bytearray(seeds[seed_name])
    kind = rng.choices(("header", "exif", "dims", "truncate", "zero", "bomb", "flip",
                        "wrongext"), weights=(6, 5, 3, 3, 1, 1, 3, 1))[0]
    label = f"{seed_name}: {kind}"
    if kind == "zero":
        data = bytearray(rng.choice((b"", b"\xff", b"\xff\xd8", b"\x89PNG", b"II*\x00")))
    elif kind == "truncate":
        del data[rng.randrange(1, len(data)) :]
    elif kind == "bomb":
        w, h = rng.choice(((30000, 30000), (65535, 65535), (100000, 10), (9000, 9000),
                           (1, 2_000_000)))
        data = bytearray(png_bomb(w, h))
        ext = "png"
        label = f"png bomb {w}x{h}"
    elif kind == "exif" and ext in ("jpg", "tif"):
        base = 0 if ext == "tif" else bytes(data).find(b"Exif\x00\x00") + 6
        if base >= 6 or ext == "tif":
            label += " " + _mutate_ifd(rng, data, base)
    elif kind == "dims":
        if ext == "jpg":
            for marker, at, _ in _jpeg_segments(bytes(data)):
                if marker in (0xC0, 0xC1, 0xC2):
                    struct.pack_into(">HH", data, at + 3, rng.choice((0, 1, 0xFFFF)),
                                     rng.choice((0, 1, 0xFFFF)))
        elif ext == "png":
            w, h = rng.choice(((0x7FFFFFFF, 1), (65535, 65535), (0, 0), (1, 0x7FFFFFFF)))
            struct.pack_into(">II", data, 16, w, h)
            struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
        elif ext == "gif":
            struct.pack_into("<HH", data, 6, 0xFFFF, 0xFFFF)
        else:
            label += " " + _mutate_ifd(rng, data, 0)
    elif kind == "header":
        limit = min(len(data), 1024 if ext != "png" else 128)
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(limit)
            if rng.random() < 0.5:
                data[pos] ^= 1 << rng.randrange(8)
            else:
                data[pos] = rng.choice((0, 0xFF, 0x7F, 0x80))
        if ext == "jpg" and rng.random() < 0.3:  # a segment length that lies
            segments = _jpeg_segments(bytes(data))
            if segments:
                _, at, _ = rng.choice(segments)
                struct.pack_into(">H", data, at, rng.choice((0, 1, 2, 0xFFFF)))
    elif kind == "flip":
        for _ in range(rng.randint(1, 32)):
            pos = rng.randrange(len(data))
            data[pos] ^= 1 << rng.randrange(8)
    elif kind == "wrongext":
        ext = rng.choice(("txt", "jpg", "png", "tif", "gif", "heic", "bin"))
    return MediaCase(f"m{index:05d}.{ext}", bytes(data), label)
