"""The worker's per-file cost mechanisms keep their promises (effects, not timings).

Timing is the benchmarks' business (``benchmarks/speed``). Here: the allocator tuning
undoes what Dask's ``MALLOC_TRIM_THRESHOLD_`` does to a worker (page faults on every
1 MiB chunk), measured by the kernel's own fault counter in a fresh process started the
way Dask's nanny starts a worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

_FAULTS = """
import json, resource, sys
from pipeline.run.worker import tune_allocator

def faults():
    keep = []
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(300):  # what a worker does per file: 1 MiB chunks, then drops them
        chunk = b"\x01" * (1 << 20)  # written, as a read fills it
        keep.append(chunk[:16])
        del chunk
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

untuned = faults()
tuned_ok = tune_allocator()
faults()  # the heap grows once
print(json.dumps({"untuned": untuned, "tuned": faults(), "ok": tuned_ok}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_tuned_allocator_stops_page_faults_per_chunk() -> None:
    env = dict(os.environ, MALLOC_TRIM_THRESHOLD_="65536", PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True,
                         text=True, check=True, cwd=REPO)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ok"] is True
    # untuned: each 1 MiB block is a fresh mmap, faulted in page by page (256 a MiB)
    assert result["untuned"] > 300 * 200
    assert result["tuned"] < result["untuned"] / 20


def test_same_work_script_computes_what_exhibit_computes(tmp_path: Path) -> None:
    """benchmarks/speed/samework.py is a fair yardstick only if its per-file work gives
    exhibit's answers: digests, libmagic, the perceptual hashes and the very thumbnail,
    file by file on a generated image (photos, small text and binary files, a big file)."""
    import hashlib

    sys.path.insert(0, str(REPO / "benchmarks" / "speed"))
    try:
        import generate
        import samework
    finally:
        sys.path.pop(0)
    from test_analyzers import entry

    from analyzers import registry
    from analyzers.run import analyze_bytes

    manifest = generate.build("ci", scale=0.2, root=tmp_path, jobs=1, progress=False)
    samework._open(manifest.image_path, 0)
    files = samework.walk(samework._FS)
    assert len(files) == manifest.files
    analyzers = registry.create(None)
    pictures = 0
    for inode, size in files:
        data = samework._FS.open_meta(inode=inode).read_random(0, size) if size else b""
        ours = samework.one_file(inode, size)
        theirs = analyze_bytes(data, entry("f", size), analyzers).findings
        assert {k: ours[k] for k in ("md5", "sha1", "sha256", "size")} == theirs["hashes"]
        assert ours["mime"] == theirs["filetype"]["mime"]
        if size:
            assert ours["magic"] == theirs["filetype"]["magic"]
        if "perceptual" in theirs:
            pictures += 1
            found = theirs["perceptual"]
            assert (ours["phash"], ours["dhash"], ours["pdq_dihedral"], ours["pdq_quality"]) \
                == (found["phash"], found["dhash"], found["pdq_dihedral"], found["pdq_quality"])
            assert hashlib.sha256(ours["thumbnail"]).hexdigest() == \
                theirs["thumbnail"]["sha256"]
        else:
            assert "phash" not in ours
    assert pictures == manifest.images > 0
