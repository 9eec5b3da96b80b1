"""Group commit (issue 17): batches the driver takes in together give exactly what it
gives taking them in one at a time — rows, Merkle roots, ledger entries — in one
transaction and one ledger fsync.

The real CLI runs once on an ext4 image (zips of photos: derived entries; cut JPEGs:
error records; text) with the driver's batch outcomes kept as they arrived, and a copy of
its case from just before the first result; the outcomes are then taken into that copy
as a single group and the two cases compared.
"""

from __future__ import annotations

import io
import os
import pickle
import random
import sqlite3
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import require_tool
from PIL import Image
from pipeline_helpers import CONFIG_HOME, EXAMINER, REPO, exhibit, ledger_entries, wal_commits

CAPTURE = textwrap.dedent('''
    import pickle, shutil, sys
    from pathlib import Path
    from pipeline.run import collect
    out, template = Path(sys.argv[1]), Path(sys.argv[2])
    kept = []
    store = collect.store_batches
    def keep(case, finished):
        if not kept:  # the case just before its first result
            case.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            shutil.copytree(case.directory, template)
        kept.extend((batch_id, pickle.loads(pickle.dumps(o))) for batch_id, o in finished)
        store(case, finished)
    collect.store_batches = keep
    from pipeline.cli import main
    sys.argv = ["exhibit", *sys.argv[3:]]
    try:
        main()
    finally:
        out.write_bytes(pickle.dumps(kept))
''')

TABLES = {
    "batches": "SELECT id, status, merkle_root, file_ids, bytes FROM batches ORDER BY id",
    "results": "SELECT file_id, batch_id, leaf_index, record FROM results ORDER BY file_id",
    "files": "SELECT * FROM files ORDER BY id",
    "errors": "SELECT file_id, batch_id, stage, analyzer, error, message FROM errors"
              " ORDER BY file_id, stage, error, message",
}


def rows(case: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(case / "case.sqlite") as db:
        return {name: [tuple(r) for r in db.execute(sql)] for name, sql in TABLES.items()}


def batch_entries(case: Path) -> dict[str, dict[str, Any]]:
    return {e["subject"]["batch_id"]: e["details"] for e in ledger_entries(case)
            if e["action"] == "batch.analysed"}


@pytest.fixture(scope="module")
def mixed_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("group")
    root = work / "root"
    root.mkdir()
    rng = random.Random(17)
    for n in range(40):
        picture = io.BytesIO()
        Image.frombytes("RGB", (64, 48), rng.randbytes(64 * 48 * 3)).save(picture, "JPEG")
        with zipfile.ZipFile(root / f"{n:02d}-album.zip", "w") as archive:
            archive.writestr(f"photo{n:02d}.jpg", picture.getvalue())
        (root / f"{n:02d}-cut.jpg").write_bytes(picture.getvalue()[: 300 + n])
        (root / f"{n:02d}-note.txt").write_text(f"note {n} " * (50 + 20 * n))
    image = work / "mixed.img"
    subprocess.run([require_tool("mke2fs"), "-q", "-t", "ext4", "-d", root, image, "16M"],
                   check=True)
    return image


def test_one_group_equals_one_batch_at_a_time(mixed_image: Path, tmp_path: Path) -> None:
    from pipeline.case.store import Case
    from pipeline.run import collect

    kept, template, case = tmp_path / "kept.pickle", tmp_path / "template", tmp_path / "case"
    env = dict(os.environ, EXHIBIT_EXAMINER=EXAMINER, XDG_CONFIG_HOME=str(CONFIG_HOME),
               PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", CAPTURE, kept, template, "triage", mixed_image,
                    "--case", case, "--workers", "2", "--no-progress"],
                   check=True, cwd=REPO, env=env, capture_output=True, timeout=600)
    outcomes = pickle.loads(kept.read_bytes())
    assert len(outcomes) >= 3, "the image must make several batches for a real group"
    assert len({batch_id for batch_id, _ in outcomes}) == len(outcomes)

    grouped = Case(template, examiner=EXAMINER, create=False)
    try:
        collect.store_batches(grouped, outcomes)
        collect.record_batches(grouped, [batch_id for batch_id, _ in outcomes])
    finally:
        grouped.close()

    with sqlite3.connect(case / "case.sqlite") as db:  # the comparison covers them all
        derived, errors = db.execute(
            "SELECT (SELECT count(*) FROM files WHERE parent_id IS NOT NULL),"
            " (SELECT count(*) FROM errors WHERE batch_id IS NOT NULL)").fetchone()
    assert derived > 0 and errors > 0
    assert rows(template) == rows(case)
    assert batch_entries(template) == batch_entries(case)
    # The group's entries are consecutive at the ledger's end and the whole chain verifies.
    tail = ledger_entries(template)[-len(outcomes):]
    assert [e["subject"]["batch_id"] for e in tail] == [b for b, _ in outcomes]
    assert [e["seq"] for e in tail] == list(range(tail[0]["seq"], tail[0]["seq"] + len(tail)))
    exhibit("ledger", "verify", template)
    with sqlite3.connect(template / "case.sqlite") as db:
        seqs = dict(db.execute("SELECT id, ledger_seq FROM batches"))
    assert {e["subject"]["batch_id"]: e["seq"] for e in tail} == seqs


def test_steps_taken_together_cost_one_sync_of_each_file(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """A walk's volumes are recorded together (``Case.record_many``): one write and one
    fsync of the ledger and one commit of the database for all of them, where each
    entry on its own cost both (two syncs a volume before the analysis could start)."""
    from pipeline.case.store import Case

    case = Case(tmp_path / "case", examiner=EXAMINER)
    try:
        wal = tmp_path / "case" / "case.sqlite-wal"
        commits = wal_commits(wal)
        synced: list[int] = []
        fsync = os.fsync
        monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), fsync(fd))[1])
        steps: list[tuple[str, dict[str, Any] | None, dict[str, Any]]] = [
            ("volume.skipped", {"evidence_id": "ev-x", "volume_index": i},
             {"status": "not-allocated"}) for i in range(5)]
        entries = case.record_many(steps)
        assert len(synced) == 1
        assert wal_commits(wal) == commits + 1
        first = entries[0]["seq"]
        assert [e["seq"] for e in entries] == list(range(first, first + 5))
        assert [e["subject"]["volume_index"] for e in entries] == list(range(5))
        assert case.ledger_head() == (entries[-1]["seq"], entries[-1]["hash"])
    finally:
        case.close()
    assert exhibit("ledger", "verify", tmp_path / "case").returncode == 0
