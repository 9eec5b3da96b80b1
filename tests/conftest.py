"""Shared fixtures: the sample image in its three containers, and the oracle tools.

Images are made once per test session in a temporary directory: the raw image is
decompressed from ``sample_data/sample.img.gz`` (and the NTFS one with a deleted folder
from ``deleted-ntfs.img.gz``, which needs FUSE to build); the split raw set and the E01 are made
from it with ``split`` and ``ewfacquire`` (the real tools). A missing tool fails loudly
(``make test`` installs them), it never skips.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SAMPLE_GZ = REPO / "sample_data" / "sample.img.gz"
PDQ_REFERENCE_SOURCES = (
    "pdq/cpp/bin/pdq-photo-hasher.cpp", "pdq/cpp/io/pdqio.cpp",
    "pdq/cpp/hashing/pdqhashing.cpp", "pdq/cpp/hashing/torben.cpp",
    "pdq/cpp/downscaling/downscaling.cpp", "pdq/cpp/common/pdqhashtypes.cpp",
    "pdq/cpp/common/pdqutils.cpp", "pdq/cpp/common/pdqhamming.cpp",
)
# Bits by which our PDQ may differ from the reference's on a picture over 512 px: we
# draft-decode and box-resize, it decodes fully and resizes with CImg (≤ 512 px: equal).
PDQ_RESIZED_TOLERANCE = 8
DELETED_NTFS_GZ = REPO / "sample_data" / "deleted-ntfs.img.gz"


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"required oracle tool {name!r} is not installed (run `make test`)")
    return path


def stop_processes(procs: list[subprocess.Popen]) -> None:
    """Terminate servers a test started (newest first), killing any that will not stop."""
    for proc in reversed(procs):
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(scope="session")
def images_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("images")


@pytest.fixture(scope="session")
def sample_raw(images_dir: Path) -> Path:
    """The bundled sample image as a raw/dd file (read-only on disk)."""
    if not SAMPLE_GZ.exists():
        pytest.fail(f"{SAMPLE_GZ} is missing: run sample_data/generate.sh")
    out = images_dir / "sample.dd"
    with gzip.open(SAMPLE_GZ, "rb") as src, out.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    out.chmod(0o444)
    return out


@pytest.fixture(scope="session")
def deleted_ntfs(images_dir: Path) -> Path:
    """A bare NTFS volume with a deleted folder, subfolder and files (deleted_ntfs.sh)."""
    if not DELETED_NTFS_GZ.exists():
        pytest.fail(f"{DELETED_NTFS_GZ} is missing: run sample_data/deleted_ntfs.sh")
    out = images_dir / "deleted-ntfs.dd"
    with gzip.open(DELETED_NTFS_GZ, "rb") as src, out.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    out.chmod(0o444)
    return out


@pytest.fixture(scope="session")
def sample_split(sample_raw: Path, images_dir: Path) -> list[Path]:
    """The same image as a split raw set ``sample.001``, ``sample.002``, …"""
    require_tool("split")
    outdir = images_dir / "split"
    outdir.mkdir()
    subprocess.run(
        ["split", "-b", "16M", "-d", "-a", "3", "--numeric-suffixes=1",
         str(sample_raw), str(outdir / "sample.")],
        check=True,
    )
    parts = sorted(outdir.iterdir())
    for part in parts:
        part.chmod(0o444)
    return parts


@pytest.fixture(scope="session")
def sample_e01(sample_raw: Path, images_dir: Path) -> Path:
    """The same image acquired into EnCase format by ``ewfacquire`` (stores its MD5)."""
    require_tool("ewfacquire")
    outdir = images_dir / "e01"
    outdir.mkdir()
    target = outdir / "sample"
    subprocess.run(
        ["ewfacquire", "-u", "-t", str(target), "-f", "encase6", "-c", "fast",
         "-d", "sha1", "-C", "case-1", "-D", "sample card", "-E", "EX-1",
         "-e", "examiner", "-N", "test", "-S", "1.4GiB", "-l", str(outdir / "acquire.log"),
         str(sample_raw)],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    e01 = target.with_suffix(".E01")
    e01.chmod(0o444)
    return e01


@pytest.fixture(scope="session")
def reference_hasher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ThreatExchange's pdq-photo-hasher, built from the installed pdqhash's sdist."""
    compiler = require_tool("g++")
    tmp = tmp_path_factory.mktemp("pdqref")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--no-binary", "pdqhash", f"pdqhash=={version('pdqhash')}", "-d", str(tmp)],
                   check=True, capture_output=True)
    (sdist,) = tmp.glob("pdqhash-*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp, filter="data")
    (root,) = tmp.glob("pdqhash-*/ThreatExchange")
    binary = tmp / "pdq-photo-hasher"
    subprocess.run([compiler, "-O2", "-std=c++14", "-Dcimg_display=0", f"-I{root}",
                    f"-I{root / 'pdq/cpp'}", *(str(root / s) for s in PDQ_REFERENCE_SOURCES),
                    "-o", str(binary), "-lpthread"], check=True, capture_output=True)
    return binary


def pdq_reference_lines(binary: Path, img: Image.Image, tmp_path: Path,
                        *flags: str) -> list[list[str]]:
    """The reference's output fields for ``img`` (hash, quality, …), one list per line.

    The picture goes in as PPM, so the reference hashes exactly these pixels.
    """
    path = tmp_path / "input.ppm"
    img.convert("RGB").save(path)
    out = subprocess.run([str(binary), *flags, str(path)], capture_output=True, text=True,
                         check=True).stdout
    return [line.split(",") for line in out.splitlines() if line.strip()]


def pdq_reference(binary: Path, img: Image.Image, tmp_path: Path, *flags: str) -> list[str]:
    """The reference's PDQ hashes of ``img`` (one, or the 8 dihedral ones with --pdqdih)."""
    return [fields[0] for fields in pdq_reference_lines(binary, img, tmp_path, *flags)]
