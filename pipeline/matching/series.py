"""Near-duplicate series: an evidence's pictures (and videos) within the matching
thresholds of each other, grouped so an examiner reviews a group once.

Pairs come from pHash (64-bit) and from PDQ with every rotation and mirror of a picture
(its 8 dihedral variants), then vPDQ links for videos; union-find over the pairs makes
the groups, and each member keeps its closest link (distance and algorithm).

The pair search is the end of every run's work that grows with the pictures (a card of
5,500 photos: 44,000 PDQ variants searched at distance 31 and the pHash self-join), so a
triage begins it early (:class:`EarlyPairs`): once every batch is sent, the pictures
already stored are searched on a second connection while the workers run the last
batches, and their variants' index is kept; at the end only the pairs with an end among
the pictures stored since (or changed since) are searched, both ways (:func:`search`),
so the pairs, their distances and the groups are those of one search of every picture.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from pipeline.case.database import CaseDatabase
from pipeline.case.schema import PICTURES_CONDITION
from pipeline.matching.index import HammingIndex, hex_to_words
from pipeline.matching.known import Thresholds
from pipeline.matching.video import series_links

Row = tuple[int, str | None, str | None, int | None, str | None]  # file, phash, pdq, q, d8
Pair = tuple[int, int, int]  # (file id, file id, distance)


@dataclass
class Pairs:
    """Near pairs among some pictures, the rows they were found from and, from an early
    search, those pictures' PDQ variants indexed (for the pictures stored after it)."""

    rows: dict[int, Row] = field(default_factory=dict)
    phash: list[Pair] = field(default_factory=list)
    pdq: list[Pair] = field(default_factory=list)
    variants: Variants | None = None


@dataclass(frozen=True)
class Variants:
    """Pictures' PDQ variants (every rotation and mirror) in one index, by owner."""

    index: HammingIndex
    owner: list[int]  # the file id of each variant

    @classmethod
    def of(cls, good: list[Row], radius: int) -> Variants:
        listed, owner = _variants(good)
        return cls(HammingIndex(hex_to_words(listed, 256), radius), owner)

    def pairs(self, good: list[Row]) -> list[Pair]:
        """(owner, picture, distance) where a variant of the owner is near the picture."""
        if not good:
            return []
        q, k, d = self.index.search(hex_to_words([r[2] for r in good], 256))
        return _pairs(k, q, d, self.owner, [r[0] for r in good])


def picture_rows(conn: sqlite3.Connection, evidence_id: str) -> list[Row]:
    """The evidence's pictures' rows (through the partial index schema.MEDIA_RESULT_INDEXES),
    by file id."""
    return [tuple(r) for r in conn.execute(
        "SELECT r.file_id, r.phash, r.pdq, r.pdq_quality, r.pdq_dihedral FROM results r"
        f" CROSS JOIN files f ON f.id = r.file_id WHERE ({PICTURES_CONDITION})"
        " AND f.evidence_id = ? ORDER BY r.file_id", (evidence_id,))]


def early_search(rows: list[Row], thresholds: Thresholds) -> Pairs:
    """Every near pair among ``rows``, found from the variants' side (the pairs and
    distances of :func:`search`), keeping the variants' index for the pictures to come."""
    good = [r for r in rows if _good(r, thresholds)]
    variants = Variants.of(good, thresholds.pdq) if len(good) > 1 else None
    return Pairs({r[0]: r for r in rows}, _phash_pairs(rows, rows, thresholds.phash),
                 variants.pairs(good) if variants else [], variants)


def search(rows: list[Row], thresholds: Thresholds, before: Pairs | None = None) -> Pairs:
    """Every near pair among ``rows``; with ``before`` (an early search), only the pairs
    with an end among the pictures it did not see or saw otherwise.

    PDQ's distance from one picture's variants to another's hash is not the other's to
    the first (a mirrored raster's DCT is not a permutation of the hash's bits), so a
    pair is searched both ways: the new pictures' variants against every picture, and
    the new pictures against the variants indexed early."""
    good = [r for r in rows if _good(r, thresholds)]
    if before is None:
        return Pairs({r[0]: r for r in rows}, _phash_pairs(rows, rows, thresholds.phash),
                     _pdq_pairs(good, good, thresholds.pdq))
    same = {r[0] for r in rows if before.rows.get(r[0]) == r}
    fresh = [r for r in rows if r[0] not in same]
    fresh_good = [r for r in fresh if _good(r, thresholds)]
    pdq = _kept(before.pdq, same) + _pdq_pairs(good, fresh_good, thresholds.pdq)
    if before.variants is not None:
        pdq += [p for p in before.variants.pairs(fresh_good) if p[0] in same]
    return Pairs({r[0]: r for r in rows},
                 _kept(before.phash, same) + _phash_pairs(rows, fresh, thresholds.phash), pdq)


