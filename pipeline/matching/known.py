"""What a known-hash set is made of, whatever its format: entries, algorithms, errors;
and how near a perceptual hash must be to count as a match (:class:`Thresholds`)."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXACT_ALGORITHMS = ("md5", "sha1", "sha256")
PERCEPTUAL_ALGORITHMS = ("phash", "dhash", "pdq")
VIDEO_ALGORITHMS = ("vpdq",)  # one known_hashes row per frame: "pdq,quality,timestamp"
ALGORITHMS = EXACT_ALGORITHMS + PERCEPTUAL_ALGORITHMS + VIDEO_ALGORITHMS
HEX_DIGITS = {"md5": 32, "sha1": 40, "sha256": 64, "phash": 16, "dhash": 16, "pdq": 64}
ALGORITHM_BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256"}
HEX = re.compile(r"^[0-9a-fA-F]+$")
BITS = {a: 4 * HEX_DIGITS[a] for a in PERCEPTUAL_ALGORITHMS}  # 64, 64, 256


@dataclass(frozen=True)
class Thresholds:
    """Largest Hamming distance that counts as a match, per algorithm.

    Defaults chosen from the robustness benchmark (README, "Matching"): they keep every
    measured false-match rate among distinct photos at 0 while finding resized,
    recompressed and PNG-converted copies; PDQ's 31 is ThreatExchange's recommendation.
    """

    phash: int = 8
    dhash: int = 8
    pdq: int = 31
    pdq_quality: int = 50

    def __post_init__(self) -> None:
        for name, bits in BITS.items():
            value = getattr(self, name)
            if not 0 <= value < bits // 2:
                raise ValueError(f"{name} threshold must be in 0..{bits // 2 - 1}, got {value}")
        if not 0 <= self.pdq_quality <= 100:
            raise ValueError(f"pdq_quality must be in 0..100, got {self.pdq_quality}")


DEFAULT_THRESHOLDS = Thresholds()


class HashSetError(ValueError):
    """A hash set that cannot be imported as given; the message names the line or record."""


@dataclass
class KnownEntry:
    """One known item: a line, a CSV row, a VICS Media record or an NSRL file."""

    ref: str
    hashes: list[tuple[str, str]]  # (algorithm, lower-case hex)
    category: str | None = None
    media_id: str | None = None
    series: str | None = None
    precategorized: bool | None = None
    details: dict[str, Any] | None = None


@dataclass
class ParsedSet:
    """What a reader learnt about the set besides its entries."""

    format: str
    version: str | None = None
    kind: str = "alert"
    labels: dict[str, str] = field(default_factory=dict)  # from a category_label column
    rejected: list[int] = field(default_factory=list)  # lenient mode: skipped line numbers
    skipped: Counter[str] = field(default_factory=Counter)  # records without usable hashes


@dataclass
class KnownHashSet:
    """A parsed set held in memory (small sets, tests); imports stream instead."""

    name: str
    source: str
    sha256: str
    format: str
    entries: list[tuple[str, str, str | None]] = field(default_factory=list)  # algo, hex, cat
    rejected: list[int] = field(default_factory=list)
    version: str | None = None
    kind: str = "alert"
    known: list[KnownEntry] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = Counter(algo for algo, _, _ in self.entries)
        summary = {algo: counts.get(algo, 0) for algo in EXACT_ALGORITHMS}
        summary.update({algo: counts[algo] for algo in PERCEPTUAL_ALGORITHMS if counts[algo]})
        summary["rejected_lines"] = len(self.rejected)
        return summary


def classify(value: str) -> str | None:
    """The algorithm a hex digest belongs to by its length, or None if it is no digest."""
    value = value.strip()
    if not HEX.match(value):
        return None
    return ALGORITHM_BY_LENGTH.get(len(value))


def normalise(algorithm: str, value: Any, where: str) -> str:
    """A hash value as lower-case hex of the algorithm's length, or HashSetError."""
    text = str(value).strip()
    if algorithm == "hash":
        found = classify(text)
        if found is None:
            raise HashSetError(f"{where}: {show(text)} is not an MD5, SHA-1 or SHA-256 value")
        return text.lower()
    if len(text) != HEX_DIGITS[algorithm] or not HEX.match(text):
        raise HashSetError(f"{where}: {algorithm} value {show(text)} is not"
                           f" {HEX_DIGITS[algorithm]} hex digits")
    return text.lower()


def vpdq_hashes(value: Any, where: str) -> list[tuple[str, str]]:
    """A vPDQ value (the JSON list form, as text or as a list) as one hash per frame."""
    from analyzers.video.vpdq import VpdqFormatError, from_json

    text = value if isinstance(value, str) else json.dumps(value)
    try:
        frames = from_json(text, where)
    except VpdqFormatError as exc:
        raise HashSetError(str(exc)) from None
    if not frames:
        raise HashSetError(f"{where}: an empty vPDQ list")
    return [("vpdq", frame.compact()) for frame in frames]


def show(text: str) -> str:
    """A value short enough for an error message."""
    return repr(text if len(text) <= 80 else text[:77] + "...")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def lines(path: Path, strict: bool) -> Iterator[str]:
    """The file's lines, streamed (memory does not grow with the file)."""
    with path.open(encoding="utf-8-sig", errors="strict" if strict else "replace",
                   newline="") as fh:
        yield from fh
