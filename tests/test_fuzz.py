"""Brief fuzzing in CI: mutated disk images and hostile media through the triage path.

Hypothesis draws the mutations (derandomized, so CI is reproducible; the long run with
fresh seeds is ``make fuzz``). Every case must end in success or a documented failure,
verify its ledger, leave no walked file without results or an error record, and (CLI
cases) leave no process behind — see tests/fuzz/harness.py.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import require_tool
from fuzz import media, scenarios
from fuzz.apfs import build_apfs_base
from fuzz.harness import CaseOutcome, FuzzHarness, baseline_of, media_image
from fuzz.images import BaseImage, build_bases, plan_mutation
from fuzz.lvm import build_lvm_base
from fuzz.vdisks import VdiskBase, VdiskMutation, build_vdisk_bases, plan_vdisk_mutation
from fuzz.vss import build_vss_base
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

IMAGE_CASES = 36
CLI_EVERY = 12  # every 12th image case through the real CLI
MEDIA_PER_PACK = 50
VDISK_CASES = 40
VSS_CASES = 16
APFS_CASES = 8
LVM_CASES = 8
def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for tool in ("mkfs.fat", "mcopy", "mke2fs", "debugfs", "mkntfs", "ntfscp", "sfdisk",
                 "fls", "istat"):
        require_tool(tool)
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def bases(workdir: Path) -> list[BaseImage]:
    return build_bases(workdir / "bases")


@pytest.fixture(scope="module")
def harness(workdir: Path, bases: list[BaseImage]) -> FuzzHarness:
    with FuzzHarness(workdir, workers=2, file_timeout=10.0) as h:
        yield h


@pytest.fixture(scope="module")
def baselines(harness: FuzzHarness, bases: list[BaseImage], workdir: Path
              ) -> dict[str, set[tuple[str, str]]]:
    out = {}
    for base in bases:
        clean = workdir / f"clean-{base.name}"
        outcome = harness.run_inprocess(base.path, clean, base.name)
        assert outcome.ok and outcome.status == "ok", outcome
        out[base.name] = baseline_of(clean)
        assert out[base.name], f"nothing analysed on the clean {base.name} image"
    return out


def _check(outcome: CaseOutcome) -> None:
    assert outcome.ok, f"{outcome.label}: {outcome.problems}\n{outcome.detail}"
    assert outcome.status in ("ok", "documented"), outcome
    assert outcome.lost == 0 and outcome.ledger_ok and outcome.leftovers == 0


def test_mutated_images(harness: FuzzHarness, bases: list[BaseImage],
                        baselines: dict[str, set[tuple[str, str]]], workdir: Path) -> None:
    counter = iter(range(10_000))
    seen: list[CaseOutcome] = []

    @fuzz_settings(IMAGE_CASES)
    @given(which=st.integers(0, len(bases) - 1), rng=st.randoms(use_true_random=False))
    def case(which: int, rng: random.Random) -> None:
        i = next(counter)
        base = bases[which]
        mutation = plan_mutation(rng, base)
        directory = workdir / f"image-{i:03d}"
        directory.mkdir()
        image = mutation.apply(base.path, directory / "evidence.img")
        run = harness.run_cli if i % CLI_EVERY == CLI_EVERY - 1 else harness.run_inprocess
        outcome = run(image, directory / "case", mutation.describe(), baselines[base.name])
        outcome.baseline = len(baselines[base.name])
        seen.append(outcome)
        _check(outcome)

    case()
    assert len(seen) >= IMAGE_CASES
    assert sum(o.mode == "cli" for o in seen) >= 2
    # The mutations hurt: not every file survives every case, and yet none is lost.
    assert sum(o.recovered for o in seen) < sum(o.baseline for o in seen)


def test_hostile_media(harness: FuzzHarness, workdir: Path) -> None:
    packs: list[list[media.MediaCase]] = []

    @fuzz_settings(2)
    @given(rng=st.randoms(use_true_random=False))
    def draw(rng: random.Random) -> None:
        if len(packs) < 2:
            packs.append([media.mutate(rng, len(packs) * MEDIA_PER_PACK + j)
                          for j in range(MEDIA_PER_PACK)])

    draw()
    bombs = [media.MediaCase("bomb.png", media.png_bomb(30000, 30000), "png bomb"),
             media.MediaCase("empty.jpg", b"", "zero bytes")]
    for n, cases in enumerate(packs):
        directory = workdir / f"media-{n}"
        directory.mkdir()
        image = media_image(cases + (bombs if n == 0 else []), directory, "media")
        run = harness.run_cli if n == 1 else harness.run_inprocess
        outcome = run(image, directory / "case", f"media pack {n}")
        _check(outcome)
        assert outcome.files == len(cases) + (2 if n == 0 else 0)
        assert outcome.results == outcome.files  # hostile content is an error, not a loss
    conn = sqlite3.connect(workdir / "media-0" / "case" / "case.sqlite")
    errors = {r[0] for r in conn.execute(
        "SELECT e.message FROM errors e JOIN files f ON f.id = e.file_id"
        " WHERE f.name = 'bomb.png' AND e.analyzer = 'perceptual'")}
    assert any("exceeds the limit" in m or "ecompression" in m for m in errors), errors


@pytest.fixture(scope="module")
def scenario_images(workdir: Path, bases: list[BaseImage]) -> dict[str, Path]:
    mbr = next(b for b in bases if b.name == "mbr")
    return scenarios.build_all(workdir / "scenarios", mbr.path)


def _rows(case: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(case / "case.sqlite")
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


@pytest.mark.parametrize("name", ["hostile_ext4", "deep_ext2", "hostile_fat16", "truncated"])
def test_corrupt_filesystems(name: str, harness: FuzzHarness,
                             scenario_images: dict[str, Path], workdir: Path) -> None:
    case = workdir / f"scenario-{name}"
    outcome = harness.run_inprocess(scenario_images[name], case, name)
    _check(outcome)
    assert outcome.status == "ok" and (outcome.files > 0 or name == "deep_ext2")
    paths = {r[0] for r in _rows(case, "SELECT path FROM files")}
    notes = [r[0] for r in _rows(case, "SELECT message FROM errors WHERE stage = 'walk'")]
    errors = {r[0]: r[1] for r in _rows(case, "SELECT f.path, e.error || ': ' || e.message"
                                               " FROM errors e JOIN files f ON f.id = e.file_id")}
    if name == "hostile_ext4":
        assert any("directory loop" in n for n in notes), notes
        assert errors["/docs/notes.txt"].startswith("ImplausibleSizeError"), errors
        assert errors["/sparse-big.bin"].startswith("ImplausibleSizeError"), errors
        assert "/sparse-small.bin" not in errors  # smaller than its volume: read
        # A directory entry naming an inode beyond the table: TSK drops it, as fls does.
        fls = subprocess.run(["fls", "-r", "-p", str(scenario_images[name])],
                             capture_output=True, check=True).stdout
        assert b"image.gif" not in fls and "/docs/image.gif" not in paths
        assert "/docs/slash\\x2fname.txt" in paths, sorted(paths)  # not a sub-directory
        assert "/docs/\\x2e\\x2e" in paths, sorted(paths)  # a file named "..", kept
        assert "/docs/nul" in paths  # TSK ends names at NUL
    elif name == "deep_ext2":
        assert any("depth limit" in n for n in notes), notes
        assert max(p.count("/") for p in paths) <= 129
    elif name == "hostile_fat16":
        assert any("directory loop" in n for n in notes) or "/docs/deep/er" in paths
        sha = dict(_rows(case, "SELECT f.path, r.sha256 FROM files f JOIN results r"
                               " ON r.file_id = f.id"))
        assert sha["/docs/file1.txt"] == sha["/docs/file2.txt"]  # cross-linked: same bytes
    else:
        volumes = _rows(case, "SELECT status FROM volumes")
        assert volumes, "the partition table was still read"


def _fls_lines(image: Path, sector: int, *extra: str) -> list[tuple[str, int, bool]]:
    """``fls -r -p`` in its own (depth-first) order: (path, inode, allocated)."""
    out = subprocess.run(["fls", *extra, "-r", "-p", "-o", str(sector), str(image)],
                         capture_output=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        head, _, path = line.partition(b"\t")
        inode = int(head.split()[-1].rstrip(b":").split(b"-")[0])
        rows.append(("/" + path.decode().partition(":")[0], inode, b"*" not in head.split()))
    return rows


def _dfxml_fileobjects(case: Path) -> int:
    """``<fileobject>`` elements of the case's DFXML export (one per walked entry)."""
    out = case / "export.dfxml"
    subprocess.run([sys.executable, "-m", "pipeline.cli", "export", str(case), "--format",
                    "dfxml", "-o", str(out)], check=True, capture_output=True)
    return out.read_text(encoding="utf-8").count("<fileobject>")


