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
from dataclasses import asdict
from typing import Any

from analyzers.video.vpdq import DEFAULT_RULE, Rule, is_match, parse_compact, time_ranges
from pipeline.case.database import CaseDatabase
from pipeline.matching.index import HammingIndex, hex_to_words


def evidence_videos(db: CaseDatabase, evidence_id: str) -> list[tuple[int, list[Any], float]]:
    """(file id, frames, sampling interval) of every hashed video of the evidence."""
    out = []
    for row in db.conn.execute(
            "SELECT r.file_id, json_extract(r.record, '$.findings.video.vpdq') AS vpdq,"
            " json_extract(r.record, '$.findings.video.seconds_per_hash') AS step"
            " FROM results r JOIN files f ON f.id = r.file_id WHERE f.evidence_id = ?"
            " AND json_extract(r.record, '$.findings.video.vpdq') IS NOT NULL"
            " ORDER BY r.file_id", (evidence_id,)):
        frames = [parse_compact(s, f"file {row['file_id']}") for s in json.loads(row["vpdq"])]
        if frames:
            out.append((row["file_id"], frames, float(row["step"] or 1.0)))
    return out


def match_videos(db: CaseDatabase, evidence_id: str, rule: Rule = DEFAULT_RULE
                 ) -> dict[str, Any]:
    """Record every (video, known video) pair that meets ``rule``; return what was done."""
    known_rows = db.conn.execute(
        "SELECT hashset_id, value, category, entry_id FROM known_hashes"
        " WHERE algorithm = 'vpdq' ORDER BY rowid").fetchall()
    if not known_rows:
        return {}
    known = []  # (entry id, set id, category, frame) of good known frames
    known_total: dict[int, int] = defaultdict(int)
    for row in known_rows:
        frame = parse_compact(row["value"], f"known entry {row['entry_id']}")
        if frame.quality >= rule.quality:
            known.append((row["entry_id"], row["hashset_id"], row["category"], frame))
            known_total[row["entry_id"]] += 1
    videos = evidence_videos(db, evidence_id)
    queries = [(vi, qi, f) for vi, (_, frames, _) in enumerate(videos)
               for qi, f in enumerate(frames) if f.quality >= rule.quality]
    query_total: dict[int, int] = defaultdict(int)
    for vi, _, _ in queries:
        query_total[vi] += 1
    hits_q: dict[tuple[int, int], set[int]] = defaultdict(set)  # (video, entry) -> frames
    hits_k: dict[tuple[int, int], set[int]] = defaultdict(set)  # (video, entry) -> known
    closest: dict[tuple[int, int], int] = {}
    index = None
    if known and queries:
        index = HammingIndex(hex_to_words([k[3].pdq for k in known], 256), rule.distance)
        q, k, d = index.search(hex_to_words([f.pdq for _, _, f in queries], 256))
        for qi, ki, dist in zip(q.tolist(), k.tolist(), d.tolist(), strict=True):
            vi, frame_index, _ = queries[qi]
            pair = (vi, known[ki][0])
            hits_q[pair].add(frame_index)
            hits_k[pair].add(ki)
            closest[pair] = min(dist, closest.get(pair, dist))
    entry_info = {k[0]: (k[1], k[2]) for k in known}
    rows, detail = [], []
    for (vi, entry), frames_hit in sorted(hits_q.items()):
        query_pct = len(frames_hit) * 100.0 / query_total[vi]
        compared_pct = len(hits_k[vi, entry]) * 100.0 / known_total[entry]
        if not is_match(query_pct, compared_pct, rule):
            continue
        file_id, frames, step = videos[vi]
        set_id, category = entry_info[entry]
        ranges = time_ranges([frames[i].timestamp for i in frames_hit], step)
        known_times = [known[k][3].timestamp for k in hits_k[vi, entry]]
        rows.append((file_id, set_id, "vpdq", closest[vi, entry], category,
                     f"vpdq:{entry}", entry))
        detail.append((file_id, set_id, entry, round(query_pct, 2), round(compared_pct, 2),
                       query_total[vi], known_total[entry], json.dumps(ranges),
                       json.dumps(time_ranges(known_times, step))))
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
    return {"known_videos": len(known_total), "known_frames": len(known),
            "videos": len(videos), "frames": len(queries), "pairs": len(rows),
            "rule": asdict(rule), "index": None if index is None else index.describe()}


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
