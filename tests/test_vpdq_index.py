"""Indexed vPDQ matching answers exactly what the reference's brute-force rule answers.

``pipeline.matching.video.compare`` searches every query frame once in a multi-index
over all known frames; ``analyzers.video.vpdq.match_brute`` is the reference's loop
(``matchTwoHash.cpp``; itself checked against the reference binary in test_video.py).
Synthetic videos: known ones of random frames, queries that are noisy, partial or
low-quality copies of some of them, and unrelated ones. More than 4,096 known frames,
so the index takes its multi-index path rather than a scan.
"""

from __future__ import annotations

import random

import pytest

from analyzers.video.vpdq import Frame, Rule, match_brute
from pipeline.matching.video import compare


def _noisy(pdq: str, bits: int, rng: random.Random) -> str:
    value = int(pdq, 16)
    for bit in rng.sample(range(256), bits):
        value ^= 1 << bit
    return f"{value:064x}"


def _video(rng: random.Random, frames: int) -> list[Frame]:
    return [Frame(f"{rng.getrandbits(256):064x}", rng.choice((100, 100, 90, 40)), float(i), i)
            for i in range(frames)]


@pytest.mark.parametrize("rule", [Rule(), Rule(distance=24, quality=60, query_pct=40.0)])
def test_indexed_percentages_equal_brute_force(rule: Rule) -> None:
    rng = random.Random(15)
    known = {key: _video(rng, rng.randint(10, 40)) for key in range(220)}
    assert sum(len(v) for v in known.values()) > 4096
    queries: list[list[Frame]] = []
    for key in rng.sample(sorted(known), 12):  # copies: noisy, trimmed, partly replaced
        source = known[key]
        start = rng.randint(0, len(source) // 3)
        copy = [Frame(_noisy(f.pdq, rng.choice((rng.randint(0, 15), rng.randint(16, 45))),
                             rng), f.quality, f.timestamp) for f in source[start:]]
        queries.append(copy + _video(rng, rng.randint(0, 3)))
    queries += [_video(rng, 20) for _ in range(4)]  # unrelated
    pairs, _ = compare(queries, known, rule)
    found = {(p.video, p.known): (p.query_pct, p.compared_pct) for p in pairs}
    for vi, query in enumerate(queries):
        for key, frames in known.items():
            expected = match_brute(query, frames, rule)
            got = found.get((vi, key), (0.0, 0.0))
            assert got == pytest.approx(expected), (vi, key)
    # Both sides of the threshold occur, so the comparison above means something.
    assert any(p.query_pct >= rule.query_pct for p in pairs)
    assert any(0 < p.query_pct < rule.query_pct for p in pairs)