def _ledger(case: Path) -> list[dict]:
    return [json.loads(line) for line in (case / "ledger.jsonl").read_text().splitlines()]


def test_stalled_walk_is_contained(harness: FuzzHarness, scenario_images: dict[str, Path],
                                   workdir: Path) -> None:
    """TSK stalls listing /z of partition 1: the walk is stopped at the harness's walk
    timeout, what it walked before is kept, the stall is an error in the database and the
    ledger, and partition 2 is walked; through the real CLI (no process left behind)."""
    image = scenario_images["stalling_ext2"]
    case = workdir / "scenario-stalling_ext2"
    started = time.monotonic()
    outcome = harness.run_cli(image, case, "stalling_ext2")
    _check(outcome)
    assert outcome.exit_code == 0 and outcome.timed_out == 1
    assert time.monotonic() - started < 120  # TSK alone would take hours
    first = _fls_lines(image, 2048)
    stalled_at = [p for p, _, _ in first].index("/z")
    kept = set(first[: stalled_at + 1])  # fls order is the walk's: everything up to /z
    rows = _rows(case, "SELECT path, inode, allocated, volume_offset FROM files"
                       " WHERE path NOT LIKE '/$Unallocated/%'")  # carve ranges: not walked
    assert {(p, i, bool(a)) for p, i, a, off in rows if off == 2048 * 512} == kept
    second = {(p, i, bool(a)) for p, i, a, off in rows if off == 10240 * 512}
    assert second == set(_fls_lines(image, 10240))
    stall = _rows(case, "SELECT message, location FROM errors WHERE error = 'WalkStalled'")
    assert len(stall) == 1 and "listing /z " in stall[0][0], stall
    assert json.loads(stall[0][1])["fs_type"] == "ext2"
    assert _rows(case, "SELECT status FROM volumes WHERE offset = 1048576") == [("stalled",)]
    errors = [e for e in _ledger(case) if e["action"] == "error"]
    assert [e["details"]["error"] for e in errors] == ["WalkStalled"]
    assert errors[0]["details"]["entries"] == len(kept)
    done = [e for e in _ledger(case) if e["action"] == "triage.completed"]
    assert done and done[0]["details"]["walks_stalled"] == 1
    everything = _rows(case, "SELECT id FROM files")  # carve ranges included
    assert _dfxml_fileobjects(case) == len(everything)  # the kept entries are exported too


