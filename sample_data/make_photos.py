"""Procedural media for the sample evidence image: camera JPEGs with real EXIF, and more.

Run by ``generate.sh`` with the project venv's Python. Every picture is drawn from a
fixed seed (gradients, shapes, low-resolution noise), so no copyrighted material is
involved and the same Pillow/libjpeg build gives the same bytes on every run. EXIF is
written by ``exiftool`` (a real writer, so our EXIF analyzer is tested against files
shaped like a camera's, not like our own reader's expectations).

Usage: make_photos.py OUTDIR
  OUTDIR/camera/IMG_000N.JPG   the camera card's photos (IMG_0007 is deleted later)
  OUTDIR/data/holiday.png      a PNG for the data partition
  OUTDIR/data/vacation.txt     a JPEG with the wrong extension
  OUTDIR/known/KNOWN_*.jpg     "known images": listed in the sample hash sets, NOT on the
                               image themselves
  OUTDIR/saved/*               altered copies of the known images, for the data partition
                               (resized, recompressed, mirrored, PNG-converted)
"""

from __future__ import annotations

import calendar
import os
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

JPEG_QUALITY = 72
THUMB_SIZE = (160, 120)


@dataclass(frozen=True)
class Photo:
    """One camera photo: its pixels' seed and the EXIF a camera would have written."""

    name: str
    size: tuple[int, int]
    seed: int
    make: str
    model: str
    serial: str
    taken: str  # EXIF "YYYY:MM:DD HH:MM:SS", also the file's mtime (read as UTC)
    software: str
    orientation: int
    gps: tuple[float, float, float] | None  # signed lat, signed lon, signed altitude (m)
    thumbnail: bool


PHOTOS: tuple[Photo, ...] = (
    Photo("IMG_0001.JPG", (1600, 1200), 1, "Canon", "Canon EOS 80D", "183025001234",
          "2024:05:01 09:15:02", "Firmware Version 1.0.3", 1,
          (52.373056, 4.892222, 2.5), True),           # Amsterdam: N, E
    Photo("IMG_0002.JPG", (1024, 768), 2, "Canon", "Canon EOS 80D", "183025001234",
          "2024:05:02 14:30:45", "Firmware Version 1.0.3", 6,
          (-22.951944, -43.210556, 710.0), True),      # Rio de Janeiro: S, W
    Photo("IMG_0003.JPG", (800, 600), 3, "NIKON CORPORATION", "NIKON D750", "3012345",
          "2024:06:11 18:02:10", "Ver.1.15", 1,
          None, True),                                 # no GPS at all
    Photo("IMG_0004.JPG", (640, 480), 4, "Apple", "iPhone 12", "F17ZX0EXHIB1",
          "2024:07:04 21:45:00", "17.5.1", 3,
          (40.689167, -74.044444, 10.0), False),       # New York: N, W; no thumbnail
    Photo("IMG_0005.JPG", (1280, 960), 5, "SONY", "ILCE-7M3", "4567890",
          "2024:08:15 07:05:33", "ILCE-7M3 v4.01", 1,
          (-33.856784, 151.215297, 5.0), True),        # Sydney: S, E
    Photo("IMG_0006.JPG", (1600, 1200), 6, "SONY", "ILCE-7M3", "4567890",
          "2024:09:20 12:00:00", "ILCE-7M3 v4.01", 8,
          (31.559, 35.4732, -430.5), True),            # Dead Sea: below sea level
    Photo("IMG_0007.JPG", (800, 600), 7, "Canon", "Canon EOS 80D", "183025001234",
          "2024:10:31 23:59:59", "Firmware Version 1.0.3", 1,
          (48.858222, 2.2945, 35.0), True),            # Paris; deleted from the card
)


