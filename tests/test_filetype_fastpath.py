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
import sys
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


def _varied() -> dict[str, bytes]:
    """Text in its encodings and line ends, scripts, markup, data formats, binaries."""
    import gzip
    import io
    import zipfile

    from PIL import Image

    text = "Zeugenaussage über die Übergabe\nsecond line\n" * 20
    png, zipped = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(png, "PNG")
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("notes.txt", text)
    elf = Path(sys.executable).resolve().read_bytes()[: 1 << 20]
    return {
        **FAST, **SLOW,
        "utf16le": b"\xff\xfe" + text.encode("utf-16-le"),
        "utf16be": b"\xfe\xff" + text.encode("utf-16-be"),
        "crlf_utf8": text.replace("\n", "\r\n").encode(),
        "csv_quoted": b'"name","size"\r\n"a, b.txt","12"\r\n' * 30,
        "json_array": b'[{"a": 1}, {"b": [true, null, "x"]}]\n',
        "xml": b'<?xml version="1.0"?>\n<case><item id="1">x</item></case>\n',
        "perl": b"#!/usr/bin/perl\nprint \"hi\\n\";\n",
        "c_source": b"#include <stdio.h>\nint main(void) { return 0; }\n",
        "png": png.getvalue(),
        "zip": zipped.getvalue(),
        "gzip_real": gzip.compress(text.encode(), mtime=0),
        "pdf": b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n%%EOF\n",
        "elf": elf,
    }


@pytest.mark.parametrize("name", sorted(_varied()))
def test_repeated_heads_answer_as_file_does(name: str) -> None:
    """A second identical head is answered from the process's memory of the first, with
    file(1)'s answer; the copy is a different object, so the match is by content."""
    import analyzers.filetype as filetype

    data = _varied()[name]
    expected = (_file_says(data, "--mime-type"), _file_says(data))
    assert identify(data) == expected
    hits = filetype._SEEN.hits
    assert identify(bytes(bytearray(data))) == expected
    if data and len(data) <= filetype._SeenHeads.MAX_HEAD:
        assert filetype._SEEN.hits == hits + 1
    else:  # empty (no libmagic at all) or too large to keep
        assert filetype._SEEN.hits == hits


def test_a_changed_byte_is_not_a_repeat() -> None:
    """Same length, one byte different: a fresh libmagic answer, file(1)'s."""
    import analyzers.filetype as filetype

    text = b"plain words in a note\n" * 30
    script = b"#!/bin/sh\n" + text[10:]
    assert len(text) == len(script)
    identify(text)
    hits = filetype._SEEN.hits
    assert identify(script) == (_file_says(script, "--mime-type"), _file_says(script))
    assert filetype._SEEN.hits == hits
    assert identify(script)[1] != identify(text)[1]


def test_seen_heads_stay_within_their_budget() -> None:
    from analyzers.filetype import _SeenHeads

    seen = _SeenHeads()
    seen.BUDGET = 10_000
    for i in range(100):
        seen.put(b"%05d" % i * 200, ("text/plain", "ASCII text"))  # 1,000 bytes each
    assert seen._bytes <= 10_000 and len(seen._answers) == 10
    assert seen.get(b"%05d" % 99 * 200) is not None and seen.get(b"%05d" % 0 * 200) is None