def test_volume_with_two_filesystems(harness: FuzzHarness, scenario_images: dict[str, Path],
                                     workdir: Path) -> None:
    """NTFS hidden under ext2: both walked (each as ``fls -f TYPE``), content read per
    type (``icat -f TYPE``), the volume marked in the ledger and the summary."""
    image = scenario_images["two_filesystems"]
    case = workdir / "scenario-two_filesystems"
    outcome = harness.run_inprocess(image, case, "two_filesystems")
    _check(outcome)
    assert outcome.status == "ok" and outcome.lost == 0
    for fs_type in ("ntfs", "ext2"):
        ours = {(p, i, bool(a)) for p, i, a in _rows(
            case, f"SELECT path, inode, allocated FROM files WHERE fs_type = '{fs_type}'"
            " AND path NOT LIKE '/$Unallocated/%'"
                  " AND stream IS NULL")}
        assert ours == set(_fls_lines(image, 2048, "-f", fs_type))
        for path, inode, sha in _rows(
                case, "SELECT f.path, f.inode, r.sha256 FROM files f JOIN results r"
                      f" ON r.file_id = f.id WHERE f.fs_type = '{fs_type}'"
                      " AND f.path NOT LIKE '/$%' AND f.stream IS NULL"):
            data = subprocess.run(["icat", "-f", fs_type, "-o", "2048", str(image), str(inode)],
                                  capture_output=True, check=True).stdout
            assert hashlib.sha256(data).hexdigest() == sha, path
    slots = _rows(case, "SELECT fs_slot, fs_type, status FROM volumes WHERE offset = 1048576")
    assert sorted(t for _, t, _ in slots) == ["ext2", "ntfs"]
    assert {s for _, _, s in slots} == {"walked"}
    entries = _ledger(case)
    walked = [e for e in entries if e["action"] == "filesystem.walked"]
    assert sorted(e["subject"]["fs_type"] for e in walked) == ["ext2", "ntfs"]
    assert all(sorted(e["details"]["volume_filesystems"]) == ["ext2", "ntfs"] for e in walked)
    found = next(e for e in entries if e["action"] == "volumes.found")
    marked = [v for v in found["details"]["volumes"] if "filesystems" in v]
    assert len(marked) == 1 and marked[0]["offset"] == 2048 * 512
    summary = next(e for e in entries if e["action"] == "triage.completed")["details"]
    slots_of_table = _rows(case, "SELECT DISTINCT idx FROM volumes")
    assert summary["volumes"] == len(slots_of_table) and summary["filesystems_walked"] == 2
    assert len(summary["volumes_with_several_filesystems"]) == 1
    assert _dfxml_fileobjects(case) == len(_rows(case, "SELECT id FROM files"))  # no doubles
