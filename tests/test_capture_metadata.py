"""Capture metadata beyond the EXIF IFDs exifread reads, checked against ExifTool.

Every file is built here: pictures by Pillow/pillow-heif, tags written by the real
exiftool (XMP-only photos, stripped EXIF), damage done by overwriting bytes of a copy,
and the blocks exiftool cannot write (Canon CIFF, APP12 picture info) assembled by hand
and then *read* by exiftool. The oracle is ``exiftool -json -n``: make, model, capture
time and GPS must be the values it reports, GPS within 1e-5 degrees.
"""

from __future__ import annotations

import json
import struct
import subprocess
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pillow_heif
import pytest
from conftest import require_tool
from PIL import Image, PngImagePlugin
from test_analyzers import encode, exiftool_write, procedural, run

from analyzers.exif import ExifAnalyzer
from analyzers.metadata.containers import MAX_XMP_BYTES, locate_blocks

CAPTURE_KEYS = ("make", "model", "datetime_original", "gps_latitude", "gps_longitude",
                "gps_altitude")
#: exiftool names for the capture time, in the order exhibit prefers them
ORACLE_TIME = ("DateTimeOriginal", "CreateDate", "DateCreated")

# (lat, lon, alt) signed: all four hemispheres, one below sea level
PLACES = [
    (52.373056, 4.892222, 2.5),
    (40.689247, -74.044502, 93.0),
    (-33.856784, 151.215297, 12.25),
    (-22.951916, -43.210487, -4.5),
]


def oracle(path: Path) -> dict[str, Any]:
    """Make, model, capture time and GPS as ``exiftool -json -n`` reports them."""
    tool = require_tool("exiftool")
    out = subprocess.run(
        [tool, "-json", "-n", "-Make", "-Model", "-DateTimeOriginal", "-XMP-xmp:CreateDate",
         "-XMP-photoshop:DateCreated", "-GPSLatitude", "-GPSLongitude", "-GPSAltitude",
         str(path)],
        check=True, capture_output=True,
    )
    tags = json.loads(out.stdout)[0]
    return {
        "make": tags.get("Make"), "model": tags.get("Model"),
        "datetime_original": next((str(tags[k]) for k in ORACLE_TIME if k in tags), None),
        "gps_latitude": tags.get("GPSLatitude"), "gps_longitude": tags.get("GPSLongitude"),
        "gps_altitude": tags.get("GPSAltitude"),
    }


def exif_of(path: Path) -> dict[str, Any]:
    """The exif analyzer's findings on one file, run as a worker runs it (no errors)."""
    result = run(path.read_bytes(), name=path.name, names=["filetype", "exif"])
    assert result.errors == [], result.errors
    return result.findings["exif"]


def assert_agrees(found: dict[str, Any], expected: dict[str, Any], fields: set[str]) -> None:
    """Same values as exiftool, which must report exactly ``fields`` (so this can fail)."""
    assert {k for k, v in expected.items() if v is not None} == fields
    for key in ("make", "model", "datetime_original"):
        assert found[key] == expected[key], key
    for key in ("gps_latitude", "gps_longitude", "gps_altitude"):
        if expected[key] is None:
            assert found[key] is None, key
        else:
            assert found[key] == pytest.approx(expected[key], abs=1e-5), key


def xmp_tags(lat: float, lon: float, alt: float) -> list[str]:
    return [
        "-XMP-tiff:Make=Fujifilm", "-XMP-tiff:Model=X-T3",
        "-XMP-exif:DateTimeOriginal=2021:07:04 12:30:45+02:00",
        f"-XMP-exif:GPSLatitude={lat}", f"-XMP-exif:GPSLongitude={lon}",
        f"-XMP-exif:GPSAltitude={abs(alt)}", f"-XMP-exif:GPSAltitudeRef#={int(alt < 0)}",
    ]


def exif_tags(lat: float, lon: float, alt: float) -> list[str]:
    return [
        "-Make=Sony", "-Model=ILCE-7M3", "-DateTimeOriginal=2019:03:14 15:09:26",
        "-Software=GIMP 2.10.18",
        f"-GPSLatitude={abs(lat)}", f"-GPSLatitudeRef={'S' if lat < 0 else 'N'}",
        f"-GPSLongitude={abs(lon)}", f"-GPSLongitudeRef={'W' if lon < 0 else 'E'}",
        f"-GPSAltitude={abs(alt)}", f"-GPSAltitudeRef#={int(alt < 0)}",
    ]


