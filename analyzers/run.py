"""Feed one file's bytes, read once, to every analyzer; return a closed result.

This is the function a pipeline worker calls with the chunks it reads from the evidence,
and the one the tests call with in-memory bytes, so both exercise the same ordering:

1. Chunks are buffered until the largest ``head_size`` is reached (or the file ends);
   then every applicable ``"head"`` analyzer runs on that head.
2. ``"stream"`` analyzers start with the head findings in hand, get the buffered chunks
   and then every following chunk, and finish at the end of the file.
3. Content is buffered only while some applicable ``"content"`` analyzer could still
   take it (``max_size``); at the end each one runs on the whole content, or is
   recorded as skipped with the reason when the file was larger than its limit.
4. ``"random"`` analyzers run last, each on a seekable file object from ``opener``
   (the worker's: the evidence itself); without an opener the content is buffered for
   them as for content analyzers and handed over in memory. ``max_size`` applies alike.

Every analyzer is isolated: an exception (``AnalyzerError`` or anything else) becomes an
error record and the other analyzers still run. An analyzer whose ``applies_to`` says no
is quiet ("not my format"); a skip for size is never quiet. Errors raised by the chunk
iterator itself (reading the evidence) are not analyzer errors and propagate.
"""

from __future__ import annotations

import io
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, BinaryIO, NamedTuple

from analyzers.base import Analyzer, Findings, StreamSession
from ingest.location import FileEntry

CHUNK_SIZE = 64 * 1024  # what tests use; a worker may read in any chunk size

ErrorRecord = dict[str, Any]
Opener = Callable[[], BinaryIO]  # a new seekable, read-only file object over the content


class AnalysisResult(NamedTuple):
    """Findings by analyzer name, and the error/skip records (unpacks as a 2-tuple)."""

    findings: dict[str, Findings]
    errors: list[ErrorRecord]


def error_record(analyzer: Analyzer, exc: BaseException, entry: FileEntry) -> ErrorRecord:
    """The closed form of one analyzer's failure on one file."""
    return {
        "kind": "error",
        "analyzer": analyzer.name,
        "version": analyzer.version,
        "error": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "location": entry.location.to_dict(),
    }


def skip_record(analyzer: Analyzer, reason: str, entry: FileEntry) -> ErrorRecord:
    """An informational record: the analyzer applied but was not run, and why."""
    return {
        "kind": "skipped",
        "analyzer": analyzer.name,
        "version": analyzer.version,
        "error": "Skipped",
        "message": reason,
        "traceback": None,
        "location": entry.location.to_dict(),
    }


