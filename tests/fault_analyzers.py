"""Test-only analyzers that misbehave on marked files, loaded through the plugin variable.

Each reproduces one way native code fails on hostile input: a hard crash (abort), a hang
that releases the GIL (like a stuck libmagic/libjpeg call), a pure-Python endless loop
(like exifread following an IFD loop), and a hang that holds the GIL (catastrophic regex
backtracking runs in C without releasing it).
"""

from __future__ import annotations

import os
import re
import time

from analyzers.base import Analyzer, Findings
from analyzers.registry import register
from ingest.location import FileEntry

CRASH = b"EXHIBIT-FAULT-CRASH"
SLEEP = b"EXHIBIT-FAULT-SLEEP"
SPIN = b"EXHIBIT-FAULT-SPIN"
GIL = b"EXHIBIT-FAULT-GIL"


@register
class FaultAnalyzer(Analyzer):
    """Crashes or hangs its worker when the file starts with a fault marker."""

    name = "fault"
    version = "0.0.1"
    input = "head"
    head_size = 64

    def analyze(self, data: bytes, entry: FileEntry, findings: dict[str, Findings]) -> Findings:
        if data.startswith(CRASH):
            os.abort()
        if data.startswith(SLEEP):
            time.sleep(3600)
        if data.startswith(SPIN):
            while True:
                pass
        if data.startswith(GIL):
            re.match(r"(a+)+$", "a" * 64 + "b")
        return {"ok": True}
