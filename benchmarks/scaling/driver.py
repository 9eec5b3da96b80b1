"""``exhibit`` with the driver's per-batch work timed: ``driver.py OUT.json triage …``.

The driver takes the batches that finished together into the case
(``collect.store_batches``) and the ledger (``collect.record_batches``); both are wrapped
here with a timer (wall time, and the CPU time of the calling thread: the machine may be
shared), and the sums, the batch count and the number of groups are written to OUT.json
when the run ends.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.run import collect

TOTALS = {"seconds": 0.0, "cpu_seconds": 0.0, "batches": 0, "groups": 0}


def _timed(func: Any, counts: bool) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return func(*args, **kwargs)
        finally:
            TOTALS["seconds"] += time.perf_counter() - started
            TOTALS["cpu_seconds"] += time.thread_time() - cpu  # this thread only
            if counts:
                TOTALS["batches"] += len(args[1])
                TOTALS["groups"] += 1
    return wrapper


def main() -> None:
    out = Path(sys.argv[1])
    collect.store_batches = _timed(collect.store_batches, counts=True)
    collect.record_batches = _timed(collect.record_batches, counts=False)
    from pipeline.cli import main as exhibit_main

    sys.argv = ["exhibit", *sys.argv[2:]]
    try:
        exhibit_main()
    except SystemExit as exc:
        if exc.code:
            raise
    finally:
        out.write_text(json.dumps(TOTALS))


if __name__ == "__main__":
    main()
