"""The one-call libmagic fast path gives what file(1) gives.

``analyzers.filetype.identify`` asks libmagic for the description first and derives the
MIME type from the fallback descriptions ("ASCII text…", "data", empty) instead of asking
twice. file(1) on the same bytes is the oracle, for contents that take the fast path and
for look-alikes that must not (scripts, CSV, JSON, HTML, very short files).
"""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool

from analyzers.filetype import _fallback_mime, identify

_rng = random.Random(7)
_LINES = "\n".join(f"line {i} of the seized notes and nothing to see" for i in range(400))

FAST = {
    "ascii": _LINES.encode() + b"\n",
    "crlf": _LINES.replace("\n", "\r\n").encode(),
    "long_lines": ("x" * 5000 + "\n").encode() * 3,
    "no_terminator": b"just one line without an end",
    "utf8": ("Zeugenaussage über die Übergabe – 東京 ✓\n" * 50).encode(),
    "utf8_bom": b"\xef\xbb\xbf" + ("bom text line\n" * 40).encode(),
    "latin1": ("caf\xe9 cr\xe8me br\xfbl\xe9e\n" * 50).encode("latin-1"),
    "escapes": b"colour \x1b[31mred\x1b[0m text\n" * 30,
    "random": bytes(_rng.getrandbits(8) for _ in range(8192)),
    "empty": b"",
}
SLOW = {
    "shell": b"#!/bin/sh\necho hello\n" * 5,
    "python": b"#!/usr/bin/env python3\nimport os\nprint(os.getcwd())\n",
    "csv": b"name,size,sha1\n" + b"a.txt,12,deadbeef\n" * 40,
    "json": b'{"files": [1, 2, 3], "case": "42"}\n',
    "html": b"<!DOCTYPE html>\n<html><head><title>x</title></head><body>hi</body></html>\n",
    "short": b"a",
    "gzip": b"\x1f\x8b\x08\x00" + bytes(60),
}


def _file_says(data: bytes, *args: str) -> str:
    """file(1) reading the bytes from stdin, as the analyzer's docstring promises."""
    exe = require_tool("file")
    return subprocess.run([exe, "-b", *args, "-"], input=data, capture_output=True,
                          check=True).stdout.decode().strip()


@pytest.mark.parametrize("name", sorted(FAST) + sorted(SLOW))
def test_identify_agrees_with_file(name: str) -> None:
    data = {**FAST, **SLOW}[name]
    assert identify(data) == (_file_says(data, "--mime-type"), _file_says(data))


@pytest.mark.parametrize("name", sorted(FAST))
def test_fallback_descriptions_take_the_fast_path(name: str) -> None:
    if not FAST[name]:
        assert identify(b"") == ("application/x-empty", "empty")
        return
    assert _fallback_mime(identify(FAST[name])[1]) is not None


@pytest.mark.parametrize("name", sorted(SLOW))
def test_matched_types_still_ask_libmagic(name: str) -> None:
    assert _fallback_mime(identify(SLOW[name])[1]) is None


def test_os_files_agree() -> None:
    """A few hundred real files of this system (text and binary), both ways."""
    paths = []
    for root in ("/etc", "/usr/share/doc"):
        for dirpath, _dirs, names in os.walk(root):
            paths.extend(Path(dirpath) / n for n in names)
    paths = [p for p in sorted(paths) if p.is_file() and not p.is_symlink()]
    sample = random.Random(11).sample(paths, min(300, len(paths)))
    fast = 0
    for path in sample:
        try:
            data = path.read_bytes()[: 1 << 20]
        except OSError:
            continue
        mime, description = identify(data)
        fast += _fallback_mime(description) is not None
        assert (mime, description) == (_file_says(data, "--mime-type"), _file_says(data)), path
    assert fast > 10  # the sample exercised the fast path