@pytest.fixture(scope="module")
def vdisk_bases(workdir: Path, bases: list[BaseImage]) -> list[VdiskBase]:
    for tool in ("qemu-img", "qemu-io", "mcopy"):
        require_tool(tool)
    mbr = next(b for b in bases if b.name == "mbr")
    return build_vdisk_bases(workdir / "vdisks", mbr.path)


def test_mutated_virtual_disks(harness: FuzzHarness, vdisk_bases: list[VdiskBase],
                               baselines: dict[str, set[tuple[str, str]]],
                               workdir: Path) -> None:
    """Every container of the MBR disk, clean, then mutated: headers, truncation, missing."""
    baseline = baselines["mbr"]
    for base in vdisk_bases:  # unmutated: exactly the files of the raw disk, same hashes
        outcome = harness.run_inprocess(base.top, workdir / f"clean-{base.name}", base.name,
                                        baseline)
        _check(outcome)
        assert outcome.status == "ok" and outcome.recovered == len(baseline), outcome
    planned: list[tuple[VdiskBase, VdiskMutation]] = []
    for base in vdisk_bases:  # each extent, parent and backing file missing; each cut short
        for gone in base.files[1:]:
            planned.append((base, VdiskMutation(base.name, remove=gone.name,
                                                labels=[f"{gone.name} missing"])))
        for path in base.files:
            keep = path.stat().st_size // 2 // 512 * 512
            planned.append((base, VdiskMutation(base.name, truncate=(path.name, keep),
                                                labels=[f"{path.name} cut to {keep} bytes"])))

    @fuzz_settings(VDISK_CASES)
    @given(which=st.integers(0, len(vdisk_bases) - 1), rng=st.randoms(use_true_random=False))
    def draw(which: int, rng: random.Random) -> None:
        base = vdisk_bases[which]
        planned.append((base, plan_vdisk_mutation(rng, base)))

    draw()
    seen: list[CaseOutcome] = []
    for i, (base, mutation) in enumerate(planned):
        directory = workdir / f"vdisk-{i:03d}"
        top = mutation.apply(base, directory / "evidence")
        outcome = harness.run_inprocess(top, directory / "case", mutation.describe(), baseline)
        _check(outcome)
        if mutation.remove:  # a missing part is named, never guessed around
            assert outcome.exit_code == 3 and mutation.remove in outcome.detail, outcome
        seen.append(outcome)
    assert len(seen) >= VDISK_CASES + 23  # 5 missing parts, 18 files cut short
    assert {o.status for o in seen} == {"ok", "documented"}  # some survive, some are refused


