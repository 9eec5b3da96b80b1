"""The versions recorded in the ledger's tool block are importlib.metadata's answers."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from pipeline.versions import _DISTRIBUTIONS, distribution_version, library_versions

REPO = Path(__file__).resolve().parent.parent


def test_every_installed_distribution_reads_as_importlib_metadata_says() -> None:
    names = {d.metadata["Name"] for d in metadata.distributions()}
    assert len(names) > 20
    assert {n: distribution_version(n) for n in names} == {n: metadata.version(n) for n in names}
    recorded = library_versions()
    for name in _DISTRIBUTIONS:
        try:
            expected = metadata.version(name)
        except metadata.PackageNotFoundError:
            expected = "not installed"
        assert recorded[name] == expected, name


def _dist(where: Path, folder: str, version: str) -> None:
    project = folder.split("-")[0] if folder.endswith(".dist-info") else folder.split(".")[0]
    path = where / folder
    path.mkdir(parents=True)
    name = "PKG-INFO" if folder.endswith(".egg-info") else "METADATA"
    (path / name).write_text(f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n")


def test_search_order_and_odd_names_follow_importlib_metadata(tmp_path: Path) -> None:
    """An .egg-info earlier on the path hides a later .dist-info (as for importlib), and
    names written with dashes or dots are found under their normalised form."""
    first, second = tmp_path / "first", tmp_path / "second"
    _dist(first, "shadowed_pkg.egg-info", "1.0")
    _dist(second, "shadowed_pkg-2.0.dist-info", "2.0")
    _dist(second, "Dotted.Name-3.1.post2.dist-info", "3.1.post2")
    _dist(second, "plain_pkg-4.0+local.1.dist-info", "4.0+local.1")
    _dist(second, "dashed-name-5.0.dist-info", "5.0")  # an old installer's unescaped name
    script = """
import json
from importlib import metadata
from pipeline.versions import distribution_version

def theirs(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None

names = ["shadowed-pkg", "Shadowed_Pkg", "dotted-name", "dotted_name", "plain.pkg",
         "no-such-dist", "dashed", "dashed-name"]
print(json.dumps([{n: distribution_version(n) for n in names}, {n: theirs(n) for n in names}]))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, cwd=REPO,
        env={"PYTHONPATH": f"{first}:{second}:{REPO}", "PATH": "/usr/bin:/bin"})
    ours, theirs = json.loads(out.stdout)
    assert ours == theirs
    assert ours["shadowed-pkg"] == "1.0" and ours["dotted-name"] == "3.1.post2"
    assert ours["plain.pkg"] == "4.0+local.1" and ours["no-such-dist"] is None
    assert ours["dashed"] == "5.0"  # importlib files it under the name's first part
