"""A test-only analyzer that reports, from inside the worker, what the worker process sees
of the driver: whether a volume key given on the command line reached it (never the key)."""

from __future__ import annotations

import os

from analyzers.base import Analyzer, Findings
from analyzers.registry import register
from ingest.layers import PASSWORD_ENV, RECOVERY_KEY_ENV
from ingest.location import FileEntry


@register
class EnvProbe(Analyzer):
    """Which volume-key variables are set in the worker analysing this file."""

    name = "envprobe"
    version = "0.0.1"
    input = "head"
    head_size = 16

    def analyze(self, data: bytes, entry: FileEntry, findings: dict[str, Findings]) -> Findings:
        try:
            with open(f"/proc/{os.getppid()}/cmdline", "rb") as fh:
                parent = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            parent = ""
        return {"keys_set": sorted(k for k in (PASSWORD_ENV, RECOVERY_KEY_ENV)
                                   if os.environ.get(k)),
                "worker_pid": os.getpid(),
                "parent_is_fork_server": "multiprocessing.forkserver" in parent}