def tagged(tmp_path: Path, *tags: str) -> Path:
    """A small JPEG with EXIF written by exiftool (``tagged_jpeg`` at 320×240)."""
    path = picture(tmp_path, "JPEG", "tagged.jpg", seed=6)
    exiftool_write(path, *tags)
    return path


def picture(tmp_path: Path, fmt: str, name: str, seed: int = 3) -> Path:
    path = tmp_path / name
    params: dict[str, Any] = {"quality": 90} if fmt in ("JPEG", "WEBP", "HEIF") else {}
    path.write_bytes(encode(procedural(seed, (320, 240)), fmt, **params))
    return path


ALL = set(CAPTURE_KEYS)
NO_TIME = ALL - {"datetime_original"}


# --------------------------------------------------------------------------- XMP only


@pytest.mark.parametrize(("lat", "lon", "alt"), PLACES)
def test_xmp_only_jpeg(tmp_path: Path, lat: float, lon: float, alt: float) -> None:
    path = picture(tmp_path, "JPEG", "edited.jpg")
    exiftool_write(path, "-all=")
    exiftool_write(path, *xmp_tags(lat, lon, alt))
    found = exif_of(path)
    assert_agrees(found, oracle(path), ALL)
    assert found["present"] is True
    assert found["datetime_original_iso"] == "2021-07-04T12:30:45"
    assert found["exif_reader"] is None
    assert found["make_source"] == "xmp:tiff:Make"
    assert found["model_source"] == "xmp:tiff:Model"
    assert found["datetime_original_source"] == "xmp:exif:DateTimeOriginal"
    assert found["gps_source"] == "xmp:exif:GPSLatitude"


@pytest.mark.parametrize(("tag", "value", "source"), [
    ("-XMP-xmp:CreateDate", "2020:02:29 23:59:58", "xmp:xmp:CreateDate"),
    ("-XMP-photoshop:DateCreated", "2020:02:29", "xmp:photoshop:DateCreated"),
    ("-XMP-photoshop:DateCreated", "2020:02:29 08:00:01.25-05:00", "xmp:photoshop:DateCreated"),
])
def test_xmp_capture_time_fallbacks(tmp_path: Path, tag: str, value: str, source: str) -> None:
    path = picture(tmp_path, "JPEG", "dated.jpg")
    exiftool_write(path, "-all=")
    exiftool_write(path, f"{tag}={value}")
    found = exif_of(path)
    assert_agrees(found, oracle(path), {"datetime_original"})
    assert found["datetime_original_source"] == source


def test_exif_without_reported_fields_is_still_present(tmp_path: Path) -> None:
    """As before 1.1: EXIF that exifread reads is ``present`` even with none of our fields."""
    path = tagged(tmp_path, "-XResolution=300", "-ResolutionUnit=inches")
    found = exif_of(path)
    assert_agrees(found, oracle(path), set())
    assert found["present"] is True and found["exif_reader"] == "exifread"


def test_exif_wins_over_xmp(tmp_path: Path) -> None:
    """exifread stays primary: XMP only fills what the EXIF IFDs leave empty."""
    path = tagged(tmp_path, "-Make=Canon", "-DateTimeOriginal=2024:05:01 09:15:02")
    exiftool_write(path, "-XMP-tiff:Make=Other", "-XMP-tiff:Model=EOS R5",
                   "-XMP-exif:DateTimeOriginal=1999:01:01 00:00:00")
    found = exif_of(path)
    assert_agrees(found, oracle(path), {"make", "model", "datetime_original"})
    assert (found["make"], found["make_source"]) == ("Canon", "exif")
    assert (found["model"], found["model_source"]) == ("EOS R5", "xmp:tiff:Model")
    assert found["datetime_original_source"] == "exif"
    assert found["exif_reader"] == "exifread"


