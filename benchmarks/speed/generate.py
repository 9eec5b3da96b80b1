"""Build the speed-benchmark images, reproducibly from a seed, cached outside the repo.

Four images, each a bare ext4 filesystem (no partition table) made with ``mke2fs -d``
from a generated tree, the same Debian tool the sample data uses:

- ``bulk``: ~300 files of 1–50 MB (log-uniform, skewed small), ≥ 2 GiB in total; a third
  incompressible (random), a third compressible text, a third mixed blocks.
- ``photos``: ≥ 5,000 JPEGs of 1–12 MP with EXIF (camera, time, serial, GPS on some),
  made of a smooth random scene plus sensor-like noise so they compress like phone
  photos (~0.25 byte per pixel at quality 90), and 10 % as many PNG screenshots.
- ``many-small``: ≥ 100,000 files of 0–16 KiB (text and binary) in trees 2–9 deep.
- ``ci``: a small mix of the three, for the regression test (seconds to build).

Every file is a pure function of (seed, image, index): generation resumes where an
interrupted run stopped (files already of the right size are kept), shows progress,
and a finished tree and image are reused. ``--scale`` makes documented smaller (or
larger) variants with their own cache directory. The cache lives in
``$EXHIBIT_BENCH_CACHE`` or ``~/.cache/exhibit-bench``.

Usage: ``python benchmarks/speed/generate.py bulk photos many-small [--scale 0.1]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

DEFAULT_SEED = 20261128
FAKE_TIME = 1733011200  # 2024-12-01 00:00:00 UTC, as in sample_data/generate.sh
IMAGES = ("bulk", "photos", "many-small", "ci")
MB = 1_000_000

_VOCABULARY = (
    "the of evidence seized device report examiner invoice meeting address transfer "
    "account password photo message contact schedule delivery payment location phone "
    "case notes draft final review order customer shipment backup server login error "
    "warning info debug request response user admin session token file folder"
)
WORDS = _VOCABULARY.split()


def cache_root() -> Path:
    """Where images are kept: ``$EXHIBIT_BENCH_CACHE`` or ``~/.cache/exhibit-bench``."""
    env = os.environ.get("EXHIBIT_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "exhibit-bench"


@dataclass(frozen=True)
class Spec:
    """One file of a benchmark tree: where it goes and how to make its bytes."""

    path: str
    kind: str  # random | text | mixed | binary | empty | jpeg | png
    size: int  # bytes for data files; 0 for images (set by the encoder)
    seed: int
    width: int = 0
    height: int = 0


@dataclass
class Manifest:
    """What an image holds: counts the runner divides by."""

    name: str
    scale: float
    seed: int
    files: int
    bytes: int
    images: int
    directories: int
    image_path: str
    image_bytes: int
    generator_seconds: float
    tools: dict[str, str]


# -- file contents ---------------------------------------------------------------------


def _text(rng: np.random.Generator, size: int) -> bytes:
    """Log-like lines from a small vocabulary: compresses like real text (~4:1)."""
    if size == 0:
        return b""
    words = np.array(WORDS)
    out: list[str] = []
    total = 0
    line_no = int(rng.integers(0, 10_000))
    # A block of ~64 KiB of lines is generated and then varied, so 50 MB stays cheap.
    while total < min(size, 1 << 16):
        n = int(rng.integers(4, 14))
        line = f"{line_no:08d} " + " ".join(words[rng.integers(0, len(words), n)]) + "\n"
        out.append(line)
        total += len(line)
        line_no += 1
    block = "".join(out).encode()
    if len(block) >= size:
        return block[:size]
    parts = []
    have = 0
    i = 0
    while have < size:
        part = block.replace(b"0", str(i % 10).encode(), 3)
        parts.append(part)
        have += len(part)
        i += 1
    return b"".join(parts)[:size]


def _data(spec: Spec) -> bytes:
    rng = np.random.default_rng(spec.seed)
    if spec.kind in ("random", "binary"):
        return rng.bytes(spec.size)
    if spec.kind == "text":
        return _text(rng, spec.size)
    if spec.kind == "empty":
        return b""
    if spec.kind == "mixed":  # 1 MiB blocks: random, text or zeros
        blocks = []
        left = spec.size
        while left > 0:
            n = min(left, 1 << 20)
            pick = int(rng.integers(0, 3))
            blocks.append(rng.bytes(n) if pick == 0 else _text(rng, n) if pick == 1
                          else bytes(n))
            left -= n
        return b"".join(blocks)
    raise ValueError(f"not a data kind: {spec.kind}")


def _scene(rng: np.random.Generator, width: int, height: int):  # -> PIL.Image.Image
    """A smooth random scene with shapes plus fixed-pattern noise: photo-like entropy."""
    from PIL import Image, ImageChops, ImageDraw

    low = rng.integers(0, 256, (max(6, height // 48), max(8, width // 48), 3), dtype=np.uint8)
    img = Image.fromarray(low).resize((max(1, width // 4), max(1, height // 4)),
                                      Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width // 4)), int(rng.integers(0, height // 4))
        x1 = x0 + int(rng.integers(5, max(6, width // 8)))
        y1 = y0 + int(rng.integers(5, max(6, height // 8)))
        draw.ellipse([x0, y0, x1, y1], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    img = img.resize((width, height), Image.Resampling.BILINEAR)
    tile = Image.fromarray(rng.integers(0, 21, (509, 509, 3), dtype=np.uint8))
    noise = Image.new("RGB", (width, height))
    for y in range(0, height, 509):
        for x in range(0, width, 509):
            noise.paste(tile, (x, y))
    return ImageChops.add(img, noise, 1.0, -10)


CAMERAS = (("Canon", "Canon EOS 80D"), ("NIKON CORPORATION", "NIKON D7500"),
           ("Apple", "iPhone 13"), ("samsung", "SM-G991B"), ("SONY", "ILCE-7M3"))


def _jpeg(spec: Spec) -> bytes:
    import io

    from PIL import Image

    rng = np.random.default_rng(spec.seed)
    img = _scene(rng, spec.width, spec.height)
    make, model = CAMERAS[int(rng.integers(0, len(CAMERAS)))]
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    exif[0x0131] = "exhibit-bench 1.0"
    exif[0x0112] = 1
    day = int(rng.integers(0, 365 * 3))
    stamp = time.strftime("%Y:%m:%d %H:%M:%S", time.gmtime(1_600_000_000 + day * 86400
                                                          + int(rng.integers(0, 86400))))
    exif[0x0132] = stamp
    ifd = exif.get_ifd(0x8769)
    ifd[0x9003] = stamp
    ifd[0xA431] = f"{int(rng.integers(10**8, 10**9))}"
    if rng.random() < 0.4:
        gps = exif.get_ifd(0x8825)
        gps[1] = "N" if rng.random() < 0.7 else "S"
        gps[2] = (float(rng.integers(0, 80)), float(rng.integers(0, 60)), 12.5)
        gps[3] = "E" if rng.random() < 0.5 else "W"
        gps[4] = (float(rng.integers(0, 180)), float(rng.integers(0, 60)), 30.25)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=int(rng.integers(85, 96)), exif=exif.tobytes())
    return out.getvalue()


def _png(spec: Spec) -> bytes:
    """A screenshot-like PNG: flat panels, text-like rows, a photo-like inset."""
    import io

    from PIL import Image, ImageDraw

    rng = np.random.default_rng(spec.seed)
    w, h = spec.width, spec.height
    img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(200, 256, 3)))
    draw = ImageDraw.Draw(img)
    for y in range(10, h - 10, 18):
        x = 10
        while x < w - 60:
            n = int(rng.integers(10, 60))
            draw.rectangle([x, y, x + n, y + 9], fill=tuple(int(v) for v in
                                                                rng.integers(0, 90, 3)))
            x += n + int(rng.integers(4, 12))
    iw, ih = w // 3, h // 3
    img.paste(_scene(rng, iw, ih), (w - iw - 10, 10))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def content(spec: Spec) -> bytes:
    if spec.kind == "jpeg":
        return _jpeg(spec)
    if spec.kind == "png":
        return _png(spec)
    return _data(spec)


# -- tree plans ------------------------------------------------------------------------


def _bulk(rng: np.random.Generator, seed: int, scale: float) -> Iterator[Spec]:
    target = int(2.2 * (1 << 30) * scale)
    total = i = 0
    kinds = ("random", "text", "mixed")
    ext = {"random": "bin", "text": "log", "mixed": "dat"}
    while total < target:
        # log-uniform skewed towards the small end (u²): ~300 files, mean ~8 MB
        u = rng.uniform() ** 2
        size = int(math.exp(math.log(1 * MB) + u * (math.log(50 * MB) - math.log(1 * MB))))
        kind = kinds[i % 3]
        yield Spec(f"bulk/d{i // 50:02d}/file{i:05d}.{ext[kind]}", kind, size, seed + i)
        total += size
        i += 1


MEGAPIXELS = ((1280, 800), (1600, 1200), (2048, 1536), (2592, 1944), (3264, 2448),
              (4032, 3024))
MP_WEIGHTS = (0.25, 0.25, 0.2, 0.15, 0.1, 0.05)


def _photos(rng: np.random.Generator, seed: int, scale: float, count: int = 5000
            ) -> Iterator[Spec]:
    n = max(1, round(count * scale))
    for i in range(n):
        w, h = MEGAPIXELS[int(rng.choice(len(MEGAPIXELS), p=MP_WEIGHTS))]
        if rng.random() < 0.2:
            w, h = h, w
        yield Spec(f"DCIM/{100 + i // 999}CAMRA/IMG_{i:05d}.JPG", "jpeg", 0, seed + i, w, h)
    for i in range(max(1, n // 10)):
        w, h = ((1920, 1080), (1280, 720), (2560, 1440))[i % 3]
        yield Spec(f"Pictures/Screenshots/Screenshot_{i:05d}.png", "png", 0,
                   seed + 1_000_000 + i, w, h)


def _many_small(rng: np.random.Generator, seed: int, scale: float, count: int = 100_000
                ) -> Iterator[Spec]:
    n = max(1, round(count * scale))
    dirs: list[str] = []
    for d in range(max(1, n // 100)):
        depth = int(rng.integers(2, 10))
        parts = [f"l{k}_{int(rng.integers(0, 4))}" for k in range(depth - 1)]
        dirs.append("/".join(["tree", *parts, f"d{d:05d}"]))
    for i in range(n):
        r = rng.random()
        kind = "empty" if r < 0.02 else "text" if r < 0.62 else "binary"
        size = 0 if kind == "empty" else int(rng.integers(1, 16 * 1024 + 1))
        ext = {"empty": "tmp", "text": ("txt", "log", "csv", "json", "py")[i % 5],
               "binary": ("bin", "dat", "db", "idx")[i % 4]}[kind]
        yield Spec(f"{dirs[i % len(dirs)]}/f{i:06d}.{ext}", kind, size, seed + i)


def _ci(rng: np.random.Generator, seed: int, scale: float) -> Iterator[Spec]:
    """Small enough for a test (a few seconds of exhibit), all three kinds of work."""
    for i in range(max(1, round(6 * scale))):
        kind = ("random", "text", "mixed")[i % 3]
        yield Spec(f"bulk/file{i:03d}.{kind}", kind, int(rng.integers(2 * MB, 12 * MB)),
                   seed + i)
    for i in range(max(1, round(40 * scale))):
        w, h = MEGAPIXELS[int(rng.choice(3))]
        yield Spec(f"DCIM/100CAMRA/IMG_{i:05d}.JPG", "jpeg", 0, seed + 1000 + i, w, h)
    yield from (Spec(s.path.replace("tree/", "small/"), s.kind, s.size, s.seed + 5000)
                for s in _many_small(rng, seed, scale, count=600))


PLANS: dict[str, Callable[..., Iterator[Spec]]] = {
    "bulk": _bulk, "photos": _photos, "many-small": _many_small, "ci": _ci,
}


def plan(name: str, seed: int = DEFAULT_SEED, scale: float = 1.0) -> list[Spec]:
    """The files of image ``name``: a pure function of (name, seed, scale)."""
    if name not in PLANS:
        raise ValueError(f"unknown benchmark image {name!r}; choose from {', '.join(IMAGES)}")
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    rng = np.random.default_rng([seed, IMAGES.index(name)])
    return list(PLANS[name](rng, seed * 1000 + IMAGES.index(name) * 10_000_000, scale))


# -- building --------------------------------------------------------------------------


def image_dir(name: str, scale: float = 1.0, seed: int = DEFAULT_SEED,
              root: Path | None = None) -> Path:
    label = name if scale == 1.0 else f"{name}-x{scale:g}"
    if seed != DEFAULT_SEED:
        label += f"-seed{seed}"
    return (root or cache_root()) / label


def _write(args: tuple[Spec, str]) -> int:
    spec, root = args
    path = Path(root) / spec.path
    if path.exists() and spec.kind not in ("jpeg", "png") and path.stat().st_size == spec.size:
        return spec.size
    if path.exists() and spec.kind in ("jpeg", "png") and path.stat().st_size > 0:
        return path.stat().st_size
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content(spec)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.utime(tmp, (FAKE_TIME, FAKE_TIME))
    tmp.replace(path)
    return len(data)


def _tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError:
        return "missing"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def build(name: str, scale: float = 1.0, seed: int = DEFAULT_SEED, root: Path | None = None,
          jobs: int | None = None, progress: bool = True) -> Manifest:
    """Generate (or reuse) the tree and the ext4 image; return the manifest."""
    where = image_dir(name, scale, seed, root)
    manifest_path = where / "manifest.json"
    if manifest_path.exists():
        manifest = Manifest(**json.loads(manifest_path.read_text()))
        if Path(manifest.image_path).exists():
            return manifest
    if shutil.which("mke2fs") is None:
        raise SystemExit("generate.py: mke2fs is required (Debian package e2fsprogs)")
    started = time.monotonic()
    specs = plan(name, seed, scale)
    tree = where / "tree"
    tree.mkdir(parents=True, exist_ok=True)
    total = 0
    last = 0.0
    jobs = jobs or os.cpu_count() or 1
    with ProcessPoolExecutor(jobs) as pool:
        pieces = pool.map(_write, ((s, str(tree)) for s in specs), chunksize=8)
        for done, size in enumerate(pieces, 1):
            total += size
            now = time.monotonic()
            if progress and (now - last > 2 or done == len(specs)):
                last = now
                print(f"\r{name}: {done}/{len(specs)} files, {total / MB:,.0f} MB,"
                      f" {now - started:.0f} s", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    dirs = set()
    for spec in specs:
        parent = Path(spec.path).parent
        while str(parent) != ".":
            dirs.add(parent)
            parent = parent.parent
    for d in sorted(dirs, key=lambda p: -len(p.parts)):
        os.utime(tree / d, (FAKE_TIME, FAKE_TIME))
    image = where / f"{name}.ext4"
    blocks = sum(max(1, math.ceil(_size(tree, s) / 4096)) for s in specs)
    inodes = len(specs) + len(dirs) + 1024
    # data blocks + extent/dir blocks + inode tables (256 B) + journal and slack
    size_mb = math.ceil((blocks * 4096 * 1.08 + inodes * 256 * 1.3 + len(dirs) * 8192)
                        / (1 << 20)) + 96
    tmp = image.with_name(image.name + ".part")
    tmp.unlink(missing_ok=True)
    env = dict(os.environ, E2FSPROGS_FAKE_TIME=str(FAKE_TIME), SOURCE_DATE_EPOCH=str(FAKE_TIME),
               TZ="UTC", LC_ALL="C")
    if progress:
        print(f"{name}: mke2fs -d ({size_mb} MiB, {inodes} inodes)", file=sys.stderr)
    subprocess.run(
        ["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256", "-N", str(inodes),
         "-L", name[:16], "-U", "6578ce1b-5a3d-4c5e-9b1a-00000000be7c",
         "-E", "hash_seed=6578ce1b-5a3d-4c5e-9b1a-0000000000b7,root_owner=0:0",
         "-m", "0", "-d", str(tree), str(tmp), f"{size_mb}M"],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )
    tmp.chmod(0o444)
    tmp.replace(image)
    images = sum(1 for s in specs if s.kind in ("jpeg", "png"))
    manifest = Manifest(
        name=name, scale=scale, seed=seed, files=len(specs),
        bytes=sum(_size(tree, s) for s in specs), images=images, directories=len(dirs),
        image_path=str(image), image_bytes=image.stat().st_size,
        generator_seconds=round(time.monotonic() - started, 1),
        tools={"mke2fs": _tool_version(["mke2fs", "-V"]),
               "numpy": np.__version__, "pillow": _pillow_version()},
    )
    manifest_path.write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    return manifest


def _size(tree: Path, spec: Spec) -> int:
    return spec.size if spec.kind not in ("jpeg", "png") else (tree / spec.path).stat().st_size


def _pillow_version() -> str:
    from PIL import Image

    return Image.__version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", choices=IMAGES)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="size factor (1 = the issue's sizes; 0.1 = a tenth)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--cache", type=Path, default=None,
                        help="cache directory (default $EXHIBIT_BENCH_CACHE or"
                             " ~/.cache/exhibit-bench)")
    parser.add_argument("--jobs", type=int, default=None, help="generator processes")
    parser.add_argument("--keep-tree", action="store_true",
                        help="keep the source tree after the image is built")
    args = parser.parse_args(argv)
    for name in args.images:
        manifest = build(name, args.scale, args.seed, args.cache, args.jobs)
        tree = Path(manifest.image_path).parent / "tree"
        if not args.keep_tree and tree.exists():
            shutil.rmtree(tree)
        print(json.dumps(asdict(manifest)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
