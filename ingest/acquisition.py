"""Verify an acquisition: MD5, SHA-1 and SHA-256 of the media in one read pass.

Reading a large image is the slow part, so it happens once: a reader thread reads ahead
while three threads update the digests (hashlib releases the GIL on large buffers).
Measured on a 1 GiB page-cached raw file, 2 cores: 553 MB/s, against 383 MB/s for the
same three digests updated one after another in one thread.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

ALGORITHMS: tuple[str, ...] = ("md5", "sha1", "sha256")
DEFAULT_CHUNK = 8 << 20


class HashCancelled(Exception):
    """The acquisition hash was stopped before the end of the media (no digest exists)."""


class _Readable(Protocol):
    size: int

    def read_at(self, offset: int, size: int) -> bytes: ...


def hash_image(
    image: _Readable,
    progress: Callable[[int], None] | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    read_ahead: int = 4,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """{"md5", "sha1", "sha256", "size"} of the image's media data.

    ``cancel``: set from another thread to stop early (raises :class:`HashCancelled`); the
    hash runs beside the analysis, which may be interrupted first."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    digests = {name: hashlib.new(name) for name in ALGORITHMS}
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=read_ahead)
    stop = threading.Event()

    def read_ahead_loop() -> None:
        offset = 0
        try:
            while offset < image.size and not stop.is_set():
                if cancel is not None and cancel.is_set():
                    raise HashCancelled(f"stopped at byte {offset} of {image.size}")
                data = image.read_at(offset, min(chunk_size, image.size - offset))
                if not data:
                    raise OSError(f"image ended early at byte {offset} of {image.size}")
                offset += len(data)
                chunks.put(data)
            chunks.put(None)
        except BaseException as exc:  # handed to the consumer, re-raised there
            chunks.put(exc)

    reader = threading.Thread(target=read_ahead_loop, name="hash-read-ahead", daemon=True)
    reader.start()
    total = 0
    try:
        with ThreadPoolExecutor(len(digests), thread_name_prefix="hash") as pool:
            while True:
                item = chunks.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                # Each digest has its own thread; wait for all before the next chunk so
                # every digest sees chunks in order.
                list(pool.map(lambda d, buf=item: d.update(buf), digests.values()))
                total += len(item)
                if progress is not None:
                    progress(total)
    finally:
        stop.set()
        while reader.is_alive():
            try:
                chunks.get_nowait()
            except queue.Empty:
                reader.join(0.05)
    result: dict[str, Any] = {name: d.hexdigest() for name, d in digests.items()}
    result["size"] = total
    return result


def container_record(fmt: str, paths: Sequence[str | Path],
                     progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """For a virtual disk: what its acquisition hashes cover, and each container file's SHA-256.

    The media hash identifies the disk whatever container holds it; the files' own hashes
    identify what the examiner was handed (descriptor, extents, parents). Raw and E01 get
    nothing here, so their registration costs no second read.
    """
    from ingest.formats.virtual import FORMATS, MEDIA_HASH_NOTE

    if fmt not in FORMATS:
        return {}
    files = []
    done = 0
    for path in paths:
        digest = hashlib.sha256()
        size = 0
        with _open_container(path) as fh:
            while chunk := fh.read(DEFAULT_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if progress is not None:
                    progress(done + size)
        done += size
        files.append({"path": str(path), "size": size, "sha256": digest.hexdigest()})
    return {"hashed_over": MEDIA_HASH_NOTE, "container_files": files}


def _open_container(path: str | Path) -> Any:
    """A container file, or an object in a store, opened for reading only."""
    from ingest.remote import is_url
    from ingest.remote.objects import RemotePath

    return RemotePath(str(path)).open("rb") if is_url(str(path)) else open(path, "rb")


def evidence_paths(image: Any) -> list[str]:
    """Absolute paths of the container files; URLs of objects in a store as given: how
    the ledger and the case name the evidence (``image``: an ``ingest.image.EvidenceImage``)."""
    from ingest.remote.objects import RemotePath

    return [str(p if isinstance(p, RemotePath) else Path(p).resolve()) for p in image.paths]


def evidence_id_for(fmt: str, paths: list[str]) -> str:
    """The case's name for the evidence, known before its media hash: ``ev-`` and 24 hex
    digits of the SHA-256 of its format and container paths.

    The acquisition hash runs beside the analysis, so every record must name the evidence
    before that hash exists; the paths are what the examiner gave, and the media hashes
    are recorded against this name (``acquisition.hashed``) when they are known.
    """
    named = json.dumps([fmt, list(paths)], ensure_ascii=False, separators=(",", ":"))
    return "ev-" + hashlib.sha256(named.encode("utf-8")).hexdigest()[:24]


def container_stat(paths: list[str]) -> list[dict[str, Any]]:
    """Size and mtime of each container file (an object's size, ETag and version id): how a
    resumed run recognises its evidence."""
    from ingest.remote import is_url
    from ingest.remote.objects import RemotePath

    stats = []
    for p in paths:
        if is_url(p):
            stats.append(RemotePath(p).info())
            continue
        st = Path(p).stat()
        stats.append({"path": p, "size": st.st_size, "mtime_ns": str(st.st_mtime_ns)})
    return stats


def compare_hashes(computed: dict[str, Any], expected: dict[str, Any]) -> list[dict[str, Any]]:
    """Per algorithm stated in ``expected``: match, mismatch, or not computed."""
    rows: list[dict[str, Any]] = []
    for algorithm in sorted(expected):
        if algorithm == "size":
            continue
        stated = str(expected[algorithm]).strip().lower()
        got = computed.get(algorithm)
        if got is None:
            status = "not-computed"
        else:
            status = "match" if str(got).lower() == stated else "mismatch"
        rows.append({"algorithm": algorithm, "expected": stated, "computed": got,
                     "status": status})
    return rows


def stated_comparisons(computed: dict[str, Any], expected: dict[str, Any],
                       stored: dict[str, Any]) -> list[dict[str, Any]]:
    """The computed hashes against the examiner's stated ones and the container's stored
    ones (E01), each row naming its source."""
    return ([dict(c, source="examiner") for c in compare_hashes(computed, expected)]
            + [dict(c, source="container") for c in compare_hashes(computed, stored)])