def _phash_pairs(rows: list[Row], queries: list[Row], radius: int) -> list[Pair]:
    ph = [r for r in rows if r[1]]
    asked = [r for r in queries if r[1]]
    if len(ph) < 2 or not asked:
        return []
    index = HammingIndex(hex_to_words([r[1] for r in ph], 64), radius)
    q, k, d = index.search(hex_to_words([r[1] for r in asked], 64))
    return _pairs(q, k, d, [r[0] for r in asked], [r[0] for r in ph])


def _pdq_pairs(good: list[Row], asked: list[Row], radius: int) -> list[Pair]:
    """(asker, picture, distance) where a variant of the asker is near the picture."""
    if len(good) < 2 or not asked:
        return []
    listed, owner = _variants(asked)
    index = HammingIndex(hex_to_words([r[2] for r in good], 256), radius)
    q, k, d = index.search(hex_to_words(listed, 256))
    return _pairs(q, k, d, owner, [r[0] for r in good])


def _variants(good: list[Row]) -> tuple[list[str], list[int]]:
    """Every variant of the pictures (a picture without its list: itself), by owner."""
    dihedral = json.loads(  # one parse for all the lists: 25 ms for 5,500, not 48
        "[" + ",".join(r[4] or "null" for r in good) + "]")
    listed, owner = [], []
    for r, variants in zip(good, dihedral, strict=True):
        for v in variants or [r[2]]:
            listed.append(v)
            owner.append(r[0])
    return listed, owner


def _good(row: Row, thresholds: Thresholds) -> bool:
    return bool(row[2]) and (row[3] or 0) >= thresholds.pdq_quality


def _pairs(a_side: Any, b_side: Any, d: Any, a_ids: list[int], b_ids: list[int]
           ) -> list[Pair]:
    return [(a_ids[a], b_ids[b], dist)
            for a, b, dist in zip(a_side.tolist(), b_side.tolist(), d.tolist(), strict=True)
            if a_ids[a] != b_ids[b]]


def _kept(pairs: Iterable[Pair], same: set[int]) -> list[Pair]:
    return [p for p in pairs if p[0] in same and p[1] in same]


@dataclass
class EarlyPairs:
    """The pair search over the pictures stored so far, begun beside the last batches.

    ``begin`` starts it on a read-only second connection (it sees committed rows only and
    waits for no writer); ``take`` waits for it and raises its error."""

    db: CaseDatabase
    evidence_id: str
    thresholds: Thresholds
    _found: Future[Pairs] | None = field(default=None, init=False, repr=False)

    def begin(self) -> None:
        """Search the pictures stored so far, beside whatever comes next (idempotent)."""
        if self._found is None:
            self._found = self.db.apart(
                lambda conn: early_search(picture_rows(conn, self.evidence_id),
                                          self.thresholds), read_only=True)

    def take(self) -> Pairs | None:
        return None if self._found is None else self._found.result()


def group_series(db: CaseDatabase, evidence_id: str, thresholds: Thresholds,
                 early: EarlyPairs | None = None) -> dict[str, Any]:
    """Group the evidence's near-duplicate images; store and return the groups."""
    rows = picture_rows(db.conn, evidence_id)
    before = early.take() if early is not None and early.thresholds == thresholds else None
    found = search(rows, thresholds, before)
    ids = [r[0] for r in rows]
    row_of = {fid: i for i, fid in enumerate(ids)}
    parent = list(range(len(ids)))
    link: dict[int, tuple[int, str]] = {}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(fa: int, fb: int, dist: int, algo: str) -> None:
        for fid in (fa, fb):
            if fid not in row_of:  # a video (vPDQ links)
                row_of[fid] = len(ids)
                ids.append(fid)
                parent.append(len(parent))
        a, b = row_of[fa], row_of[fb]
        for i in (a, b):  # the closest link; on a tie the first algorithm joined
            if i not in link or dist < link[i][0]:
                link[i] = (dist, algo)
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for algo, pairs in (("phash", found.phash), ("pdq", found.pdq)):
        for fa, fb, dist in pairs:
            join(fa, fb, dist, algo)
    # Videos: the same clip re-encoded, and pictures that are frames of a video (vPDQ).
    good = [(r[0], r[2]) for r in rows if _good(r, thresholds)]
    for fa, fb, dist in series_links(db, evidence_id, good):
        join(fa, fb, dist, "vpdq")
    members: dict[int, list[int]] = {}
    for i in range(len(ids)):
        members.setdefault(find(i), []).append(i)
    groups = [sorted(m) for m in members.values() if len(m) > 1]
    db.begin()
    try:
        db.conn.execute("DELETE FROM media_groups WHERE evidence_id = ?", (evidence_id,))
        db.conn.executemany(
            "INSERT INTO media_groups (file_id, evidence_id, group_id, size, algorithm,"
            " distance) VALUES (?,?,?,?,?,?)",
            [(ids[i], evidence_id, min(ids[j] for j in g), len(g), link[i][1], link[i][0])
             for g in groups for i in g])
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return {"groups": len(groups), "images_in_groups": sum(len(g) for g in groups),
            "largest": max((len(g) for g in groups), default=0)}

