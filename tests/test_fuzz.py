"""Brief fuzzing in CI: mutated disk images and hostile media through the triage path.

Hypothesis draws the mutations (derandomized, so CI is reproducible; the long run with
fresh seeds is ``make fuzz``). Every case must end in success or a documented failure,
verify its ledger, leave no walked file without results or an error record, and (CLI
cases) leave no process behind — see tests/fuzz/harness.py.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool
from fuzz import media, scenarios
from fuzz.harness import CaseOutcome, FuzzHarness, baseline_of, media_image
from fuzz.images import BaseImage, build_bases, plan_mutation
from fuzz.vdisks import VdiskBase, VdiskMutation, build_vdisk_bases, plan_vdisk_mutation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

IMAGE_CASES = 36
CLI_EVERY = 12  # every 12th image case through the real CLI
MEDIA_PER_PACK = 50
VDISK_CASES = 40
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