def draw_picture(size: tuple[int, int], seed: int) -> Image.Image:
    """A deterministic, photo-like RGB picture: gradient sky, shapes, soft noise."""
    rng = random.Random(seed)
    width, height = size
    # Two-colour vertical gradient, tilted by a horizontal one.
    vertical = Image.linear_gradient("L").resize(size)
    horizontal = Image.linear_gradient("L").rotate(90).resize(size)
    top = tuple(rng.randrange(40, 220) for _ in range(3))
    bottom = tuple(rng.randrange(20, 200) for _ in range(3))
    base = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top),
                           vertical)
    base = Image.blend(base, Image.merge("RGB", (horizontal,) * 3), 0.15)

    draw = ImageDraw.Draw(base)
    for _ in range(12):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1 = x0 + rng.randrange(width // 10, width // 3)
        y1 = y0 + rng.randrange(height // 10, height // 3)
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    draw.text((width // 20, height // 20), f"exhibit sample #{seed}", fill=(255, 255, 255))

    # Sensor-like noise, drawn small and scaled up so it stays cheap to compress.
    nw, nh = max(1, width // 8), max(1, height // 8)
    noise = Image.frombytes("RGB", (nw, nh), rng.randbytes(nw * nh * 3))
    noise = noise.resize(size, Image.Resampling.BICUBIC)
    base = Image.blend(base, noise, 0.12)
    return base.filter(ImageFilter.SMOOTH)


def exif_epoch(taken: str) -> int:
    """An EXIF date string read as UTC, as seconds since the epoch."""
    date, time = taken.split(" ")
    fields = [int(p) for p in date.split(":")] + [int(p) for p in time.split(":")]
    return calendar.timegm((*fields, 0, 0, 0))


def exiftool_args(photo: Photo, thumb: Path | None) -> list[str]:
    """exiftool arguments that give the photo the EXIF block its camera would write."""
    args = [
        "-n",  # numeric values: Orientation, GPS refs and altitude ref as written
        f"-EXIF:Make={photo.make}",
        f"-EXIF:Model={photo.model}",
        f"-EXIF:SerialNumber={photo.serial}",  # tag 0xA431, BodySerialNumber
        f"-EXIF:DateTimeOriginal={photo.taken}",
        f"-EXIF:CreateDate={photo.taken}",
        f"-EXIF:ModifyDate={photo.taken}",
        f"-EXIF:Software={photo.software}",
        f"-EXIF:Orientation={photo.orientation}",
        f"-EXIF:ExifImageWidth={photo.size[0]}",
        f"-EXIF:ExifImageHeight={photo.size[1]}",
        "-EXIF:ExposureTime=0.004",
        "-EXIF:FNumber=5.6",
        "-EXIF:ISO=200",
    ]
    if photo.gps is not None:
        lat, lon, alt = photo.gps
        args += [
            "-GPS:GPSVersionID=2 3 0 0",
            f"-GPS:GPSLatitude={abs(lat)}",
            f"-GPS:GPSLatitudeRef={'N' if lat >= 0 else 'S'}",
            f"-GPS:GPSLongitude={abs(lon)}",
            f"-GPS:GPSLongitudeRef={'E' if lon >= 0 else 'W'}",
            f"-GPS:GPSAltitude={abs(alt)}",
            f"-GPS:GPSAltitudeRef={0 if alt >= 0 else 1}",
        ]
    if thumb is not None:
        args.append(f"-ThumbnailImage<={thumb}")
    return args


def make_photo(photo: Photo, outdir: Path, workdir: Path) -> Path:
    """Draw, save and tag one photo; its mtime is its DateTimeOriginal."""
    path = outdir / photo.name
    picture = draw_picture(photo.size, photo.seed)
    picture.save(path, "JPEG", quality=JPEG_QUALITY, optimize=True)
    thumb: Path | None = None
    if photo.thumbnail:
        thumb = workdir / f"thumb_{photo.seed}.jpg"
        picture.resize(THUMB_SIZE, Image.Resampling.LANCZOS).save(thumb, "JPEG", quality=70)
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", *exiftool_args(photo, thumb), str(path)],
        check=True,
    )
    stamp = exif_epoch(photo.taken)
    os.utime(path, (stamp, stamp))
    return path


def make_data_pictures(outdir: Path) -> None:
    """The data partition's pictures: a PNG, and a JPEG hiding behind a .txt name."""
    png = draw_picture((320, 240), 101).quantize(colors=64)
    png.save(outdir / "holiday.png", "PNG", optimize=True)
    draw_picture((400, 300), 102).save(outdir / "vacation.txt", "JPEG", quality=70)


@dataclass(frozen=True)
class KnownImage:
    """A picture a (fictional) national hash set lists, and how the media altered it."""

    name: str
    seed: int
    size: tuple[int, int]
    category: int
    series: str


KNOWN: tuple[KnownImage, ...] = (
    KnownImage("KNOWN_A1.jpg", 201, (1024, 768), 1, "Sample series A"),
    KnownImage("KNOWN_A2.jpg", 202, (1024, 768), 1, "Sample series A"),
    KnownImage("KNOWN_B1.jpg", 203, (800, 600), 2, "Sample series B"),
)
# Listed in the sets but with no copy anywhere on the image (must match nothing).
UNRELATED_KNOWN = KnownImage("KNOWN_C1.jpg", 299, (800, 600), 3, "Sample series C")

# (file on the data partition, known image, what was done to it)
ALTERED: tuple[tuple[str, str, str], ...] = (
    ("Saved/IMG_small.jpg", "KNOWN_A1.jpg", "resized to 50%, JPEG q=85"),
    ("Saved/IMG_recompressed.jpg", "KNOWN_A1.jpg", "re-encoded at JPEG q=30"),
    ("Saved/IMG_mirrored.jpg", "KNOWN_A2.jpg", "mirrored left-right, JPEG q=85"),
    ("Saved/converted.png", "KNOWN_B1.jpg", "converted to PNG, resized to 75%"),
)


def make_known_and_altered(outdir: Path) -> None:
    """The known originals (kept off the image) and their altered copies (put on it)."""
    known_dir, saved = outdir / "known", outdir / "saved"
    known_dir.mkdir(parents=True, exist_ok=True)
    saved.mkdir(parents=True, exist_ok=True)
    pictures = {}
    for known in (*KNOWN, UNRELATED_KNOWN):
        picture = draw_picture(known.size, known.seed)
        picture.save(known_dir / known.name, "JPEG", quality=90)
        pictures[known.name] = Image.open(known_dir / known.name).convert("RGB")
    for target, source, _ in ALTERED:
        picture = pictures[source]
        name = Path(target).name
        if "small" in name:
            picture.resize((picture.width // 2, picture.height // 2),
                           Image.Resampling.LANCZOS).save(saved / name, "JPEG", quality=85)
        elif "recompressed" in name:
            picture.save(saved / name, "JPEG", quality=30)
        elif "mirrored" in name:
            picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(saved / name, "JPEG",
                                                                     quality=85)
        else:
            picture.resize((picture.width * 3 // 4, picture.height * 3 // 4),
                           Image.Resampling.LANCZOS).quantize(colors=256).save(
                saved / name, "PNG", optimize=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    if shutil.which("exiftool") is None:
        print("exiftool is required (apt-get install libimage-exiftool-perl)", file=sys.stderr)
        return 1
    out = Path(argv[1])
    camera, data = out / "camera", out / "data"
    camera.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for photo in PHOTOS:
            make_photo(photo, camera, Path(work))
    make_data_pictures(data)
    make_known_and_altered(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
