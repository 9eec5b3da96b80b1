"""The analyzer contract: pure code that turns one file's bytes into findings.

Analyzers never open evidence, write a database or touch the ledger. A worker reads a
file once and hands every analyzer the part it declared it needs:

- ``"stream"``: every chunk, in order (``start`` → ``update``… → ``finish``). Digests.
- ``"head"``: the first ``head_size`` bytes, once (``analyze``). File type.
- ``"content"``: the whole content up to ``max_size`` bytes, once (``analyze``), after
  the head analyzers ran, so ``applies_to`` can look at their findings (EXIF only on
  images). Larger files are not handed over; the worker records why.
- ``"random"``: a seekable, read-only file object over the content (``analyze_file``),
  at the end of the pass, for formats read by seeking rather than in order (videos:
  FFmpeg seeks to the index at the end of an MP4). A worker opens it on the evidence
  itself, so nothing is held in memory or copied to disk; a caller with the content
  only in chunks buffers it (up to ``max_size``) and hands over an in-memory file.

Findings are JSON-serializable dicts. An analyzer that meets bad input raises
``AnalyzerError`` (or anything else): the worker turns it into an error record with the
analyzer's name, version and the file's evidence location; the run goes on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, BinaryIO, ClassVar, Literal

from ingest.location import FileEntry

Findings = dict[str, Any]
InputKind = Literal["stream", "head", "content", "random"]


class AnalyzerError(Exception):
    """Root of the errors an analyzer raises for input it cannot analyse."""


class StreamSession(ABC):
    """Per-file state of a ``"stream"`` analyzer."""

    @abstractmethod
    def update(self, chunk: bytes) -> None: ...

    @abstractmethod
    def finish(self) -> Findings: ...


class Analyzer(ABC):
    """Base class; subclasses set the class constants and one of the two entry points."""

    name: ClassVar[str]
    version: ClassVar[str]
    input: ClassVar[InputKind]
    head_size: ClassVar[int] = 0  # for "head" analyzers
    max_size: ClassVar[int | None] = None  # for "content" and "random" analyzers

    def applies_to(self, entry: FileEntry, findings: dict[str, Findings]) -> bool:
        """Whether this file is for us; ``findings`` holds earlier analyzers' output."""
        return entry.kind == "file"

    def start(self, entry: FileEntry) -> StreamSession:
        """Begin a stream for one file (``"stream"`` analyzers only)."""
        raise NotImplementedError(f"{self.name} is not a stream analyzer")

    def analyze(self, data: bytes, entry: FileEntry, findings: dict[str, Findings]) -> Findings:
        """Analyse the head or the whole content (``"head"``/``"content"`` analyzers)."""
        raise NotImplementedError(f"{self.name} is not a head/content analyzer")

    def analyze_file(self, source: BinaryIO, entry: FileEntry,
                     findings: dict[str, Findings]) -> Findings:
        """Analyse the content through a seekable file object (``"random"`` analyzers)."""
        raise NotImplementedError(f"{self.name} is not a random-access analyzer")

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        """Versions of the libraries whose behaviour shapes this analyzer's findings."""
        return {}

    @classmethod
    def configured(cls, settings: Mapping[str, str]) -> Analyzer:
        """An instance with the examiner's settings (``--setting NAME.KEY=VALUE``); the
        default analyzer takes none, so a setting it does not know is an error, not ignored."""
        if settings:
            raise ValueError(f"analyzer {cls.name} takes no settings"
                             f" (given: {', '.join(sorted(settings))})")
        return cls()
