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