def test_tiff_with_xmp_packet(tmp_path: Path) -> None:
    path = picture(tmp_path, "TIFF", "scan.tif")
    exiftool_write(path, *xmp_tags(*PLACES[2]))
    found = exif_of(path)
    assert_agrees(found, oracle(path), ALL)
    assert found["make_source"] == "xmp:tiff:Make"


# --------------------------------------------------------------------------- damaged IFDs


def _tiff_start(data: bytes) -> int:
    return data.index(b"Exif\x00\x00") + 6


def _ifd_entry(data: bytes, tiff: int, ifd: int, tag: int) -> int:
    """Absolute position of ``tag``'s 12-byte entry in the IFD at ``ifd`` (TIFF-relative)."""
    endian = "<" if data[tiff : tiff + 2] == b"II" else ">"
    (count,) = struct.unpack_from(endian + "H", data, tiff + ifd)
    for index in range(count):
        pos = tiff + ifd + 2 + 12 * index
        if struct.unpack_from(endian + "H", data, pos)[0] == tag:
            return pos
    raise AssertionError(f"tag 0x{tag:04x} not in the IFD")


def _ifd0(data: bytes, tiff: int) -> tuple[str, int]:
    endian = "<" if data[tiff : tiff + 2] == b"II" else ">"
    return endian, struct.unpack_from(endian + "I", data, tiff + 4)[0]


@pytest.mark.parametrize(("damage", "place"), [("offset", PLACES[1]), ("type", PLACES[2])])
def test_damaged_ifd_entry_read_leniently(tmp_path: Path, damage: str,
                                          place: tuple[float, float, float]) -> None:
    """One bad entry: exifread refuses the block, ExifTool (and exhibit) skip only the entry.

    ``offset``: the Software value points 16 MiB past the block (Pillow's reader stops
    there and loses the EXIF and GPS pointers after it); ``type``: an unknown field type.
    """
    path = tagged(tmp_path, *exif_tags(*place))
    data = bytearray(path.read_bytes())
    tiff = _tiff_start(bytes(data))
    endian, ifd0 = _ifd0(bytes(data), tiff)
    software = _ifd_entry(bytes(data), tiff, ifd0, 0x0131)
    if damage == "offset":
        data[software + 8 : software + 12] = struct.pack(endian + "I", 0x00FFFF00)
    else:
        data[software + 2 : software + 4] = struct.pack(endian + "H", 0x55)
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(bytes(data))
    found = exif_of(damaged)
    assert_agrees(found, oracle(damaged), ALL)
    assert found["exif_reader"] == "lenient"
    assert found["software"] is None
    assert found["make_source"] == found["gps_source"] == "exif"
    assert any(p.startswith("exifread: malformed EXIF") for p in found["problems"])


def test_damaged_exif_sub_ifd_time_from_xmp(tmp_path: Path) -> None:
    """An edited photo whose EXIF sub-IFD is broken; the capture time survives in XMP."""
    path = tagged(tmp_path, *exif_tags(*PLACES[0]))
    exiftool_write(path, "-XMP-exif:DateTimeOriginal=2019:03:14 15:09:26.5+01:00")
    data = bytearray(path.read_bytes())
    tiff = _tiff_start(bytes(data))
    endian, ifd0 = _ifd0(bytes(data), tiff)
    pointer = _ifd_entry(bytes(data), tiff, ifd0, 0x8769)
    (sub,) = struct.unpack_from(endian + "I", data, pointer + 8)
    data[tiff + sub : tiff + sub + 2] = struct.pack(endian + "H", 0x7FFF)  # runs past the end
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(bytes(data))
    found = exif_of(damaged)
    assert_agrees(found, oracle(damaged), ALL)
    assert found["datetime_original"] == "2019:03:14 15:09:26.5+01:00"
    assert found["datetime_original_source"] == "xmp:exif:DateTimeOriginal"
    assert (found["make_source"], found["exif_reader"]) == ("exif", "lenient")


