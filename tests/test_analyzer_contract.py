"""Every registered analyzer keeps the contract, checked on one example input each.

Like dissect's plugin test and ThreatExchange's SignalTypeAutoTest: an analyzer that
cannot say what it is, or gives a different answer twice, does not ship.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest
from test_analyzers import entry, tagged_jpeg

from analyzers.base import Analyzer
from analyzers.registry import create, registered
from analyzers.run import analyze_bytes

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
# exhibit's own analyzers; other test modules may register test-only ones (fault_analyzers)
NAMES = sorted(n for n, cls in registered().items() if cls.__module__.startswith("analyzers."))


@pytest.fixture(scope="module")
def example_jpeg(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """One input every built-in analyzer applies to: a tagged JPEG with GPS and thumbnail."""
    tmp = tmp_path_factory.mktemp("contract")
    path = tagged_jpeg(
        tmp, "-Make=Nikon", "-Model=D750", "-SerialNumber=6001234",
        "-DateTimeOriginal=2023:12:24 18:00:00", "-GPSLatitude=48.8584",
        "-GPSLatitudeRef=N", "-GPSLongitude=2.2945", "-GPSLongitudeRef=E",
    )
    return Path(path).read_bytes()


def test_builtin_set() -> None:
    assert NAMES == ["exif", "filetype", "hashes", "perceptual", "thumbnail", "video"]


@pytest.mark.parametrize("name", NAMES)
def test_declaration(name: str) -> None:
    cls = registered()[name]
    assert issubclass(cls, Analyzer)
    assert cls.name == name
    assert inspect.getdoc(cls), "the class docstring says why the analyzer exists"
    assert inspect.getmodule(cls).__doc__, "the module docstring documents its findings"
    assert SEMVER.match(cls.version), cls.version
    assert cls.input in ("stream", "head", "content", "random")
    if cls.input == "head":
        assert cls.head_size > 0
    if cls.input in ("content", "random"):
        assert isinstance(cls.max_size, int) and cls.max_size > 0
    versions = cls.library_versions()
    assert versions, "record what shapes the findings"
    assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in versions.items())


@pytest.fixture(scope="module")
def example_video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The video analyzer's example: 3 s of FFmpeg's test pattern in MP4."""
    from video_clips import ffmpeg

    path = tmp_path_factory.mktemp("contract-video") / "example.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=3",
           "-pix_fmt", "yuv420p", path)
    return path.read_bytes()


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_on_example(name: str, request: pytest.FixtureRequest) -> None:
    # filetype runs too: content analyzers decide on its findings, as in a real run
    names = sorted({name, "filetype"})
    example = request.getfixturevalue("example_video" if name == "video" else "example_jpeg")
    file_name = "example.mp4" if name == "video" else "example.jpg"
    runs = [
        analyze_bytes(example, entry(file_name, len(example)), create(names))
        for _ in range(2)
    ]
    for result in runs:
        assert result.errors == []
        assert name in result.findings, "the example input exercises the analyzer"
        json.dumps(result.findings[name], allow_nan=False)
    assert runs[0].findings[name] == runs[1].findings[name]
