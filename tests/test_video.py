"""Videos: vPDQ against ThreatExchange's reference tools, metadata against ffprobe and
ExifTool, matching of edited copies, exports, and containment of bad videos.

Every clip is made here with FFmpeg from one source (``video_clips.py``). The oracles:
the reference ``vpdq-hash-video`` and ``match-hashes-brute`` built from the ``vpdq``
sdist (frame hashes, and which edits the reference algorithm matches), ``ffprobe``
(duration, width, height) and ``exiftool`` (creation time, GPS). Nothing expected is
computed by exhibit itself.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import require_tool, sha256_file
from fault_video import CRASH
from pipeline_helpers import REPO, exhibit, export_jsonl, ledger_entries
from video_clips import (
    CONTAINERS,
    EDITS,
    UNRELATED,
    ffmpeg,
    make_clips,
    reference_hash,
    reference_match,
    vpdq_tools,
)

from analyzers.perceptual import PerceptualHashAnalyzer
from analyzers.video import Budget, analyze_video
from analyzers.video.vpdq import DEFAULT_RULE, Frame, from_json, match_brute, parse_compact
from pipeline.matching.hashsets import read_hashset

# Bits by which a frame's PDQ may differ from the reference's. The same decoder family
# (FFmpeg), the same RGB conversion and the same C++ PDQ give 0 on these clips; the
# margin allows for a libswscale/libavcodec version difference between PyAV's wheel and
# the system FFmpeg the reference is built against.
VPDQ_TOLERANCE = 4
TAGGED = {  # file: exiftool arguments (QuickTime Keys, QuickTime UserData ©xyz)
    "tagged_keys.mov": ["-QuickTime:CreateDate=2024:05:06 07:08:09",
                        "-Keys:GPSCoordinates=48.8584, 2.2945, 35", "-Keys:Make=Apple",
                        "-Keys:Model=iPhone 15"],
    "tagged_udta.mp4": ["-QuickTime:CreateDate=2023:01:02 03:04:05",
                        "-UserData:GPSCoordinates=-33.8568, 151.2153",
                        "-UserData:Make=samsung", "-UserData:Model=SM-G991B"],
}


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return vpdq_tools(tmp_path_factory.mktemp("vpdqref"))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The clips, tagged copies and bad videos, all in one folder (the disk's content)."""
    folder = tmp_path_factory.mktemp("videos") / "content"
    clips = make_clips(folder)
    for name, args in TAGGED.items():
        target = folder / name
        shutil.copy(clips["trimmed"], target)
        subprocess.run([require_tool("exiftool"), "-q", "-overwrite_original", *args,
                        str(target)], check=True)
        clips[name] = target
    # Matroska DateUTC and Android's "location": ExifTool cannot write these, FFmpeg can.
    clips["tagged.mkv"] = folder / "tagged.mkv"
    ffmpeg("-i", clips["trimmed"], "-c", "copy", "-metadata", "creation_time="
           "2022-02-03T04:05:06Z", clips["tagged.mkv"])
    clips["android.mp4"] = folder / "android.mp4"
    ffmpeg("-i", clips["trimmed"], "-c", "copy", "-metadata", "location=+37.7749-122.4194/",
           clips["android.mp4"])
    for name, args in CONTAINERS.items():
        clips[name] = folder / name
        ffmpeg("-i", clips["trimmed"], *args, clips[name])
    data = clips["source"].read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) * 2 // 5])
    (folder / "garbage.mp4").write_bytes(data[:32] + os.urandom(40_000))
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=6000x6000:r=1", "-frames:v", "2",
           "-c:v", "mjpeg", "-q:v", "31", folder / "huge.avi")
    ffmpeg("-i", clips["trimmed"], "-c", "copy", "-metadata", f"title={CRASH.decode()}",
           folder / "crasher.mp4")
    return clips


