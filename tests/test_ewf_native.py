"""E01 media read through the system's libewf is the acquired media, byte for byte.

exhibit reads an E01's media through the system's libewf (zlib's inflate, ~9x pyewf's
speed) and keeps pyewf for everything else and for what the system library does not
read (``ingest/formats/libewf_native.py``). The oracle is the source image that
``ewfacquire`` acquired: every EWF flavour it writes, compressed or not, in several
segments, read whole and at random offsets across chunks and segments, by both readers.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool

from ingest.errors import IngestError
from ingest.formats import libewf_native
from ingest.formats.ewf import READER_ENV
from ingest.image import open_image
from pipeline.versions import library_versions

MIB = 1 << 20


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3.5 MiB of media that compresses in places (zeros, text) and not in others, its
    size not a whole number of 32 KiB chunks."""
    rng = random.Random(11)
    parts = [b"\0" * 700_000, rng.randbytes(1_100_000),
             b"".join(b"line %d of the seized card\n" % i for i in range(40_000)),
             rng.randbytes(3 * MIB // 4)]
    data = b"".join(parts)
    data += b"\xa5" * (-len(data) % 512 + 512 * 3)  # whole sectors, 3 past a chunk edge
    path = tmp_path_factory.mktemp("ewf-source") / "card.raw"
    path.write_bytes(data)
    path.chmod(0o444)
    return path


def _acquire(source: Path, where: Path, fmt: str, compression: str) -> Path:
    require_tool("ewfacquire")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ewfacquire", "-u", "-q", "-t", str(where / "card"), "-f", fmt,
                    "-c", compression, "-S", "1MiB", "-d", "sha1", str(source)],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    first = sorted(where.glob("card.*"))[0]
    assert first.suffix.lower() in (".e01", ".ex01", ".s01")
    return first


def _reads(image_path: Path, source: bytes) -> str:
    """Read the image whole and at random places; each read must equal the source's
    bytes. Returns which library read the media."""
    with open_image([image_path]) as image:
        assert image.size == len(source)
        whole = b"".join(image.read_at(offset, MIB) for offset in range(0, image.size, MIB))
        assert hashlib.sha256(whole).hexdigest() == hashlib.sha256(source).hexdigest()
        rng = random.Random(image_path.name)
        for _ in range(300):
            offset = rng.randrange(image.size)
            size = rng.choice([1, 511, 512, 4096, 32768, 32769, 100_000, 2 * MIB])
            assert image.read_at(offset, size) == source[offset:offset + size]
        assert image.read_at(image.size - 10, 100) == source[-10:]
        assert image.stored_hashes["md5"] == hashlib.md5(source).hexdigest()
        return image.media_reader


@pytest.mark.parametrize(("fmt", "compression"), [
    ("encase6", "fast"), ("encase6", "none"), ("encase5", "best"), ("encase7", "fast"),
    ("ftk", "fast"), ("smart", "fast"), ("linen6", "best"), ("ewfx", "fast"),
])
def test_every_flavour_reads_as_the_acquired_media(source: Path, tmp_path: Path, fmt: str,
                                                   compression: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert libewf_native.version() is not None, "libewf2 (the system's libewf) is missing"
    first = _acquire(source, tmp_path / fmt, fmt, compression)
    segments = sorted(first.parent.glob("card.*"))
    assert len(segments) >= 2
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in segments]
    data = source.read_bytes()
    assert _reads(first, data) == "libewf-system"
    monkeypatch.setenv(READER_ENV, "pyewf")
    assert _reads(first, data) == "pyewf"
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in segments] == before


def _read_whole(first: Path) -> tuple[str, str, str]:
    """(the media reader after opening, its digest of the whole media or the error's
    type, the media reader after reading)."""
    with open_image([first]) as image:
        opened = image.media_reader
        try:
            whole = b"".join(image.read_at(o, MIB) for o in range(0, image.size, MIB))
            outcome = hashlib.sha256(whole).hexdigest()
        except IngestError as exc:
            outcome = f"refused: {exc}"
        return opened, outcome, image.media_reader


def test_a_damaged_chunk_is_read_as_pyewf_reads_it(source: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk whose compressed bytes were overwritten: the system library counts it as
    a checksum error and the rest is read by pyewf, so both readers hand back the same
    media (the acquisition hash then differs from the stored one: the run fails)."""
    first = _acquire(source, tmp_path / "damaged", "encase6", "best")
    damaged = bytearray(first.read_bytes())
    middle = len(damaged) // 2
    damaged[middle:middle + 2048] = bytes(2048)
    first.chmod(0o644)
    first.write_bytes(bytes(damaged))
    monkeypatch.setenv(READER_ENV, "system")
    system = _read_whole(first)
    monkeypatch.setenv(READER_ENV, "pyewf")
    pyewf = _read_whole(first)
    assert system[0] == "libewf-system"
    assert system[2].startswith("libewf-system, then pyewf from media offset ")
    assert system[1] == pyewf[1] != hashlib.sha256(source.read_bytes()).hexdigest()


def test_a_missing_segment_is_refused_as_pyewf_refuses_it(source: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """The system library reads zeros where a segment is missing; pyewf refuses. The
    reader must refuse too: evidence is never silently zero-filled."""
    first = _acquire(source, tmp_path / "gap", "encase6", "fast")
    os.unlink(sorted(first.parent.glob("card.*"))[1])
    outcomes = {}
    for reader in ("system", "pyewf"):
        monkeypatch.setenv(READER_ENV, reader)
        outcomes[reader] = _read_whole(first)
    assert outcomes["system"][0] == "libewf-system"
    assert outcomes["system"][1] == outcomes["pyewf"][1]
    assert outcomes["system"][1].startswith("refused: EWF read error")


def test_the_system_library_is_recorded_with_its_version() -> None:
    versions = library_versions()
    assert versions["libewf_system"] == libewf_native.version()
    out = subprocess.run([require_tool("ewfverify"), "-V"], capture_output=True, text=True)
    assert versions["libewf_system"] in out.stdout  # the library under ewfverify


def test_the_system_library_refuses_what_it_cannot_open(tmp_path: Path) -> None:
    with pytest.raises(libewf_native.LibewfError):
        libewf_native.NativeEwf([tmp_path / "absent.E01"])