def test_damaged_ifd0_with_nothing_else_is_still_an_error(tmp_path: Path) -> None:
    path = tagged(tmp_path, "-Make=Canon", "-Model=X")
    data = bytearray(path.read_bytes())
    tiff = _tiff_start(bytes(data))
    endian, ifd0 = _ifd0(bytes(data), tiff)
    data[tiff + ifd0 : tiff + ifd0 + 2] = struct.pack(endian + "H", 0x7FFF)
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(bytes(data))
    assert all(v is None for v in oracle(damaged).values())  # ExifTool drops the IFD too
    result = run(bytes(data), name="damaged.jpg", names=["filetype", "exif"])
    assert [e["error"] for e in result.errors] == ["AnalyzerError"]
    assert "exif" not in result.findings


# --------------------------------------------------------------------------- other containers


@pytest.mark.parametrize(("lat", "lon", "alt"), PLACES[:2])
def test_png_exif_chunk(tmp_path: Path, lat: float, lon: float, alt: float) -> None:
    source = tagged(tmp_path, *exif_tags(lat, lon, alt))
    with Image.open(source) as img:
        exif = img.info["exif"]
        path = tmp_path / "shot.png"
        img.save(path, "PNG", exif=exif)
    assert any(kind == b"eXIf" for kind in _png_chunk_types(path.read_bytes()))
    found = exif_of(path)
    assert_agrees(found, oracle(path), ALL)
    assert found["exif_reader"] == "exifread"


def _png_chunk_types(data: bytes) -> list[bytes]:
    from analyzers.metadata.containers import png_chunks

    return [kind for kind, _start, _end in png_chunks(data)]


def test_png_itxt_xmp_written_by_exiftool(tmp_path: Path) -> None:
    path = picture(tmp_path, "PNG", "export.png")
    exiftool_write(path, *xmp_tags(*PLACES[3]))
    assert b"iTXt" in _png_chunk_types(path.read_bytes())
    found = exif_of(path)
    assert_agrees(found, oracle(path), ALL)
    assert found["gps_source"] == "xmp:exif:GPSLatitude"


def test_png_compressed_itxt_xmp(tmp_path: Path) -> None:
    """A zlib-compressed iTXt (Pillow's ``zip=True``): inflated, within the limit."""
    carrier = picture(tmp_path, "JPEG", "carrier.jpg")
    exiftool_write(carrier, "-all=")
    exiftool_write(carrier, *xmp_tags(*PLACES[0]))
    packet = locate_blocks(carrier.read_bytes()).xmp
    assert packet
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", packet.decode("utf-8"), zip=True)
    path = tmp_path / "compressed.png"
    procedural(5, (320, 240)).save(path, "PNG", pnginfo=info)
    found = exif_of(path)
    assert_agrees(found, oracle(path), ALL)


def _webp_with_exif_chunk(webp: bytes, payload: bytes) -> bytes:
    """``webp`` (extended format, with an EXIF chunk) with that chunk's data replaced."""
    start = webp.index(b"EXIF")
    (size,) = struct.unpack_from("<I", webp, start + 4)
    end = start + 8 + size + (size & 1)
    chunk = b"EXIF" + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) & 1)
    body = webp[12:start] + chunk + webp[end:]
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


@pytest.mark.parametrize("prefix", [False, True])
def test_webp_exif_chunk(tmp_path: Path, prefix: bool) -> None:
    """exiftool and Pillow write the TIFF header first (exifread 3.5 misreads that), some
    writers put "Exif\\0\\0" before it; both must give ExifTool's values."""
    path = picture(tmp_path, "WEBP", "web.webp")
    exiftool_write(path, *exif_tags(*PLACES[2]))
    data = path.read_bytes()
    start = data.index(b"EXIF") + 8
    assert data[start : start + 2] in (b"II", b"MM")
    if prefix:
        (size,) = struct.unpack_from("<I", data, start - 4)
        data = _webp_with_exif_chunk(data, b"Exif\x00\x00" + data[start : start + size])
        path.write_bytes(data)
    found = exif_of(path)
    assert_agrees(found, oracle(path), ALL)
    assert found["exif_reader"] == "exifread"


def test_webp_xmp_only(tmp_path: Path) -> None:
    path = picture(tmp_path, "WEBP", "web.webp")
    exiftool_write(path, *xmp_tags(*PLACES[1]))
    found = exif_of(path)
    assert_agrees(found, oracle(path), ALL)
    assert found["make_source"] == "xmp:tiff:Make"


