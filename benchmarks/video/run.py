"""Video speed: frames hashed per second and real-time factor per core, SD and HD.

For each clip (FFmpeg ``testsrc2`` blended with a zooming ``mandelbrot``, H.264, 25 fps,
cached in ``$EXHIBIT_BENCH_CACHE`` or ``~/.cache/exhibit-bench``/video) it measures, in
this one process (one core):

- ``analyze``: exhibit's video analyzer (metadata, vPDQ at 1 fps, contact sheet);
- ``decode``: the baseline — PyAV decoding every frame and nothing else;
- ``reduced``: the alternative the issue asks to measure — the sampled frames hashed
  after a box resize to ≤ 512 px (PDQ's photo size) instead of at full size: its speed
  and the largest/mean Hamming distance of its frame hashes to the full-size (reference-
  compatible) ones.

Reported: frames hashed per second, real-time factor (seconds of video per second of
wall time, per core), and analyze/decode as a ratio against the baseline of the same run.

Then the matching scale: ``--known-videos`` synthetic known videos of 30 frames each
(random PDQs) against 10 query videos, 5 of them noisy copies of known ones, through
``pipeline.matching.video.compare`` (one multi-index over every known frame): seconds to
index and search, and the copies found (must be 5).

Usage: ``python benchmarks/video/run.py [--seconds 20] [--repeat 2] [--known-videos 20000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from analyzers.video import Budget, analyze_video  # noqa: E402
from analyzers.video.frames import pdq_of_rgb  # noqa: E402

SIZES = {"SD": (720, 480), "HD": (1280, 720)}


def cache_root() -> Path:
    env = os.environ.get("EXHIBIT_BENCH_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "exhibit-bench") / "video"


def build(label: str, seconds: int) -> Path:
    width, height = SIZES[label]
    path = cache_root() / f"{label}-{seconds}s.mp4"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = (f"testsrc2=size={width}x{height}:rate=25:duration={seconds}[a];"
             f"mandelbrot=size={width}x{height}:rate=25[b];"
             "[a][b]blend=all_mode=average,format=yuv420p")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "nullsrc",
                    "-filter_complex", graph, "-t", str(seconds), "-c:v", "libx264",
                    "-preset", "veryfast", "-crf", "20", str(path)], check=True)
    return path


def timed(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def decode_only(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


def reduced(path: Path, fps: float) -> list[str]:
    """Sampled frames as the analyzer picks them, hashed after a ≤ 512 px box resize."""
    out = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(container.streams.video[0])):
            if index % max(1, int(fps)) == 0:
                image = frame.to_image()
                if max(image.size) > 512:
                    image = image.resize((512, 512), Image.Resampling.BOX)
                out.append(pdq_of_rgb(numpy.asarray(image))[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--known-videos", type=int, default=20_000)
    args = parser.parse_args()
    report = {}
    for label in SIZES:
        path = build(label, args.seconds)
        data = path.read_bytes()
        import io

        t_analyze, found = timed(lambda data=data: analyze_video(io.BytesIO(data), Budget()),
                                 args.repeat)
        t_decode, frames = timed(lambda path=path: decode_only(path), args.repeat)
        t_reduced, small = timed(lambda path=path, f=found: reduced(path, f["fps"]),
                                 args.repeat)
        full = [s.split(",")[0] for s in found["vpdq"]]
        dist = [(int(a, 16) ^ int(b, 16)).bit_count() for a, b in zip(full, small, strict=True)]
        hashed = found["frames_hashed"]
        report[label] = {
            "size": f"{found['width']}x{found['height']}", "duration_s": found["duration"],
            "frames_decoded": frames, "frames_hashed": hashed,
            "analyze_s": round(t_analyze, 3), "decode_only_s": round(t_decode, 3),
            "frames_hashed_per_s": round(hashed / t_analyze, 1),
            "frames_decoded_per_s": round(frames / t_analyze, 1),
            "realtime_factor_per_core": round(found["duration"] / t_analyze, 2),
            "analyze_vs_decode_only": round(t_analyze / t_decode, 2),
            "reduced_512_s": round(t_reduced, 3),
            "reduced_512_max_bits": max(dist), "reduced_512_mean_bits": round(
                sum(dist) / len(dist), 1),
        }
        print(label, json.dumps(report[label]), flush=True)
    report["matching"] = matching_scale(args.known_videos)
    print(json.dumps(report, indent=2))


def matching_scale(count: int) -> dict[str, object]:
    import random

    from analyzers.video.vpdq import Frame
    from pipeline.matching.video import compare

    rng = random.Random(1)
    known = {k: [Frame(f"{rng.getrandbits(256):064x}", 100, float(i)) for i in range(30)]
             for k in range(count)}
    queries = []
    for key in rng.sample(range(count), 5):
        queries.append([Frame(f"{int(f.pdq, 16) ^ (1 << rng.randrange(256)):064x}", 100,
                              f.timestamp) for f in known[key]])
    queries += [[Frame(f"{rng.getrandbits(256):064x}", 100, float(i)) for i in range(30)]
                for _ in range(5)]
    start = time.perf_counter()
    pairs, index = compare(queries, known)
    seconds = time.perf_counter() - start
    found = sum(p.query_pct >= 80 for p in pairs)
    if found != 5:
        raise SystemExit(f"matching scale: {found} copies found, expected 5")
    return {"known_videos": count, "known_frames": count * 30, "query_videos": 10,
            "index_and_search_s": round(seconds, 2), "copies_found": found,
            "index": index.describe() if index is not None else None}


if __name__ == "__main__":
    main()