def iter_chunks(data: bytes, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Split ``data`` the way a worker reading the evidence would hand it over."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    view = memoryview(data)
    for start in range(0, len(data), chunk_size):
        yield bytes(view[start : start + chunk_size])


def head_size_for(analyzers: Sequence[Analyzer]) -> int:
    """How many leading bytes the head analyzers need (the largest ``head_size``)."""
    return max((a.head_size for a in analyzers if a.input == "head"), default=0)


class _Runner:
    """State of one file's pass; see the module docstring for the order."""

    def __init__(self, entry: FileEntry, analyzers: Sequence[Analyzer],
                 opener: Opener | None = None) -> None:
        for analyzer in analyzers:
            if analyzer.input not in ("head", "stream", "content", "random"):
                raise ValueError(f"analyzer {analyzer.name!r} has unknown input {analyzer.input!r}")
        self.entry = entry
        self.analyzers = list(analyzers)
        self.findings: dict[str, Findings] = {}
        self.errors: list[ErrorRecord] = []
        self.head_size = head_size_for(analyzers)
        self.buffer: list[bytes] = []  # head (until heads ran), then content if wanted
        self.buffered = 0
        self.seen = 0
        self.heads_done = False
        self.sessions: list[tuple[Analyzer, StreamSession]] = []
        self.content: list[Analyzer] = []
        self.random: list[Analyzer] = []
        self.opener = opener
        self.content_limit: float = -1.0  # keep buffering content while seen <= this

    def _fail(self, analyzer: Analyzer, exc: BaseException) -> None:
        self.errors.append(error_record(analyzer, exc, self.entry))

    def _applies(self, analyzer: Analyzer) -> bool:
        try:
            return bool(analyzer.applies_to(self.entry, self.findings))
        except Exception as exc:
            self._fail(analyzer, exc)
            return False

    def _run_heads(self) -> None:
        """Run head analyzers, then start streams and choose content analyzers."""
        self.heads_done = True
        head = b"".join(self.buffer)
        for analyzer in self.analyzers:
            if analyzer.input == "head" and self._applies(analyzer):
                try:
                    self.findings[analyzer.name] = analyzer.analyze(
                        head[: analyzer.head_size], self.entry, dict(self.findings)
                    )
                except Exception as exc:
                    self._fail(analyzer, exc)
        for analyzer in self.analyzers:
            if analyzer.input == "stream" and self._applies(analyzer):
                try:
                    session = analyzer.start(self.entry)
                except Exception as exc:
                    self._fail(analyzer, exc)
                    continue
                self.sessions.append((analyzer, session))
        for analyzer in self.analyzers:
            if analyzer.input == "content" and self._applies(analyzer):
                self.content.append(analyzer)
            elif analyzer.input == "random" and self._applies(analyzer):
                self.random.append(analyzer)
        # Without an opener, random-access analyzers get the buffered content.
        limits = [a.max_size for a in self.content + ([] if self.opener else self.random)]
        if not limits:
            self.content_limit = -1.0
        elif None in limits:
            self.content_limit = float("inf")
        else:
            self.content_limit = float(max(lim for lim in limits if lim is not None))
        for chunk in self.buffer:
            self._feed_streams(chunk)
        if self.seen > self.content_limit:
            self.buffer, self.buffered = [], 0

    def _feed_streams(self, chunk: bytes) -> None:
        alive = []
        for analyzer, session in self.sessions:
            try:
                session.update(chunk)
            except Exception as exc:
                self._fail(analyzer, exc)
                continue
            alive.append((analyzer, session))
        self.sessions = alive

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.seen += len(chunk)
        if not self.heads_done:
            self.buffer.append(chunk)
            self.buffered += len(chunk)
            if self.buffered >= self.head_size:
                self._run_heads()
            return
        self._feed_streams(chunk)
        if self.seen <= self.content_limit:
            self.buffer.append(chunk)
            self.buffered += len(chunk)
        elif self.buffer:
            self.buffer, self.buffered = [], 0  # too big for every content analyzer

    def finish(self) -> AnalysisResult:
        if not self.heads_done:
            self._run_heads()
        for analyzer, session in self.sessions:
            try:
                self.findings[analyzer.name] = session.finish()
            except Exception as exc:
                self._fail(analyzer, exc)
        content: bytes | None = None
        for analyzer in self.content:
            if analyzer.max_size is not None and self.seen > analyzer.max_size:
                reason = (
                    f"content of {self.seen} bytes exceeds {analyzer.name}'s max_size of "
                    f"{analyzer.max_size} bytes; not analysed"
                )
                self.errors.append(skip_record(analyzer, reason, self.entry))
                continue
            if content is None:
                content = b"".join(self.buffer)
            try:
                self.findings[analyzer.name] = analyzer.analyze(
                    content, self.entry, dict(self.findings)
                )
            except Exception as exc:
                self._fail(analyzer, exc)
        for analyzer in self.random:
            if analyzer.max_size is not None and self.seen > analyzer.max_size:
                reason = (f"content of {self.seen} bytes exceeds {analyzer.name}'s max_size of "
                          f"{analyzer.max_size} bytes; not analysed")
                self.errors.append(skip_record(analyzer, reason, self.entry))
                continue
            try:
                if self.opener is not None:
                    source = self.opener()
                else:
                    if content is None:
                        content = b"".join(self.buffer)
                    source = io.BytesIO(content)
                with source:
                    self.findings[analyzer.name] = analyzer.analyze_file(
                        source, self.entry, dict(self.findings))
            except Exception as exc:
                self._fail(analyzer, exc)
        return AnalysisResult(self.findings, self.errors)


def analyze_chunks(
    chunks: Iterable[bytes], entry: FileEntry, analyzers: Sequence[Analyzer],
    opener: Opener | None = None,
) -> AnalysisResult:
    """Run ``analyzers`` (in the order given, e.g. from ``registry.create``) over one file.

    ``chunks`` is the file's content in order, in chunks of any size; it is consumed once.
    ``opener`` gives ``"random"`` analyzers a seekable file object over the same content.
    """
    runner = _Runner(entry, analyzers, opener)
    for chunk in chunks:
        runner.feed(bytes(chunk))
    return runner.finish()


def analyze_bytes(
    data: bytes | Iterable[bytes],
    entry: FileEntry,
    analyzers: Sequence[Analyzer],
    chunk_size: int = CHUNK_SIZE,
) -> AnalysisResult:
    """:func:`analyze_chunks` for content already in memory (split into ``chunk_size``)."""
    if isinstance(data, bytes | bytearray | memoryview):
        return analyze_chunks(iter_chunks(bytes(data), chunk_size), entry, analyzers)
    return analyze_chunks(data, entry, analyzers)