def _heif(tmp_path: Path, **metadata: bytes) -> Path:
    pillow_heif.register_heif_opener()
    path = tmp_path / "phone.heic"
    procedural(9, (256, 192)).save(path, "HEIF", quality=80, **metadata)
    return path


def test_heic_exif(tmp_path: Path) -> None:
    source = tagged(tmp_path, *exif_tags(*PLACES[3]))
    with Image.open(source) as img:
        exif = img.info["exif"]
    path = _heif(tmp_path, exif=exif)
    found = exif_of(path)
    assert_agrees(found, oracle(path), ALL)
    assert found["exif_reader"] == "exifread"


def test_heic_xmp_only(tmp_path: Path) -> None:
    carrier = picture(tmp_path, "JPEG", "carrier.jpg")
    exiftool_write(carrier, "-all=")
    exiftool_write(carrier, *xmp_tags(*PLACES[2]))
    packet = locate_blocks(carrier.read_bytes()).xmp
    assert packet
    path = _heif(tmp_path, xmp=packet)
    found = exif_of(path)
    assert_agrees(found, oracle(path), ALL)
    assert found["datetime_original_source"] == "xmp:exif:DateTimeOriginal"


# --------------------------------------------------------------------------- vendor blocks


def ciff_heap(entries: list[tuple[int, bytes]]) -> bytes:
    """A little-endian CIFF heap: values, then the table, then the table's offset."""
    values, records = b"", []
    for tag, value in entries:
        records.append(struct.pack("<HII", tag, len(value), len(values)))
        values += value + b"\x00" * (len(value) & 1)
    table = struct.pack("<H", len(records)) + b"".join(records)
    return values + table + struct.pack("<I", len(values))


def with_segment(data: bytes, marker: int, payload: bytes) -> bytes:
    """``data`` (a JPEG) with one more marker segment right after SOI."""
    return data[:2] + struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload + data[2:]


CIFF_TIME = 966_917_227  # 2000-08-22 04:07:07 UTC


def test_canon_ciff_in_jpeg(tmp_path: Path) -> None:
    """Make, model and time only in an APP0 CIFF heap, nested as in Canon's files."""
    inner = ciff_heap([
        (0x080A, b"Canon\x00Canon PowerShot S10\x00"),
        (0x180E, struct.pack("<IiI", CIFF_TIME, 0, 0)),
    ])
    root = ciff_heap([(0x0805, b"a comment\x00"), (0x300A, inner)])
    payload = b"II" + struct.pack("<I", 26) + b"HEAPJPGM" + b"\x00" * 12 + root
    path = tmp_path / "powershot.jpg"
    path.write_bytes(with_segment(encode(procedural(4, (320, 240)), "JPEG"), 0xE0, payload))
    found = exif_of(path)
    assert_agrees(found, oracle(path), {"make", "model", "datetime_original"})
    assert found["datetime_original"] == "2000:08:22 04:07:07"
    assert found["make_source"] == found["datetime_original_source"] == "ciff"


def test_canon_crw_raw_file(tmp_path: Path) -> None:
    """A CRW is all CIFF: libmagic names it image/x-canon-crw and the exif analyzer reads it."""
    inner = ciff_heap([
        (0x080A, b"Canon\x00Canon EOS D30\x00"),
        (0x180E, struct.pack("<IiI", 1_000_000_000, 0, 0)),
    ])
    root = ciff_heap([(0x2005, b"\x00" * 64), (0x300A, inner)])  # 0x2005: raw data
    path = tmp_path / "CRW_0001.CRW"
    path.write_bytes(b"II" + struct.pack("<I", 26) + b"HEAPCCDR" + struct.pack("<I", 0x10002)
                     + b"\x00" * 8 + root)
    found = exif_of(path)
    assert_agrees(found, oracle(path), {"make", "model", "datetime_original"})
    assert found["model_source"] == "ciff"


def test_ciff_loop_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    heap = bytearray(ciff_heap([(0x300A, b"\x00" * 16)]))
    # the sub-heap's table offset points at the parent's table: a cycle
    table = struct.unpack_from("<I", heap, len(heap) - 4)[0]
    heap[12:16] = struct.pack("<I", table)
    payload = b"II" + struct.pack("<I", 26) + b"HEAPJPGM" + b"\x00" * 12 + bytes(heap)
    data = with_segment(encode(procedural(4, (64, 48)), "JPEG"), 0xE0, payload)
    found = ExifAnalyzer().analyze(data, None, {})  # type: ignore[arg-type]
    assert found["present"] is False
    assert any(p.startswith("CIFF:") for p in found["problems"])