@pytest.fixture(scope="module")
def reference(media: dict[str, Path], tools: tuple[Path, Path],
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The reference hasher's per-frame file of every clip."""
    folder = tmp_path_factory.mktemp("vpdq-hashes")
    names = ["source", *EDITS, *UNRELATED]
    return {n: reference_hash(tools[0], media[n], folder / f"{n}.txt") for n in names}


def _reference_frames(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines() if line.strip()]


def test_frame_hashes_agree_with_the_reference_hasher(media: dict[str, Path],
                                                      reference: dict[str, Path]) -> None:
    worst = 0
    for name, ref_path in reference.items():
        with media[name].open("rb") as fh:
            found = analyze_video(fh, Budget())
        ref = _reference_frames(ref_path)
        ours = [parse_compact(s) for s in found["vpdq"]]
        assert found["vpdq_frames"] == [int(r[0]) for r in ref], name
        assert len(ours) == len(ref) > 0, name
        for frame, (_, quality, pdq, stamp) in zip(ours, ref, strict=True):
            distance = (int(frame.pdq, 16) ^ int(pdq, 16)).bit_count()
            worst = max(worst, distance)
            assert distance <= VPDQ_TOLERANCE, (name, stamp, distance)
            assert abs(frame.quality - int(quality)) <= 2, (name, stamp)
            assert abs(frame.timestamp - float(stamp)) < 0.0015, (name, stamp)
    print(f"largest frame distance to the reference: {worst} bits")


def test_our_brute_force_rule_equals_the_reference_matcher(
        reference: dict[str, Path], tools: tuple[Path, Path]) -> None:
    """The rule's arithmetic (quality filter, ≤ 31, both percentages) is the reference's."""
    source = _frames_of(reference["source"])
    for name, path in reference.items():
        expected = reference_match(tools[1], path, reference["source"])
        ours = match_brute(_frames_of(path), source)
        assert ours == pytest.approx(expected, abs=0.01), name


def _frames_of(path: Path) -> list[Frame]:
    return [Frame(pdq, int(q), float(t), int(n)) for n, q, pdq, t in _reference_frames(path)]


def test_a_budget_bounds_an_endless_stream(media: dict[str, Path]) -> None:
    with media["source"].open("rb") as fh:
        found = analyze_video(fh, Budget(max_decoded=60))
    assert found["frames_decoded"] == 60 and found["frames_hashed"] == 3
    assert "60 frames decoded" in found["budget_reached"]
    with media["source"].open("rb") as fh:
        found = analyze_video(fh, Budget(max_seconds=0.0))
    assert found["frames_hashed"] == 1 and "s of decoding" in found["budget_reached"]


def test_json_list_and_csv_column_import_the_same_frames(tmp_path: Path,
                                                         reference: dict[str, Path]) -> None:
    frames = _frames_of(reference["source"])
    compact = [f.compact() for f in frames]
    as_json = tmp_path / "known.json"
    as_json.write_text(json.dumps(compact))
    as_csv = tmp_path / "known.csv"
    with as_csv.open("w", newline="") as fh:
        csv.writer(fh).writerows([["media_id", "category", "vpdq"],
                                  ["V-1", "1", json.dumps(compact)]])
    for path, fmt in ((reference["source"], "vpdq"), (as_json, "vpdq"), (as_csv, "csv")):
        loaded = read_hashset(path)
        assert loaded.format == fmt
        assert [v for a, v, _ in loaded.entries] == compact, path
    assert from_json(json.dumps(compact)) == [Frame(f.pdq, f.quality, f.timestamp)
                                              for f in frames]


# ----------------------------------------------------------------------------- triage


@pytest.fixture(scope="module")
def triaged(media: dict[str, Path], reference: dict[str, Path],
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One triage of a disk holding every video, with the source's reference vPDQ as the
    set, a picture set holding one frame of the source, and the crashing decoder."""
    root = tmp_path_factory.mktemp("video-triage")
    folder = media["source"].parent
    (folder / "stills").mkdir(exist_ok=True)
    frame_png = folder / "stills" / "frame.png"  # also on the disk: a still of the video
    ffmpeg("-ss", "5", "-i", media["source"], "-frames:v", "1", frame_png)
    pdq = PerceptualHashAnalyzer().analyze(frame_png.read_bytes(), None, {})["pdq"]  # type: ignore[arg-type]
    pictures = root / "pictures.csv"
    pictures.write_text(f"pdq,category\n{pdq},2\n")
    image = root / "videos.img"
    subprocess.run([require_tool("mke2fs"), "-q", "-t", "ext4", "-d", str(folder), str(image),
                    "48M"], check=True)
    image.chmod(0o444)
    before = sha256_file(image)
    case = root / "case"
    env = {"EXHIBIT_ANALYZER_MODULES": "fault_video",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)])}
    exhibit("triage", image, "--case", case, "--workers", "2", "--no-progress",
            "--hashset", reference["source"], "--hashset", pictures, "--file-timeout", "60",
            env=env, timeout=900)
    records = {r["name"]: r for r in export_jsonl(case) if r["kind"] == "file"
               and r["allocated"] and "/lost+found" not in r["path"]}
    return {"case": case, "image": image, "before": before, "records": records}


def test_edits_match_exactly_when_the_reference_matches(
        triaged: dict[str, Any], media: dict[str, Path], reference: dict[str, Path],
        tools: tuple[Path, Path]) -> None:
    records = triaged["records"]
    expected, found = set(), set()
    for name in reference:
        query_pct, target_pct = reference_match(tools[1], reference[name], reference["source"])
        if query_pct >= DEFAULT_RULE.query_pct and target_pct >= DEFAULT_RULE.compared_pct:
            expected.add(name)
        hits = [m for m in records[media[name].name]["matches"] if m["algorithm"] == "vpdq"]
        if hits:
            found.add(name)
            (hit,) = hits
            assert hit["query_pct"] == pytest.approx(query_pct, abs=0.01), name
            assert hit["compared_pct"] == pytest.approx(target_pct, abs=0.01), name
            assert hit["ranges"] and hit["known_ranges"], name
    assert found == expected
    assert {"source", "reencoded", "trimmed", "grey", "sepia"} <= expected  # a real test
    assert not found & set(UNRELATED)
    trimmed = next(m for m in records[media["trimmed"].name]["matches"]
                   if m["algorithm"] == "vpdq")
    assert trimmed["known_ranges"] == [[3.0, 8.0]]  # seconds 3..8 of the source


def test_a_known_picture_found_as_a_frame_of_a_video(triaged: dict[str, Any],
                                                     media: dict[str, Path]) -> None:
    hits = [m for m in triaged["records"][media["source"].name]["matches"]
            if m["algorithm"] == "pdq"]
    assert hits and hits[0]["variant"] == "frame at 5.000 s" and hits[0]["category"] == "2"
    assert not any(m["algorithm"] == "pdq" for n in UNRELATED
                   for m in triaged["records"][media[n].name]["matches"])


def _ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run([require_tool("ffprobe"), "-v", "error", "-print_format", "json",
                          "-show_format", "-show_streams", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def test_duration_and_size_agree_with_ffprobe(triaged: dict[str, Any],
                                              media: dict[str, Path]) -> None:
    checked = 0
    for path in media["source"].parent.iterdir():
        if not path.is_file() or path.name in ("garbage.mp4", "truncated.mp4", "crasher.mp4"):
            continue  # no video object: the first two are unreadable, the last crashes
        probe = _ffprobe(path)
        video = triaged["records"][path.name]["video"]
        stream = next(s for s in probe["streams"] if s["codec_type"] == "video")
        assert (video["width"], video["height"]) == (stream["width"], stream["height"]), path
        assert video["duration"] == pytest.approx(float(probe["format"]["duration"]),
                                                  abs=0.002), path
        assert video["codec"] == stream["codec_name"], path
        if path.name != "huge.avi":  # frames over the budget's size are not decoded
            assert triaged["records"][path.name]["vpdq"], path  # sampled and hashed
        checked += 1
    assert checked >= len(EDITS) + len(UNRELATED) + len(CONTAINERS) + 4


def _exiftool(path: Path) -> dict[str, Any]:
    out = subprocess.run([require_tool("exiftool"), "-j", "-n", "-G1", "-api",
                          "QuickTimeUTC", str(path)], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)[0]


def test_creation_time_and_gps_agree_with_exiftool(triaged: dict[str, Any],
                                                   media: dict[str, Path]) -> None:
    for name in (*TAGGED, "tagged.mkv", "android.mp4"):
        tags = _exiftool(media[name])
        video = triaged["records"][name]["video"]
        stated = tags.get("QuickTime:CreateDate") or tags.get("Matroska:DateTimeOriginal")
        if stated and not stated.startswith(("1904", "0000")):
            stamp = stated[:19].replace(":", "-", 2).replace(" ", "T") + "Z"
            assert video["creation_time"] == stamp, name
        else:  # a zero (1904) date in mvhd means "not set": no creation time
            assert video["creation_time"] is None, name
        if "Composite:GPSLatitude" in tags:
            assert video["gps_latitude"] == pytest.approx(tags["Composite:GPSLatitude"],
                                                          abs=1e-4), name
            assert video["gps_longitude"] == pytest.approx(tags["Composite:GPSLongitude"],
                                                           abs=1e-4), name
        for field in ("Make", "Model"):
            value = next((v for k, v in tags.items() if k.endswith(f":{field}")), None)
            if value is not None:
                assert video[field.lower()] == value, name
    assert triaged["records"]["tagged_keys.mov"]["video"]["gps_source"] == \
        "com.apple.quicktime.location.ISO6709"
    assert triaged["records"]["android.mp4"]["video"]["gps_source"] == "location"


def test_video_positions_in_geojson(triaged: dict[str, Any]) -> None:
    out = triaged["case"] / "points.geojson"
    exhibit("export", triaged["case"], "--format", "geojson", "-o", out)
    names = {f["properties"]["name"]: f["geometry"]["coordinates"]
             for f in json.loads(out.read_text())["features"]}
    video = triaged["records"]["tagged_keys.mov"]["video"]
    assert names["tagged_keys.mov"] == [video["gps_longitude"], video["gps_latitude"],
                                        video["gps_altitude"]]
    assert {"tagged_udta.mp4", "android.mp4"} <= set(names)


def test_bad_videos_cost_only_themselves(triaged: dict[str, Any]) -> None:
    records = triaged["records"]
    for name in ("truncated.mp4", "garbage.mp4"):
        assert records[name]["sha256"], name
        errors = [e for e in records[name]["errors"] if e["analyzer"] == "video"]
        assert errors or records[name]["video"]["budget_reached"], name
    huge = records["huge.avi"]["video"]
    assert huge["width"] == 6000 and "not decoded" in huge["budget_reached"]
    assert huge["frames_decoded"] == 0
    # The crash costs this file: it is recorded as crashed, naming the analyzer and keeping
    # the others' findings. (Once, with PyAV imported at worker start, the probe that finds
    # the analyzer failed too and the file was recorded unreadable — still alone; PyAV is
    # now imported lazily and the analyzer is named, but only containment is asserted.)
    crashed = records["crasher.mp4"]
    assert "crashed" in {e["error"] for e in crashed["errors"]}
    good = [r for n, r in records.items() if n.endswith((".mp4", ".mkv", ".mov", ".webm"))
            and n not in ("truncated.mp4", "garbage.mp4", "crasher.mp4")]
    assert good and all(r["video"]["frames_hashed"] > 0 and not r["errors"] for r in good)
    exhibit("ledger", "verify", triaged["case"])
    assert sha256_file(triaged["image"]) == triaged["before"]


def test_contact_sheets_are_stored_and_ledgered(triaged: dict[str, Any],
                                                media: dict[str, Path]) -> None:
    case = triaged["case"]
    conn = sqlite3.connect(case / "case.sqlite")
    record = json.loads(conn.execute(
        "SELECT r.record FROM results r JOIN files f ON f.id = r.file_id WHERE f.name = ?",
        (media["source"].name,)).fetchone()[0])
    conn.close()
    sheet = record["findings"]["video"]["contact_sheet"]
    assert "blob_base64" not in json.dumps(record)
    stored = case / "thumbnails" / f"{sheet['sha256']}.jpg"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == sheet["sha256"]
    assert sheet["frames"] == 8 and sheet["timestamps"][0] == 0.0
    ledgered = {d for e in ledger_entries(case) if e["action"] == "batch.analysed"
                for d in e["details"]["thumbnails"]["sha256"]}
    assert sheet["sha256"] in ledgered


def test_series_join_copies_of_a_video_and_its_stills(triaged: dict[str, Any],
                                                      media: dict[str, Path],
                                                      reference: dict[str, Path],
                                                      tools: tuple[Path, Path]) -> None:
    conn = sqlite3.connect(triaged["case"] / "case.sqlite")
    groups = dict(conn.execute("SELECT f.name, g.group_id FROM media_groups g"
                               " JOIN files f ON f.id = g.file_id").fetchall())
    conn.close()
    source_group = groups[media["source"].name]
    assert groups["frame.png"] == source_group  # the still is a frame of the source
    for name in reference:
        forward = reference_match(tools[1], reference[name], reference["source"])[0]
        backward = reference_match(tools[1], reference["source"], reference[name])[0]
        same = groups.get(media[name].name) == source_group
        if name in UNRELATED:
            assert not same, name
        elif max(forward, backward) >= DEFAULT_RULE.query_pct:
            assert same, name


def test_report_shows_contact_sheets_and_matching_ranges(triaged: dict[str, Any],
                                                         media: dict[str, Path]) -> None:
    import re

    out = triaged["case"] / "report.html"
    exhibit("report", triaged["case"], "-o", out)
    text = out.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="case-data">(.*?)</script>', text,
                      re.S)
    assert found is not None
    data = json.loads(found.group(1))  # script_json escapes with JSON's own \u escapes
    conn = sqlite3.connect(triaged["case"] / "case.sqlite")
    source_id = conn.execute("SELECT id FROM files WHERE name = ?",
                             (media["source"].name,)).fetchone()[0]
    sheet = json.loads(conn.execute("SELECT record FROM results WHERE file_id = ?",
                                    (source_id,)).fetchone()[0])["findings"]["video"]
    conn.close()
    (hit,) = [m for m in data["matches"][str(source_id)] if m["algorithm"] == "vpdq"]
    assert hit["video_matched"] == "100 %" and hit["matching_ranges"] == "0–11 s"
    assert sheet["contact_sheet"]["sha256"] in data["thumbdata"]  # matched: shown (veiled)


def test_the_video_analyzer_reads_through_a_seekable_stream(media: dict[str, Path]) -> None:
    """A worker gives ``"random"`` analyzers a file object on the evidence: the content
    is not buffered for them, and the findings equal those from bytes in memory."""
    from test_analyzers import entry

    from analyzers.registry import create
    from analyzers.run import analyze_bytes, analyze_chunks, iter_chunks

    data = media["source"].read_bytes()
    opened: list[Any] = []

    def opener() -> Any:
        opened.append(media["source"].open("rb"))
        return opened[-1]

    names = ["filetype", "video"]
    streamed = analyze_chunks(iter_chunks(data), entry("source.mp4", len(data)),
                              create(names), opener=opener)
    in_memory = analyze_bytes(data, entry("source.mp4", len(data)), create(names))
    assert len(opened) == 1 and opened[0].closed
    assert streamed.errors == in_memory.errors == []
    assert streamed.findings["video"] == in_memory.findings["video"]


def test_sampling_interval_is_the_examiners_setting(
        media: dict[str, Path], tools: tuple[Path, Path], tmp_path: Path) -> None:
    """``--setting video.seconds_per_hash=2`` reaches the workers: the frames hashed are
    the reference hasher's at ``-s 2``; a setting no analyzer knows is refused (exit 2)."""
    folder = tmp_path / "content"
    folder.mkdir()
    shutil.copy(media["trimmed"], folder / "clip.mp4")
    image = tmp_path / "clip.img"
    subprocess.run([require_tool("mke2fs"), "-q", "-t", "ext4", "-d", str(folder), str(image),
                    "8M"], check=True)
    refused = exhibit("triage", image, "--case", tmp_path / "refused", "--no-progress",
                      "--setting", "video.frames_per_minute=3", check=False)
    assert refused.returncode == 2 and "frames_per_minute" in refused.stderr
    assert not (tmp_path / "refused").exists()
    case = tmp_path / "case"
    exhibit("triage", image, "--case", case, "--workers", "1", "--no-progress", "--no-expand",
            "--carve", "none", "--analyzers", "filetype,video",
            "--setting", "video.seconds_per_hash=2")
    (record,) = [r for r in export_jsonl(case) if r["name"] == "clip.mp4"]
    reference = reference_hash(tools[0], media["trimmed"], tmp_path / "ref.txt",
                               seconds_per_hash=2)
    expected = [float(line.split(",")[3]) for line in reference.read_text().splitlines()
                if line.strip()]
    assert [parse_compact(s).timestamp for s in record["vpdq"]] == pytest.approx(expected)
    assert len(expected) < 6  # fewer frames than the 1 s default would hash
    started = next(e for e in ledger_entries(case) if e["action"] == "triage.started")
    assert started["details"]["analyzer_settings"] == {"video": {"seconds_per_hash": "2"}}
