"""The mechanisms the speed work added keep their promises (correctness, not timing).

Timing is the benchmarks' business (``benchmarks/speed``); here: guided batch planning
covers every file once within the maxima, one decode serves the perceptual hashes and
the thumbnail without changing either, the watchdog's last-resort timer is disarmed
between batches, repeated walk entries still get distinct keys, a batch task carries
each entry exactly as the walk stored it, and the benchmark runs
exhibit from the source tree given, with its bytecode written, as an installation would,
and the local cluster's servers check their event loops twice a second, not fifty times; a
new case's tables are made in one transaction (one sync, not one per statement), and
opening an existing case writes nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import random
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline_helpers import wal_commits
from test_analyzers import encode, entry, procedural

import analyzers.perceptual as perceptual
from analyzers import registry
from analyzers.run import analyze_bytes
from ingest.layers.snapshots import UNCHANGED_NOTE
from ingest.location import Derivation, EvidenceLocation, FileEntry, Snapshot
from pipeline.case.database import CaseDatabase
from pipeline.run.plan import MIN_BATCH_COST, PER_FILE_COST, BatchCutter, plan_batches

REPO = Path(__file__).resolve().parent.parent
EVIDENCE = "ef" * 32


def _files_db(tmp_path: Path, volumes: list[list[int]]) -> CaseDatabase:
    """A real case database holding regular files of the given sizes, per volume."""
    db = CaseDatabase(tmp_path / "case.sqlite")
    db.conn.execute("PRAGMA foreign_keys=OFF")  # no evidence row needed to plan
    inode = 100
    for index, sizes in enumerate(volumes):
        entries = []
        for size in sizes:
            inode += 1
            loc = EvidenceLocation(EVIDENCE, index, index * 1048576, "ext4", inode, f"/f{inode}")
            entries.append(FileEntry(loc, f"f{inode}", size, "file", True))
        db.add_files(entries)
    db.conn.commit()
    return db


@pytest.mark.parametrize("parallelism", [1, 2, 8])
def test_guided_plan_covers_every_file_once_within_the_maxima(tmp_path: Path,
                                                              parallelism: int) -> None:
    sizes = [(i * 7919) % (3 << 20) for i in range(3000)]
    sizes[1500] = 200 << 20  # one file over every limit: a batch of its own
    db = _files_db(tmp_path, [sizes, [4096] * 500])
    ids = [r["id"] for r in db.conn.execute("SELECT id FROM files ORDER BY volume_offset, id")]
    batches = list(plan_batches(db, EVIDENCE, 64 << 20, 400, parallelism))
    assert [i for _, batch, _ in batches for i in batch] == ids  # all, once, in walk order
    rows = {r["id"]: r for r in db.conn.execute("SELECT id, volume_offset, size FROM files")}
    for offset, batch, nbytes in batches:
        assert {rows[i]["volume_offset"] for i in batch} == {offset}  # never across volumes
        assert nbytes == sum(rows[i]["size"] for i in batch)
        assert len(batch) <= 400
        assert nbytes <= (64 << 20) or len(batch) == 1 or nbytes - rows[batch[-1]]["size"] < (
            64 << 20)  # a batch closes at the first file that takes it over the limit

    def cost(batch: list[int]) -> int:
        return sum(rows[i]["size"] + PER_FILE_COST for i in batch)

    first_volume = [b for o, b, _ in batches if o == 0]
    ramp, rest = first_volume[:parallelism], first_volume[parallelism:]
    assert max(cost(b) for b in ramp) < max(cost(b) for b in rest), "a quick first batch"
    tail = rest[-3:]
    assert cost(tail[-1]) <= max(MIN_BATCH_COST + (3 << 20) + PER_FILE_COST,
                                 cost(rest[0])), "batches shrink towards the end"


@pytest.mark.parametrize("parallelism", [1, 2, 16])
@pytest.mark.parametrize("seed", range(4))
def test_quick_start_batches_cut_during_the_walk_are_the_plans_first(
        tmp_path: Path, parallelism: int, seed: int) -> None:
    """The batches sent while the walk runs (``plan.QuickStart``) must be the very first
    batches of the plan made after it, from the files walked so far alone."""
    rng = random.Random(seed)
    volumes = [[rng.choice([0, 100, 4096, 70_000, 3 << 20, 9 << 20])
                for _ in range(rng.randint(0, 60))] for _ in range(rng.randint(1, 3))]
    db = _files_db(tmp_path, volumes)
    batch_bytes, batch_files = rng.choice([(64 << 20, 400), (4 << 20, 7), (256 << 20, 2000)])
    planned = list(plan_batches(db, EVIDENCE, batch_bytes, batch_files, parallelism))
    cutter = BatchCutter(batch_bytes, batch_files, parallelism)
    early = []
    for row in db.conn.execute("SELECT id, volume_offset, size FROM files ORDER BY id"):
        batch = cutter.add(row["id"], row["volume_offset"], row["size"])
        if batch is not None:
            early.append(batch)
    assert cutter.quick_start_done == (len(planned) > parallelism)
    # All cut before the walk ended but the last (cut by the plan, once every file is in).
    assert early == planned[:min(parallelism, len(planned) - 1)] or (
        not planned and not early)
    if cutter.quick_start_done:  # nothing more is cut before the totals are known
        assert cutter.add(10**9, 0, 1) is None and cutter.planned == parallelism
    # Those stored during the walk, the plan made after it gives the rest, the same.
    for stored in range(len(early) + 1):
        assert list(plan_batches(db, EVIDENCE, batch_bytes, batch_files, parallelism,
                                 early[:stored])) == planned[stored:]


def _walked(cutter: BatchCutter, db: CaseDatabase) -> list[tuple[int, list[int], int]]:
    """The batches ``add_walked`` cuts, given the files in walk order as the walk would."""
    out = []
    for row in db.conn.execute("SELECT id, volume_offset, size FROM files"
                               " ORDER BY volume_offset, id"):
        out.extend(cutter.add_walked(row["id"], row["volume_offset"], row["size"]))
    return out


@pytest.mark.parametrize("parallelism", [1, 2, 16])
@pytest.mark.parametrize("seed", range(6))
def test_batches_cut_during_the_walk_are_the_plans_own(tmp_path: Path, parallelism: int,
                                                       seed: int) -> None:
    """Past the quick start, a batch cut while the walk runs (``add_walked``, the total
    unknown) is the batch the plan of all files cuts there, and the plan made after the
    walk continues after any of them exactly as the whole plan does."""
    rng = random.Random(100 + seed)
    sizes = [0, 100, 4096, 70_000, 1 << 20, 3 << 20, 9 << 20]
    volumes = [[rng.choice(sizes) for _ in range(rng.randint(0, 900))]
               for _ in range(rng.randint(1, 3))]
    db = _files_db(tmp_path, volumes)
    batch_bytes, batch_files = rng.choice([(64 << 20, 400), (4 << 20, 7), (256 << 20, 2000),
                                           (32 << 20, 50)])
    planned = list(plan_batches(db, EVIDENCE, batch_bytes, batch_files, parallelism))
    early = _walked(BatchCutter(batch_bytes, batch_files, parallelism), db)
    assert early == planned[:len(early)]
    assert len(early) < len(planned) or not planned  # the last waits for the walk's end
    for stored in sorted({0, len(early) // 2, max(0, len(early) - 1), len(early)}):
        assert list(plan_batches(db, EVIDENCE, batch_bytes, batch_files, parallelism,
                                 early[:stored])) == planned[stored:]


def test_a_long_walk_feeds_the_workers_before_it_ends(tmp_path: Path) -> None:
    """Many small files (the many-small image's shape): batches close on --batch-files,
    so all but the plan's shrinking tail are cut before the walk ends."""
    db = _files_db(tmp_path, [[4096] * 20_000])
    planned = list(plan_batches(db, EVIDENCE, 256 << 20, 400, 2))
    early = _walked(BatchCutter(256 << 20, 400, 2), db)
    assert len(early) > 2 and early == planned[:len(early)]
    assert sum(len(ids) for _, ids, _ in early) > 0.8 * 20_000


def test_planning_more_workers_gives_more_smaller_batches(tmp_path: Path) -> None:
    db = _files_db(tmp_path, [[1 << 20] * 2000])
    counts = [len(list(plan_batches(db, EVIDENCE, 256 << 20, 2000, p))) for p in (1, 2, 8)]
    assert counts[0] < counts[1] < counts[2]


def _results_db(tmp_path: Path, pictures: int, others: int) -> CaseDatabase:
    """A real case database whose files have results: ``pictures`` with pHash and PDQ
    (near duplicates of one another in pairs), ``others`` without (text, say)."""
    tmp_path.mkdir()
    db = _files_db(tmp_path, [[4096] * (pictures + others)])
    rng = random.Random(pictures + others)
    ids = [r[0] for r in db.conn.execute("SELECT id FROM files ORDER BY id")]
    rows = []
    for n, file_id in enumerate(ids):
        phash = pdq = None
        if n < pictures:  # pairs: the second flips a few bits of the first
            seed = random.Random(n // 2)
            phash = f"{seed.getrandbits(64) ^ (n % 2) * 0b101:016x}"
            pdq = f"{seed.getrandbits(256) ^ (n % 2) * 0b1011:064x}"
        rows.append((file_id, "b", n, "{}", phash, pdq, 100 if pdq else None,
                     f"{rng.getrandbits(128):032x}"))
    db.conn.executemany("INSERT INTO results (file_id, batch_id, leaf_index, record, phash,"
                        " pdq, pdq_quality, md5) VALUES (?,?,?,?,?,?,?,?)", rows)
    db.conn.commit()
    return db


def _steps(db: CaseDatabase, work: Callable[[], object]) -> tuple[int, object]:
    """SQLite virtual-machine steps (in hundreds) that ``work`` takes, and its answer."""
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0

    db.conn.set_progress_handler(tick, 100)
    try:
        answer = work()
    finally:
        db.conn.set_progress_handler(None, 0)
    return counted[0], answer


def test_the_end_of_a_run_reads_only_the_pictures_and_videos(tmp_path: Path) -> None:
    """Near-duplicate grouping (the end of every run) and matching against pHash/PDQ sets
    read the pictures' and videos' rows through their partial indexes: their work does not
    grow with the other results (SQLite's steps, counted, not timed), and they still find
    what they found before."""
    from pipeline.matching.known import Thresholds
    from pipeline.matching.match import match_near
    from pipeline.matching.series import group_series

    grouping, matching = [], []
    for others in (100, 5_000):
        db = _results_db(tmp_path / f"others-{others}", pictures=40, others=others)
        steps, found = _steps(db, lambda db=db: group_series(db, EVIDENCE, Thresholds()))
        assert found == {"groups": 20, "images_in_groups": 40, "largest": 2}
        grouping.append(steps)
        first = db.conn.execute("SELECT phash, pdq FROM results ORDER BY file_id").fetchone()
        db.conn.executemany("INSERT INTO known_hashes (hashset_id, algorithm, value)"
                            " VALUES (1, ?, ?)", [("phash", first[0]), ("pdq", first[1])])
        steps, searched = _steps(db, lambda db=db: match_near(db, EVIDENCE, Thresholds()))
        assert {a: s["pairs"] for a, s in searched.items()} == {"phash": 2, "pdq": 2}
        matching.append(steps)
        db.close()
    # 50 × the other rows, about the same work
    assert grouping[1] < 2 * grouping[0] and matching[1] < 2 * matching[0], (grouping,
                                                                             matching)


def test_repeated_walk_entries_get_distinct_keys(tmp_path: Path) -> None:
    loc = EvidenceLocation(EVIDENCE, 0, 0, "ext4", 12, "/same")
    same = FileEntry(loc, "same", 3, "file", True)
    db = CaseDatabase(tmp_path / "case.sqlite")
    db.conn.execute("PRAGMA foreign_keys=OFF")
    assert db.add_files([same, same, same]) == 3
    keys = [r[0] for r in db.conn.execute("SELECT entry_key FROM files ORDER BY id")]
    assert keys[1:] == [keys[0] + "#1", keys[0] + "#2"]


def test_walked_entries_go_in_with_their_ids_and_repeats(tmp_path: Path) -> None:
    """The walk's inserts: every entry once, in order, the quick start told each regular
    file's real id, a repeated key numbered, and the entries before a failure kept."""
    db = CaseDatabase(tmp_path / "case.sqlite")
    db.conn.execute("PRAGMA foreign_keys=OFF")

    def entries(n: int, fail_at: int | None = None):  # type: ignore[no-untyped-def]
        for i in range(n):
            if i == fail_at:
                raise OSError("the walk stopped here")
            inode = 7 if i in (400, 401) else 1000 + i  # 401 repeats 400 exactly
            loc = EvidenceLocation(EVIDENCE, 0, 0, "ext4", inode, f"/d/f{min(i, 400)}")
            yield FileEntry(loc, f"f{i}", i, "dir" if i % 5 == 0 else "file", True)

    told: list[tuple[int, int, int]] = []
    db.conn.execute("BEGIN")
    assert db.add_files(entries(700), lambda *a: told.append(a)) == 700
    rows = db.conn.execute("SELECT id, entry_key, size, kind FROM files ORDER BY id").fetchall()
    assert [r["size"] for r in rows] == list(range(700))
    assert rows[401]["entry_key"] == rows[400]["entry_key"] + "#1"
    assert told == [(r["id"], 0, r["size"]) for r in rows if r["kind"] == "file"]
    with pytest.raises(OSError):
        db.add_files(entries(300, fail_at=290))
    assert db.count("SELECT COUNT(*) FROM files") == 700 + 290
    db.conn.execute("COMMIT")


def test_one_decode_serves_perceptual_and_thumbnail(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(procedural(5, (1600, 1200)), "JPEG", quality=90)
    file = entry("photo.jpg", len(data))
    alone = {name: analyze_bytes(data, file, registry.create(["filetype", name])).findings[name]
             for name in ("perceptual", "thumbnail")}
    decodes = []
    real = perceptual._decode
    monkeypatch.setattr(perceptual, "_decode", lambda *a: decodes.append(a) or real(*a))
    both = analyze_bytes(data, file, registry.create(["filetype", "perceptual", "thumbnail"]))
    assert len(decodes) == 1
    assert both.findings["perceptual"] == alone["perceptual"]
    assert both.findings["thumbnail"]["sha256"] == alone["thumbnail"]["sha256"]
    thumb = both.findings["thumbnail"]
    assert hashlib.sha256(__import__("base64").b64decode(thumb["blob_base64"])).hexdigest() \
        == thumb["sha256"]


def test_a_broken_image_is_an_error_for_both_analyzers_and_decoded_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(procedural(6, (800, 600)), "JPEG", quality=90)[:5000]  # truncated
    decodes = []
    real = perceptual._decode
    monkeypatch.setattr(perceptual, "_decode", lambda *a: decodes.append(a) or real(*a))
    result = analyze_bytes(data, entry("cut.jpg", len(data)),
                           registry.create(["filetype", "perceptual", "thumbnail"]))
    assert len(decodes) == 1
    assert {e["analyzer"] for e in result.errors} == {"perceptual", "thumbnail"}
    assert len({e["message"] for e in result.errors}) == 1


def test_watchdog_timer_is_disarmed_after_a_batch() -> None:
    """A worker idle after a batch must not be ended by the last-resort timer."""
    script = textwrap.dedent("""
        import time
        from ingest.image import ImageSpec
        from pipeline.run.watchdog import REARM_SLACK
        from pipeline.run.worker import BatchTask, analyze_batch

        task = BatchTask("b", ImageSpec("raw", ("/nonexistent.img",)), 0,
                         ((1, "k", {"location": {"evidence_id": "e", "volume_index": 0,
                           "volume_offset": 0, "fs_type": "raw", "inode": 1, "path": "/x",
                           "stream": None}, "name": "x", "size": 1, "kind": "file",
                           "allocated": True}),), ("hashes",),
                         file_timeout=0.2, timeout_grace=0.1)
        out = analyze_batch(task)
        assert out["records"][0]["record"]["errors"][0]["stage"] == "read"
        time.sleep(0.2 + 0.1 + 5.0 + REARM_SLACK + 1.5)
        print("alive")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "alive"


@pytest.mark.parametrize(("exit_with", "status", "stderr"), [
    ("None", 0, ""), ("3", 3, ""), ("'no key'", 1, "no key")])
def test_prompt_exit_keeps_status_output_threads_and_exit_handlers(
        tmp_path: Path, exit_with: str, status: int, stderr: str) -> None:
    """The console script ends without Python's teardown, but as Python would end: the
    command's status, everything printed, non-daemon threads finished, exit handlers run
    (multiprocessing's stops helper processes), an executor left open stopped."""
    marks = tmp_path / "marks"
    script = textwrap.dedent(f"""
        import atexit, sys, threading, time
        from concurrent.futures import ThreadPoolExecutor
        import pipeline.cli as cli

        def slow():
            time.sleep(0.3)
            open({str(marks)!r}, "a").write("thread ")

        def command(*args, **kwargs):
            global pool
            threading.Thread(target=slow).start()
            pool = ThreadPoolExecutor(1)  # left open: its idle worker waits for more
            pool.submit(print, end="")
            atexit.register(lambda: open({str(marks)!r}, "a").write("atexit"))
            sys.stdout.write("summary without a newline")  # buffered: flushed on the way out
            sys.exit({exit_with})

        cli.main = command
        cli.run()
        print("never reached")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr.strip()) == (
        status, "summary without a newline", stderr)
    assert marks.read_text() == "thread atexit"


def test_a_profiled_command_keeps_the_usual_exit(tmp_path: Path) -> None:
    """``python -m cProfile`` writes its profile after the command returns: the prompt
    exit must not skip it."""
    out = tmp_path / "exhibit.prof"
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m",
                           "pipeline.cli", "--version"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "exhibit" in done.stdout, done.stderr
    assert out.stat().st_size > 0


def test_the_benchmark_runs_the_tree_given_from_its_bytecode(tmp_path: Path) -> None:
    """The speed benchmark runs exhibit from the source tree given (``--source``,
    ``--baseline-source``), as installed: bytecode written (else, with
    PYTHONDONTWRITEBYTECODE set, every process of a run compiles at start), and that tree
    whatever the working directory."""
    spec = importlib.util.spec_from_file_location("speed_run",
                                                  REPO / "benchmarks" / "speed" / "run.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    tree = tmp_path.resolve()
    (tree / "pyproject.toml").write_text('[tool.setuptools.packages.find]\ninclude = ["pkg*"]\n')
    (tree / "pkg").mkdir()
    (tree / "pkg" / "__init__.py").write_text("")
    (tree / "pkg" / "mod.py").write_text("VALUE = 1\n")
    env = dict(bench.installed_env(tree), PYTHONDONTWRITEBYTECODE="1")
    loaded = subprocess.run([sys.executable, "-v", "-c", "import pkg.mod"], env=env,
                            capture_output=True, text=True, check=True, cwd=tree).stderr
    assert f"code object from '{tree}/pkg/__pycache__/mod." in loaded
    # Run from another checkout (the repository, as `make bench` does), ``python -m``
    # still runs the tree measured, not the one in the working directory.
    elsewhere = tmp_path / "checkout"
    (elsewhere / "pkg").mkdir(parents=True)
    (elsewhere / "pkg" / "__init__.py").write_text("")
    (elsewhere / "pkg" / "mod.py").write_text("print(__file__)\n")
    (tree / "pkg" / "mod.py").write_text("print(__file__)\n")
    ran = subprocess.run([sys.executable, "-m", "pkg.mod"], env=bench.installed_env(tree),
                         capture_output=True, text=True, check=True, cwd=elsewhere).stdout
    assert ran.strip() == str(tree / "pkg" / "mod.py")
    (tree / "pkg" / "broken.py").write_text("def (:\n")
    with pytest.raises(SystemExit, match="does not compile"):
        bench.installed_env(tree)


def test_every_server_of_the_local_cluster_checks_its_event_loop_twice_a_second() -> None:
    """Dask's default 20 ms event-loop check cost ~4 % of a core in the driver and ~1.5 %
    in each worker, idle or busy (issue 18); exhibit's local cluster — the scheduler and
    the nannies in the driver, each worker process — runs it every 500 ms."""
    from pipeline.run.cluster import BatchRunner

    with BatchRunner(2) as runner:
        assert runner.cluster is not None and runner.client is not None
        servers = [runner.cluster.scheduler, *runner.cluster.workers.values()]
        assert [server._tick_interval for server in servers] == [0.5] * 3
        ticks = runner.client.run(lambda dask_worker: dask_worker._tick_interval)
        assert list(ticks.values()) == [0.5, 0.5]


def test_starting_the_local_cluster_imports_no_package_exhibit_does_not_use() -> None:
    """Dask's nanny imported every package it might preload into the fork server (pandas
    among them, installed for case_utils: ~0.15 s of the driver's CPU while the walk runs);
    exhibit's fork server is started with its own preload first (issue 18)."""
    probe = (
        "import sys\n"
        "from pipeline.run.cluster import BatchRunner\n"
        "with BatchRunner(1) as runner:\n"
        "    runner.client.submit(sum, [1, 2]).result()\n"
        "print(sorted(m for m in ('pandas', 'lz4') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, check=True, cwd=REPO)
    assert out.stdout.strip().splitlines()[-1] == "[]"


_TEXT = st.text(max_size=12)
_TIME = st.none() | st.just("2024-05-01T10:00:00.123456789Z") | st.just("1601-01-01T00:00:00Z")
_SMALL = st.none() | st.integers(0, 2**32)


@st.composite
def _walked_entries(draw: st.DrawFn) -> FileEntry:
    snapshot = draw(st.none() | st.builds(Snapshot, st.integers(0, 63), _TEXT,
                                          st.none() | _TIME))
    notes = draw(st.lists(st.sampled_from([UNCHANGED_NOTE, "no metadata", "orphan"]) | _TEXT,
                          max_size=3))
    loc = EvidenceLocation(EVIDENCE, draw(st.integers(-1, 8)), draw(st.integers(0, 2**40)),
                           draw(st.sampled_from(["ext4", "ntfs", "fat32"])),
                           draw(st.integers(0, 2**48)), "/" + draw(_TEXT),
                           draw(st.none() | _TEXT), snapshot=snapshot)
    return FileEntry(loc, draw(_TEXT), draw(st.integers(0, 2**40)),
                     draw(st.sampled_from(["file", "directory", "symlink", "other"])),
                     draw(st.booleans()), draw(_TIME), draw(_TIME), draw(_TIME), draw(_TIME),
                     draw(_SMALL), draw(_SMALL), draw(_SMALL),
                     draw(st.none() | st.booleans()), tuple(notes))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_walked_entries(), min_size=1, max_size=40))
def test_a_batch_item_is_the_entry_the_walk_stored(tmp_path_factory: pytest.TempPathFactory,
                                                   entries: list[FileEntry]) -> None:
    """The batch task's items are read from the files' columns without ``FileEntry`` (issue
    18: the driver's cost per file): each must be exactly ``to_dict`` of the entry the walk
    stored — types (booleans, not 0/1), snapshots, notes, streams, unset times — and come
    in the order asked for; the worker rebuilds the entry from it."""
    db = CaseDatabase(tmp_path_factory.mktemp("items") / "case.sqlite")
    db.conn.execute("PRAGMA foreign_keys=OFF")
    db.add_files(entries)
    ids = [r[0] for r in db.conn.execute("SELECT id FROM files ORDER BY id DESC")]
    items = db.batch_items(ids)
    db.close()
    assert [i for i, _, _ in items] == ids
    for (_, _, item), walked in zip(items, reversed(entries), strict=True):
        assert item == walked.to_dict()
        assert [type(v) for v in item.values()] == [type(v) for v in walked.to_dict().values()]
        assert FileEntry.from_dict(item) == walked


def test_the_derivation_budget_spent_counts_only_derived_files(tmp_path: Path) -> None:
    """``derived_bytes`` reads the derived entries' index: the sum of the evidence's
    derived regular files, not its walked files, other evidence's or derived folders."""
    db = _files_db(tmp_path, [[1000, 2000], [4000]])
    parents = [r[0] for r in db.conn.execute("SELECT id FROM files ORDER BY id")]
    step = Derivation("zip", "1", inner="a")
    for n, (evidence, kind, size) in enumerate([(EVIDENCE, "file", 7), (EVIDENCE, "file", 11),
                                                (EVIDENCE, "directory", 13),
                                                ("0f" * 32, "file", 17)]):
        loc = replace(EvidenceLocation(evidence, 0, 0, "ext4", 5, "/z"), derivation=(step,))
        db.add_derived(parents[n % 3], f"derived-{n}", FileEntry(loc, "m", size, kind, True),
                       "/z//a")
    assert db.derived_bytes(EVIDENCE) == 18
    assert db.derived_bytes("0f" * 32) == 17
    assert db.derived_bytes("aa" * 32) == 0
    db.close()


def test_a_new_case_is_made_in_one_transaction(tmp_path: Path) -> None:
    """Each commit is a sync of the log: made statement by statement, a new case paid one
    per table, column and index (~40), which a slow disk turns into a wait before the
    case opens."""
    path = tmp_path / "case.sqlite"
    db = CaseDatabase(path, extra_schema="CREATE TABLE IF NOT EXISTS kept_here (x TEXT);")
    try:
        assert wal_commits(path.with_name("case.sqlite-wal")) == 1
        tables = {r[0] for r in db.conn.execute("SELECT name FROM sqlite_schema")}
        assert {"files", "results", "video_matches", "carve_ranges", "kept_here",
                "files_parent", "results_pictures"} <= tables
        columns = {r["name"] for r in db.conn.execute("PRAGMA table_info(files)")}
        assert {"parent_id", "derivation", "snapshot", "same_as"} <= columns
        assert db.info("schema_version") == "6"
    finally:
        db.close()


def test_opening_an_existing_case_waits_for_no_writer(tmp_path: Path) -> None:
    """A report or a custody command opens a case another run is writing to: the open
    itself must not need the write lock (it would wait out SQLite's busy timeout)."""
    path = tmp_path / "case.sqlite"
    CaseDatabase(path, extra_schema="CREATE TABLE IF NOT EXISTS kept_here (x TEXT);").close()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO case_info(key, value) VALUES ('busy', 'yes')")
    try:
        started = time.monotonic()
        db = CaseDatabase(path, extra_schema="CREATE TABLE IF NOT EXISTS kept_here (x TEXT);")
        waited = time.monotonic() - started
        db.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert waited < 2.0  # SQLite's busy timeout here is 5 s