def test_app12_picture_info(tmp_path: Path) -> None:
    payload = (b"[picture info]\r\nTimeDate=%d\r\nType=C960Z\r\nshtr=8000\r\n"
               b"[camera info]\r\nID=OLYMPUS DIGITAL CAMERA\r\n" % CIFF_TIME)
    path = tmp_path / "olympus.jpg"
    path.write_bytes(with_segment(encode(procedural(4, (320, 240)), "JPEG"), 0xEC, payload))
    found = exif_of(path)
    assert_agrees(found, oracle(path), {"datetime_original"})
    assert found["datetime_original_source"] == "app12-picture-info"


def reconyx_note(words: list[int], version: bytes = b"\x03\x00") -> bytes:
    """A HyperFire maker note: version 0xf101, firmware words, then the time at word 0x0b."""
    head = b"\x01\xf1" + version + b"\x00" * (0x16 - 4)
    return head + struct.pack("<6H", *words) + b"\x00" * 32


@pytest.mark.parametrize("swapped", [False, True])
def test_reconyx_trail_camera_maker_note(tmp_path: Path, swapped: bool) -> None:
    """A trail camera with make/model in IFD0 but its capture time only in the maker note."""
    words = [7, 6, 5, 11, 30, 2019]  # second, minute, hour, month, day, year
    if swapped:  # firmware that writes these words big-endian
        words = [struct.unpack("<H", struct.pack(">H", w))[0] for w in words]
    exif = Image.Exif()
    exif[0x010F] = "RECONYX"
    exif[0x0110] = "HC600 HYPERFIRE"
    exif.get_ifd(0x8769)[0x927C] = reconyx_note(words)
    path = tmp_path / "trail.jpg"
    procedural(8, (320, 240)).save(path, "JPEG", exif=exif)
    found = exif_of(path)
    assert_agrees(found, oracle(path), {"make", "model", "datetime_original"})
    assert found["datetime_original"] == "2019:11:30 05:06:07"
    assert found["datetime_original_source"] == "makernote:reconyx"


# --------------------------------------------------------------------------- hostile XMP


def _jpeg_with_xmp(packet: bytes) -> bytes:
    payload = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    return with_segment(encode(procedural(4, (64, 48)), "JPEG"), 0xE1, payload)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/"><tiff:Make>&h;</tiff:Make>
</rdf:Description></rdf:RDF></x:xmpmeta>"""

EXTERNAL = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/hostname">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/"><tiff:Make>&e;</tiff:Make>
</rdf:Description></rdf:RDF></x:xmpmeta>"""


@pytest.mark.parametrize(("packet", "message"), [
    (BILLION_LAUGHS, "XMP refused: DTDForbidden"),
    (EXTERNAL, "XMP refused: DTDForbidden"),
    (b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF", "XMP is not well-formed XML"),
    (b"\xff\xfe\x00garbage", "XMP is not well-formed XML"),
    (b'<?xml version="1.0" encoding="bogus"?><a/>', "XMP is not well-formed XML"),
])
def test_hostile_xmp_is_a_problem_not_a_hang(packet: bytes, message: str) -> None:
    data = _jpeg_with_xmp(packet)
    started = time.perf_counter()
    result = run(data, name="hostile.jpg", names=["filetype", "exif"])
    assert time.perf_counter() - started < 5
    assert result.errors == []
    found = result.findings["exif"]
    assert found["present"] is False and found["make"] is None
    assert found["problems"] and found["problems"][0].startswith(message), found["problems"]


def test_hostile_xmp_with_damaged_exif_is_one_error_record(tmp_path: Path) -> None:
    path = tagged(tmp_path, "-Make=Canon")
    data = bytearray(path.read_bytes())
    tiff = _tiff_start(bytes(data))
    endian, ifd0 = _ifd0(bytes(data), tiff)
    data[tiff + ifd0 : tiff + ifd0 + 2] = struct.pack(endian + "H", 0x7FFF)
    data = bytearray(with_segment(bytes(data), 0xE1,
                                  b"http://ns.adobe.com/xap/1.0/\x00" + BILLION_LAUGHS))
    result = run(bytes(data), name="both.jpg", names=["filetype", "exif"])
    assert len(result.errors) == 1
    assert "malformed EXIF" in result.errors[0]["message"]
    assert "DTDForbidden" in result.errors[0]["message"]


def _png_with_chunk(kind: bytes, payload: bytes) -> bytes:
    png = encode(procedural(4, (64, 48)), "PNG")
    chunk = struct.pack(">I", len(payload)) + kind + payload
    chunk += struct.pack(">I", zlib.crc32(kind + payload))
    return png[:33] + chunk + png[33:]  # after IHDR


def test_huge_xmp_is_not_parsed() -> None:
    packet = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>" + b" " * (MAX_XMP_BYTES + 1) + b"</x:xmpmeta>"
    data = _png_with_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + packet)
    found = ExifAnalyzer().analyze(data, None, {})  # type: ignore[arg-type]
    assert found["present"] is False
    assert "not parsed" in found["problems"][0]


