"""A test-only analyzer that kills its worker on a marked video, like a decoder crash.

FFmpeg crashes are real (CVE lists are long) but cannot be produced on demand with the
FFmpeg in PyAV's wheel, so this stands in for one: on a video whose container metadata
carries :data:`CRASH` (a ``title`` tag written by ffmpeg) the process aborts in native
code (``os.abort``) while the worker analyses that file, exactly where a crashing
decoder would take it down. Loaded through ``EXHIBIT_ANALYZER_MODULES``.
"""

from __future__ import annotations

import os

from analyzers.base import Analyzer, Findings
from analyzers.registry import register
from analyzers.video import is_video
from ingest.location import FileEntry

CRASH = b"EXHIBIT-FAULT-DECODER-CRASH"


@register
class CrashingDecoderAnalyzer(Analyzer):
    """Aborts the process on a marked video; says ``ok`` on every other video."""

    name = "video_fault"
    version = "0.0.1"
    input = "content"
    max_size = 64 * 1024 * 1024

    def applies_to(self, entry: FileEntry, findings: dict[str, Findings]) -> bool:
        return is_video(findings.get("filetype", {}).get("mime") or "", entry.extension)

    def analyze(self, data: bytes, entry: FileEntry, findings: dict[str, Findings]) -> Findings:
        if CRASH in data:
            os.abort()
        return {"ok": True}
