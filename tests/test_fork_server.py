"""Local workers are forked from a fork server started before the command has parsed
everything (issue 18): the workers are the fork server's children, not fresh interpreters,
and what the driver sets in its environment later still reaches every one of them."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool, sha256_file
from pipeline_helpers import REPO, exhibit

from ingest.layers import PASSWORD_ENV


@pytest.fixture(scope="module")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("mke2fs")
    root = tmp_path_factory.mktemp("fork-server")
    src = root / "src"
    src.mkdir()
    for i in range(12):
        (src / f"f{i:02d}.bin").write_bytes(os.urandom(200 + 100 * i))
    image = root / "small.dd"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(src), str(image), "4M"],
                   check=True)
    image.chmod(0o444)
    return image


def test_a_key_given_on_the_command_line_reaches_the_forked_workers(
        small_image: Path, tmp_path: Path) -> None:
    """The CLI sets the key in its environment after the fork server has started (and
    inherited the environment of that moment); the workers must still see it."""
    before = sha256_file(small_image)
    case = tmp_path / "case"
    secret = "fork server sees no secret 5e1d"
    env = {"EXHIBIT_ANALYZER_MODULES": "env_analyzers",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)])}
    assert PASSWORD_ENV not in os.environ  # the option alone gives it
    exhibit("triage", small_image, "--case", case, "--workers", "2", "--no-progress",
            "--batch-files", "3", "--analyzers", "envprobe", "--volume-password", secret,
            env=env, timeout=300)
    conn = sqlite3.connect(case / "case.sqlite")
    rows = conn.execute("SELECT f.path, r.record FROM results r JOIN files f"
                        " ON f.id = r.file_id").fetchall()
    conn.close()
    probes = [json.loads(record)["findings"]["envprobe"] for path, record in rows
              if path.endswith(".bin")]
    assert len(probes) == 12
    assert all(p["keys_set"] == [PASSWORD_ENV] for p in probes), probes
    workers = {p["worker_pid"] for p in probes}
    assert 1 <= len(workers) <= 2
    assert all(p["parent_is_fork_server"] for p in probes), probes  # not spawned
    for stored in case.rglob("*"):  # the key itself is nowhere in the case
        if stored.is_file():
            assert secret.encode() not in stored.read_bytes(), stored
    assert sha256_file(small_image) == before