def test_xmp_zip_bomb_is_bounded() -> None:
    """64 MiB of spaces compressed to ~64 KiB: inflation stops at the XMP limit."""
    bomb = zlib.compress(b" " * (64 << 20), 9)
    data = _png_with_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + bomb)
    tracemalloc.start()
    try:
        found = ExifAnalyzer().analyze(data, None, {})  # type: ignore[arg-type]
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "inflates to more than" in found["problems"][0]
    assert peak < 4 * MAX_XMP_BYTES


def test_xmp_is_found_without_reading_the_pixels() -> None:
    """Bounded search: XMP after the scan data of a JPEG is not looked for (not a segment)."""
    data = encode(procedural(4, (64, 48)), "JPEG") + b"http://ns.adobe.com/xap/1.0/\x00<x/>"
    assert locate_blocks(data).xmp is None
    assert locate_blocks(_jpeg_with_xmp(b"<x/>")).xmp == b"<x/>"


def test_bad_xmp_coordinate_drops_only_the_position(tmp_path: Path) -> None:
    packet = (b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/"
              b"1999/02/22-rdf-syntax-ns#'><rdf:Description xmlns:exif='http://ns.adobe.com/"
              b"exif/1.0/' exif:DateTimeOriginal='2022-01-02T03:04:05' exif:GPSLatitude='north'"
              b" exif:GPSLongitude='4,53.5E'/></rdf:RDF></x:xmpmeta>")
    path = tmp_path / "bad-gps.jpg"
    path.write_bytes(_jpeg_with_xmp(packet))
    found = exif_of(path)
    expected = oracle(path)
    assert found["datetime_original"] == expected["datetime_original"] == "2022:01:02 03:04:05"
    # ExifTool cannot read the latitude either (empty) and still reports the longitude
    # alone; half a position places nothing, so exhibit reports neither and says why
    assert expected["gps_latitude"] == ""
    assert expected["gps_longitude"] == pytest.approx(4.891667, abs=1e-5)
    assert found["gps_latitude"] is found["gps_longitude"] is None
    assert found["problems"] == ["XMP GPSLatitude is not a GPS coordinate: 'north'"]


def test_xmp_attribute_form_and_alt_lists() -> None:
    """Properties as rdf:Description attributes, and an rdf:Alt model name."""
    packet = (b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/"
              b"1999/02/22-rdf-syntax-ns#'><rdf:Description xmlns:tiff='http://ns.adobe.com/"
              b"tiff/1.0/' tiff:Make='Ricoh'><tiff:Model><rdf:Alt><rdf:li xml:lang='x-default'>"
              b"GR III</rdf:li></rdf:Alt></tiff:Model></rdf:Description></rdf:RDF></x:xmpmeta>")
    found = ExifAnalyzer().analyze(_jpeg_with_xmp(packet), None, {})  # type: ignore[arg-type]
    assert (found["make"], found["make_source"]) == ("Ricoh", "xmp:tiff:Make")
    assert found["model"] == "GR III"
