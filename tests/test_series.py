"""Near-duplicate series: pairs searched early (the pictures stored while the last batches
run) and at the end (the pictures stored or changed since) give the groups that one
search of every picture gives — with real pHash and PDQ of real pictures, mirrored and
rotated copies among them, in numbers that take the multi-index search, not the scan."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from analyzers.perceptual import DEFAULT_ALGORITHMS
from ingest.location import EvidenceLocation, FileEntry
from pipeline.case.database import CaseDatabase
from pipeline.matching.known import Thresholds
from pipeline.matching.series import (
    EarlyPairs,
    early_search,
    group_series,
    picture_rows,
    search,
)

EVIDENCE = "5e" * 32
BASES = 330  # × 4 pictures: 1,320, over the 1,024 from which the index is used
COMPUTE = {a.name: a.compute for a in DEFAULT_ALGORITHMS}


def _pictures(rng: np.random.Generator) -> list[Image.Image]:
    """Smooth pictures, each with a mirrored, a rotated and a brightened copy."""
    out = []
    for _ in range(BASES):
        base = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize(
            (96, 96), Image.Resampling.BICUBIC)
        out += [base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                base.transpose(Image.Transpose.ROTATE_90),
                Image.eval(base, lambda v: min(255, v + 8))]
    return out


def _row(file_id: int, picture: Image.Image) -> tuple[Any, ...]:
    pdq = COMPUTE["pdq"](picture)
    assert isinstance(pdq, dict) and len(pdq["pdq_dihedral"]) == 8
    return (file_id, "b", file_id, "{}", COMPUTE["phash"](picture), pdq["pdq"],
            pdq["pdq_quality"], "[" + ",".join(f'"{v}"' for v in pdq["pdq_dihedral"]) + "]")


def _insert(db: CaseDatabase, rows: list[tuple[Any, ...]]) -> None:
    db.conn.executemany("INSERT OR REPLACE INTO results (file_id, batch_id, leaf_index, record,"
                        " phash, pdq, pdq_quality, pdq_dihedral) VALUES (?,?,?,?,?,?,?,?)", rows)
    db.conn.commit()


def _groups(db: CaseDatabase) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in db.conn.execute(
        "SELECT file_id, group_id, size, algorithm, distance FROM media_groups"
        " ORDER BY file_id")]


def _case(tmp_path: Path) -> tuple[CaseDatabase, list[int]]:
    db = CaseDatabase(tmp_path / "case.sqlite")
    db.conn.execute("PRAGMA foreign_keys=OFF")  # no evidence row needed
    db.add_files([FileEntry(EvidenceLocation(EVIDENCE, 0, 0, "ext4", 100 + i, f"/p{i}.jpg"),
                            f"p{i}.jpg", 4096, "file", True) for i in range(4 * BASES + 1)])
    db.conn.commit()
    return db, [r[0] for r in db.conn.execute("SELECT id FROM files ORDER BY id")]


def test_pairs_searched_early_and_at_the_end_give_the_groups_of_one_search(
        tmp_path: Path) -> None:
    rng = np.random.default_rng(18)
    pictures = _pictures(rng)
    db, ids = _case(tmp_path)
    rows = [_row(fid, pic) for fid, pic in zip(ids, pictures, strict=False)]
    order = list(range(len(rows)))
    random.Random(5).shuffle(order)  # batches finish in any order
    stored = sorted(order[:1100])
    _insert(db, [rows[i] for i in stored])

    thresholds = Thresholds()
    early = EarlyPairs(db, EVIDENCE, thresholds)
    early.begin()
    found = early.take()
    assert found is not None and sorted(found.rows) == [ids[i] for i in stored]

    # The last batches: the other pictures, and one stored picture stored again, changed
    # (a mirrored copy replaced by a new picture: it must leave its group).
    late = sorted(order[1100:])
    changed = next(i for i in stored if i % 4 == 1)
    new_picture = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize(
        (96, 96), Image.Resampling.BICUBIC)
    _insert(db, [rows[i] for i in late] + [_row(ids[changed], new_picture)])

    with_early = group_series(db, EVIDENCE, thresholds, early)
    by_early = _groups(db)
    at_once = group_series(db, EVIDENCE, thresholds)
    assert by_early == _groups(db) and with_early == at_once

    group_of = {r[0]: r[1] for r in by_early}
    algorithm = {r[0]: r[3] for r in by_early}
    assert ids[changed] not in group_of
    # Groups that span both searches, joined through a mirror (PDQ's variants only).
    spanning = [b for b in range(BASES)
                if {4 * b, 4 * b + 1} & set(late) and {4 * b, 4 * b + 1} & set(stored)
                and 4 * b + 1 != changed]
    assert len(spanning) > 20
    for b in spanning:
        assert group_of[ids[4 * b]] == group_of[ids[4 * b + 1]]
        assert algorithm[ids[4 * b + 1]] == "pdq"
    assert with_early["groups"] >= BASES - 5


def test_pairs_of_the_new_pictures_against_all_complete_those_among_the_old(
        tmp_path: Path) -> None:
    """The decomposition itself: pairs among the old pictures, searched early, plus those
    with a new (or changed) picture at either end are every pair, each with its smallest
    distance — though PDQ's distance from a's variants to b is not b's to a."""
    rng = np.random.default_rng(7)
    db, ids = _case(tmp_path)
    rows = [_row(fid, pic) for fid, pic in zip(ids, _pictures(rng), strict=False)]
    _insert(db, rows)
    every = picture_rows(db.conn, EVIDENCE)
    old = sorted(every[::3] + every[1::3])
    changed = (*old[1][:2], old[7][2], 100, old[7][4])  # its PDQ replaced by another's
    now = sorted([*every[2::3], changed, *old[:1], *old[2:]])
    thresholds = Thresholds()

    def closest(*found: Any) -> dict[str, dict[frozenset[int], int]]:
        out: dict[str, dict[frozenset[int], int]] = {"phash": {}, "pdq": {}}
        for pairs in found:
            for algo in out:
                for a, b, dist in getattr(pairs, algo):
                    key = frozenset((a, b))
                    out[algo][key] = min(dist, out[algo].get(key, dist))
        return out

    whole = closest(search(now, thresholds))
    parts = closest(search(now, thresholds, early_search(old, thresholds)))
    assert parts == whole
    assert len(whole["pdq"]) > BASES and len(whole["phash"]) > 0.9 * BASES
    one_way = {frozenset(p[:2]) for p in search(now, thresholds).pdq if p[0] < p[1]}
    other_way = {frozenset(p[:2]) for p in search(now, thresholds).pdq if p[0] > p[1]}
    assert one_way != other_way  # the test exercises the asymmetry
