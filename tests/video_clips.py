"""Test videos made with FFmpeg from one source clip, and ThreatExchange's vPDQ tools.

The source is 12 s of FFmpeg's ``testsrc2`` blended with a zooming ``mandelbrot`` (moving,
detailed, 320×240, 25 fps). The edits are the issue's list; the unrelated clips are
other generators. ``vpdq_tools`` builds the reference ``vpdq-hash-video`` and
``match-hashes-brute`` from the ``vpdq`` sdist (the same way ``conftest`` builds the PDQ
photo hasher from pdqhash's), against Debian's FFmpeg headers.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

from conftest import require_tool

VPDQ_VERSION = "0.2.5"
SOURCE = ("testsrc2=size=320x240:rate=25:duration=12[a];mandelbrot=size=320x240:rate=25[b];"
          "[a][b]blend=all_mode=average,format=yuv420p")
X264 = ("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p")
SEPIA = "colorchannelmixer=.393:.769:.189:0:.349:.686:.168:0:.272:.534:.131"
# name: (file name, ffmpeg arguments after "-i source.mp4")
EDITS = {
    "reencoded": ("reencoded.mkv", ["-vf", "scale=480:360", "-b:v", "150k", *X264]),
    "trimmed": ("trimmed.mp4", ["-ss", "3", "-t", "6", *X264]),
    "grey": ("grey.avi", ["-vf", "hue=s=0", "-c:v", "mpeg4", "-q:v", "4"]),
    "sepia": ("sepia.mov", ["-vf", SEPIA, *X264]),
    "logo": ("logo.mp4", ["-vf", "drawbox=x=280:y=8:w=28:h=16:color=yellow@0.9:t=fill",
                          *X264]),
    "padded": ("padded.mp4", ["-vf", "pad=400:300:40:30:black", *X264]),
    "large_logo": ("large_logo.mp4",
                   ["-vf", "drawbox=x=20:y=20:w=280:h=200:color=red@1:t=fill", *X264]),
}
# The other containers the analyzer reads, each a copy of the trimmed clip (file: ffmpeg
# arguments after "-i trimmed.mp4"): ASF/WMV, FLV, MPEG-TS, 3GP (H.263) and animated GIF.
CONTAINERS = {
    "trimmed.wmv": ["-c:v", "wmv2", "-b:v", "400k"],
    "trimmed.flv": ["-c:v", "flv1"],
    "trimmed.ts": ["-c:v", "mpeg2video"],
    "trimmed.3gp": ["-vf", "scale=176:144", "-c:v", "h263"],
    "animated.gif": ["-vf", "fps=5,scale=160:-1"],
}
UNRELATED = {
    "life": ("life.webm", "life=s=320x240:mold=10:r=25:ratio=0.1:death_color=#C83232"
                         ":life_color=#00ff00,format=yuv420p"),
    "cellauto": ("cellauto.mp4", "cellauto=s=320x240:rule=110:r=25,format=yuv420p"),
    "smpte": ("smpte.mp4", "smptehdbars=s=320x240:r=25,hue=H=2*PI*t/5,format=yuv420p"),
}


def ffmpeg(*args: str | Path) -> None:
    subprocess.run([require_tool("ffmpeg"), "-v", "error", "-y", *map(str, args)],
                   check=True, capture_output=True)


def make_clips(folder: Path) -> dict[str, Path]:
    """The source, its edits and the unrelated clips, by name."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "source.mp4"
    ffmpeg("-f", "lavfi", "-i", "nullsrc", "-filter_complex", SOURCE, "-t", "12", *X264,
           "-crf", "18", source)
    clips = {"source": source}
    for name, (file_name, args) in EDITS.items():
        clips[name] = folder / file_name
        ffmpeg("-i", source, *args, clips[name])
    for name, (file_name, graph) in UNRELATED.items():
        clips[name] = folder / file_name
        codec = (("-c:v", "libvpx", "-b:v", "300k", "-deadline", "realtime", "-cpu-used", "8")
                 if file_name.endswith(".webm") else X264)
        ffmpeg("-f", "lavfi", "-i", graph, "-t", "8", *codec, clips[name])
    return clips


def vpdq_tools(folder: Path) -> tuple[Path, Path]:
    """(vpdq-hash-video, match-hashes-brute) compiled from the vpdq sdist."""
    compiler = require_tool("g++")
    pkg = require_tool("pkg-config")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary",
                    ":all:", f"vpdq=={VPDQ_VERSION}", "-d", str(folder)],
                   check=True, capture_output=True)
    (sdist,) = folder.glob("vpdq-*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(folder, filter="data")
    (cpp,) = folder.glob("vpdq-*/cpp")
    flags = subprocess.run([pkg, "--cflags", "--libs", "libavformat", "libavcodec",
                            "libswscale", "libavutil"], check=True, capture_output=True,
                           text=True).stdout.split()
    common = [*(cpp / "vpdq/cpp/hashing").glob("*.cpp"), cpp / "vpdq/cpp/io/vpdqio.cpp",
              *(cpp / "pdq/cpp/hashing").glob("*.cpp"), *(cpp / "pdq/cpp/common").glob("*.cpp"),
              cpp / "pdq/cpp/downscaling/downscaling.cpp", cpp / "pdq/cpp/io/hashio.cpp"]
    tools = []
    for app in ("vpdq-hash-video", "match-hashes-brute"):
        binary = folder / app
        subprocess.run([compiler, "-O2", "-std=c++14", f"-I{cpp}", f"-I{cpp / 'pdq/cpp'}",
                        f"-I{cpp / 'vpdq/cpp'}", str(cpp / f"apps/{app}.cpp"),
                        *map(str, common), "-o", str(binary), *flags, "-lpthread"],
                       check=True, capture_output=True)
        tools.append(binary)
    return tools[0], tools[1]


def reference_hash(hasher: Path, video: Path, out: Path, seconds_per_hash: float = 1) -> Path:
    subprocess.run([str(hasher), "-i", str(video), "-o", str(out), "-r", str(seconds_per_hash)],
                   check=True, capture_output=True)
    return out


def reference_match(matcher: Path, query: Path, target: Path, distance: int = 31,
                    quality: int = 50) -> tuple[float, float]:
    """The reference's (query %, target %); its tool counts distances < the tolerance."""
    out = subprocess.run([str(matcher), str(query), str(target), str(distance + 1),
                          str(quality)], check=True, capture_output=True, text=True).stdout
    lines = [ln.split()[0] for ln in out.splitlines() if "Percentage" in ln]
    return float(lines[0]), float(lines[1])