def test_mutated_shadow_copies(harness: FuzzHarness, workdir: Path) -> None:
    """An NTFS volume with two stores, clean, then its VSS structures mutated or cut."""
    base = build_vss_base(workdir / "vss")
    clean = workdir / "clean-vss"
    outcome = harness.run_inprocess(base.top, clean, base.name)
    _check(outcome)
    assert outcome.status == "ok" and outcome.walk_notes == 0, outcome
    rows = _rows(clean, "SELECT path, snapshot FROM files WHERE snapshot IS NOT NULL")
    assert ("/deleted.jpg" in {p for p, _ in rows}), rows
    baseline = baseline_of(clean)
    planned = [VdiskMutation(base.name, truncate=(base.top.name, cut), labels=[f"cut to {cut}"])
               for cut in (base.top.stat().st_size - (1 << 20), 8 << 20)]

    # The live volume is never lost to a broken shadow copy: its files stay readable
    # unless the mutation hit NTFS itself (the header shares its boot sector's block).
    outcomes = _mutated_runs(harness, base, planned, VSS_CASES, workdir, baseline)
    statuses = [(o.status, o.walk_notes) for o in outcomes]
    assert len(statuses) == VSS_CASES + 2
    assert any(notes for _, notes in statuses)  # some stores refused, and recorded


def test_mutated_apfs_containers(harness: FuzzHarness, workdir: Path) -> None:
    """mkapfs's container, clean (its volume walked), then its blocks mutated or cut."""
    require_tool("mkapfs")
    base = build_apfs_base(workdir / "apfs")
    outcome = harness.run_inprocess(base.top, workdir / "clean-apfs", base.name)
    _check(outcome)
    assert outcome.status == "ok" and outcome.walk_notes == 0, outcome
    planned = [VdiskMutation(base.name, truncate=(base.top.name, 1 << 20), labels=["cut"])]

    seen = [o.status for o in _mutated_runs(harness, base, planned, APFS_CASES, workdir)]
    assert len(seen) == APFS_CASES + 1


def test_mutated_lvm_volume_groups(harness: FuzzHarness, workdir: Path) -> None:
    """The LVM2 sample, clean (three logical volumes walked), then its label, metadata and
    extents mutated or the image cut: contained, recorded, never a lost or uncaught file."""
    base = build_lvm_base(workdir / "lvm")
    outcome = harness.run_inprocess(base.top, workdir / "clean-lvm", base.name)
    _check(outcome)
    assert outcome.status == "ok" and outcome.files > 10 and outcome.walk_notes == 0, outcome
    planned = [VdiskMutation(base.name, truncate=(base.top.name, 6 << 20), labels=["cut"])]

    outcomes = _mutated_runs(harness, base, planned, LVM_CASES, workdir)
    noted = sum(o.walk_notes + o.read_errors for o in outcomes)
    assert len(outcomes) == LVM_CASES + 1
    assert noted > 0  # damage was met and recorded, not silently absorbed


def _mutated_runs(harness: FuzzHarness, base: VdiskBase, planned: list[VdiskMutation],
                  cases: int, workdir: Path,
                  baseline: set[tuple[str, str]] | None = None) -> list[CaseOutcome]:
    """``planned`` plus ``cases`` drawn mutations of ``base``, each triaged and checked."""

    @fuzz_settings(cases)
    @given(rng=st.randoms(use_true_random=False))
    def draw(rng: random.Random) -> None:
        planned.append(plan_vdisk_mutation(rng, base))

    draw()
    outcomes = []
    for i, mutation in enumerate(planned):
        directory = workdir / f"{base.name}-{i:03d}"
        top = mutation.apply(base, directory / "evidence")
        outcome = harness.run_inprocess(top, directory / "case", mutation.describe(), baseline)
        _check(outcome)
        outcomes.append(outcome)
    return outcomes
