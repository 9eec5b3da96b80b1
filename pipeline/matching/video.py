"""Known-video matching by vPDQ: the reference rule, through an index of frame hashes.

A known video is a known entry whose hashes are its frames (``known_hashes`` rows with
algorithm ``vpdq`` and value ``pdq,quality,timestamp``). A video of the evidence matches
it under :class:`~analyzers.video.vpdq.Rule` (ThreatExchange's defaults: frame distance
≤ 31, quality ≥ 50 on both sides, ≥ 80 % of the evidence video's frames matched, ≥ 0 %
of the known video's). Comparing every pair of videos would cost (videos × known
videos × frames²); instead every good known frame goes into one
:class:`~pipeline.matching.index.HammingIndex` and every good frame of the evidence's
videos is searched in it once, so cost follows the frames that are actually near.
The percentages are then counted per (video, known video) pair from the hits, exactly
as the reference's brute-force loop counts them (``match_brute`` is the test's oracle).

A match is recorded twice: a ``matches`` row (algorithm ``vpdq``, distance = the
closest frame pair, ``known_value`` = ``vpdq:<known entry id>``) so it is counted,
labelled and exported like any match, and a ``video_matches`` row with both
percentages and the matching time ranges of each video.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from analyzers.video.vpdq import (
    DEFAULT_RULE,
    Frame,
    Rule,
    is_match,
    parse_compact,
    time_ranges,
)
from pipeline.case.database import CaseDatabase
from pipeline.case.schema import VIDEOS_CONDITION
from pipeline.matching.index import HammingIndex, hex_to_words


def evidence_videos(db: CaseDatabase, evidence_id: str) -> list[tuple[int, list[Any], float]]:
    """(file id, frames, sampling interval) of every hashed video of the evidence."""
    out = []
    for row in db.conn.execute(  # the videos' rows only (schema.MEDIA_RESULT_INDEXES)
            "SELECT r.file_id, r.vpdq, r.vpdq_step AS step FROM results r CROSS JOIN files f"
            f" ON f.id = r.file_id WHERE {VIDEOS_CONDITION} AND f.evidence_id = ?"
            " ORDER BY r.file_id", (evidence_id,)):
        frames = [parse_compact(s, f"file {row['file_id']}") for s in json.loads(row["vpdq"])]
        if frames:
            out.append((row["file_id"], frames, float(row["step"] or 1.0)))
    return out


@dataclass(frozen=True)
class VideoPair:
    """How one video compares with one known video (only pairs with a frame in common)."""

    video: int  # index into the videos compared
    known: int  # the known video's key
    query_pct: float
    compared_pct: float
    closest: int  # smallest frame distance
    times: tuple[float, ...]  # timestamps of the video's matched frames
    known_times: tuple[float, ...]  # timestamps of the known video's matched frames


def compare(videos: list[list[Frame]], known: dict[int, list[Frame]], rule: Rule = DEFAULT_RULE
            ) -> tuple[list[VideoPair], HammingIndex | None]:
    """Every (video, known video) pair sharing a frame within ``rule.distance``.

    The percentages are the reference's (``match_brute``): over the frames of quality ≥
    ``rule.quality`` on each side, the share that has a near frame on the other side.
    """
    good_known = [(key, f) for key, frames in known.items() for f in frames
                  if f.quality >= rule.quality]
    known_total: dict[int, int] = defaultdict(int)
    for key, _ in good_known:
        known_total[key] += 1
    queries = [(vi, f) for vi, frames in enumerate(videos) for f in frames
               if f.quality >= rule.quality]
    query_total: dict[int, int] = defaultdict(int)
    for vi, _ in queries:
        query_total[vi] += 1
    if not good_known or not queries:
        return [], None
    hits_q: dict[tuple[int, int], set[int]] = defaultdict(set)  # (video, known) -> queries
    hits_k: dict[tuple[int, int], set[int]] = defaultdict(set)  # (video, known) -> frames
    closest: dict[tuple[int, int], int] = {}
    index = HammingIndex(hex_to_words([f.pdq for _, f in good_known], 256), rule.distance)
    q, k, d = index.search(hex_to_words([f.pdq for _, f in queries], 256))
    for qi, ki, dist in zip(q.tolist(), k.tolist(), d.tolist(), strict=True):
        pair = (queries[qi][0], good_known[ki][0])
        hits_q[pair].add(qi)
        hits_k[pair].add(ki)
        closest[pair] = min(dist, closest.get(pair, dist))
    return [VideoPair(vi, key, len(hit) * 100.0 / query_total[vi],
                      len(hits_k[vi, key]) * 100.0 / known_total[key], closest[vi, key],
                      tuple(sorted(queries[i][1].timestamp for i in hit)),
                      tuple(sorted(good_known[i][1].timestamp for i in hits_k[vi, key])))
            for (vi, key), hit in sorted(hits_q.items())], index


def match_videos(db: CaseDatabase, evidence_id: str, rule: Rule = DEFAULT_RULE
                 ) -> dict[str, Any]:
    """Record every (video, known video) pair that meets ``rule``; return what was done."""
    known_rows = db.conn.execute(
        "SELECT hashset_id, value, category, entry_id FROM known_hashes"
        " WHERE algorithm = 'vpdq' ORDER BY rowid").fetchall()
    if not known_rows:
        return {}
    known: dict[int, list[Frame]] = defaultdict(list)
    entry_info: dict[int, tuple[int, str | None]] = {}
    for row in known_rows:
        known[row["entry_id"]].append(parse_compact(row["value"],
                                                    f"known entry {row['entry_id']}"))
        entry_info[row["entry_id"]] = (row["hashset_id"], row["category"])
    videos = evidence_videos(db, evidence_id)
    pairs, index = compare([frames for _, frames, _ in videos], known, rule)
    rows, detail = [], []
    for pair in pairs:
        if not is_match(pair.query_pct, pair.compared_pct, rule):
            continue
        file_id, _, step = videos[pair.video]
        set_id, category = entry_info[pair.known]
        rows.append((file_id, set_id, "vpdq", pair.closest, category, f"vpdq:{pair.known}",
                     pair.known))
        detail.append((file_id, set_id, pair.known, round(pair.query_pct, 2),
                       round(pair.compared_pct, 2),
                       sum(f.quality >= rule.quality for f in videos[pair.video][1]),
                       sum(f.quality >= rule.quality for f in known[pair.known]),
                       json.dumps(time_ranges(list(pair.times), step)),
                       json.dumps(time_ranges(list(pair.known_times), step))))
    db.begin()
    try:
        db.conn.executemany(
            "INSERT OR IGNORE INTO matches (file_id, hashset_id, algorithm, distance,"
            " category, known_value, known_id) VALUES (?,?,?,?,?,?,?)", rows)
        db.conn.executemany(
            "INSERT OR REPLACE INTO video_matches (file_id, hashset_id, known_id, query_pct,"
            " compared_pct, frames, known_frames, ranges, known_ranges)"
            " VALUES (?,?,?,?,?,?,?,?,?)", detail)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return {"known_videos": len(known), "known_frames": len(known_rows),
            "videos": len(videos), "pairs": len(rows), "rule": asdict(rule),
            "index": None if index is None else index.describe()}


def frame_queries(db: CaseDatabase, evidence_id: str, quality: int
                  ) -> list[tuple[int, str, str | None]]:
    """(file id, PDQ, "frame at N s") of every good sampled frame, for picture sets."""
    out: list[tuple[int, str, str | None]] = []
    for file_id, frames, _ in evidence_videos(db, evidence_id):
        out.extend((file_id, f.pdq, f"frame at {f.timestamp:.3f} s") for f in frames
                   if f.quality >= quality)
    return out


def video_matches(db: CaseDatabase, file_id: int) -> list[dict[str, Any]]:
    """The stored vPDQ matches of one file, for reports and exports."""
    return [
        {"hashset_id": r["hashset_id"], "known_id": r["known_id"],
         "query_pct": r["query_pct"], "compared_pct": r["compared_pct"],
         "ranges": json.loads(r["ranges"]), "known_ranges": json.loads(r["known_ranges"])}
        for r in db.conn.execute("SELECT * FROM video_matches WHERE file_id = ?"
                                 " ORDER BY hashset_id, known_id", (file_id,))]


def series_links(db: CaseDatabase, evidence_id: str, pictures: list[tuple[int, str]],
                 rule: Rule = DEFAULT_RULE) -> list[tuple[int, int, int]]:
    """(file id, file id, distance) pairs that put videos into near-duplicate series.

    A video and a picture are linked when one of the video's good frames lies within
    ``rule.distance`` of the picture's PDQ (the picture is a frame of the video); two
    videos are linked when either matches the other by the vPDQ rule (the same clip
    re-encoded, trimmed …). ``pictures`` are (file id, PDQ) of the good pictures.
    """
    videos = evidence_videos(db, evidence_id)
    items: list[tuple[int, str, bool]] = [(fid, pdq, False) for fid, pdq in pictures]
    totals: dict[int, int] = {}
    for file_id, frames, _ in videos:
        good = [f for f in frames if f.quality >= rule.quality]
        totals[file_id] = len(good)
        items.extend((file_id, f.pdq, True) for f in good)
    if not totals or len(items) < 2:
        return []
    words = hex_to_words([pdq for _, pdq, _ in items], 256)
    q, k, d = HammingIndex(words, rule.distance).search(words)
    links: dict[tuple[int, int], int] = {}
    frames_hit: dict[tuple[int, int], set[int]] = defaultdict(set)  # (video, other) -> frames
    for a, b, dist in zip(q.tolist(), k.tolist(), d.tolist(), strict=True):
        (fa, _, va), (fb, _, vb) = items[a], items[b]
        if fa == fb or not va:
            continue
        if not vb:  # a picture that is a frame of this video
            key = (min(fa, fb), max(fa, fb))
            links[key] = min(dist, links.get(key, dist))
        else:
            frames_hit[fa, fb].add(a)
            key = (min(fa, fb), max(fa, fb))
            links.setdefault(key, dist)
            links[key] = min(dist, links[key])
    picture_ids = {fid for fid, _ in pictures}
    out = []
    for (fa, fb), dist in sorted(links.items()):
        if fa in picture_ids or fb in picture_ids:
            out.append((fa, fb, dist))
            continue
        pct_a = len(frames_hit[fa, fb]) * 100.0 / totals[fa]
        pct_b = len(frames_hit[fb, fa]) * 100.0 / totals[fb]
        if max(pct_a, pct_b) >= rule.query_pct:
            out.append((fa, fb, dist))
    return out
