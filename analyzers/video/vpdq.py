"""vPDQ: ThreatExchange's video hash, a bag of per-frame PDQ hashes, and its match rule.

A video's vPDQ is one :class:`Frame` per sampled frame: the frame number, the PDQ hash
(64 hex digits), its quality (0–100) and the timestamp in seconds. Two text forms exist
and both are read and written here:

- the reference hasher's file (``vpdq-hash-video``): ``frame,quality,pdq,timestamp``
  per line, timestamps with 3 decimals, one file per video;
- python-threatexchange's JSON list of ``"pdq,quality,timestamp"`` strings (no frame
  numbers), the form exhibit stores and exports.

The match rule is the reference's (``matchTwoHash.cpp``, python-threatexchange's
``vpdq_util``): frames below ``quality`` are dropped on both sides; a query frame is
matched when some compared frame lies within ``distance`` bits; the video matches when
at least ``query_pct`` % of the query's frames and ``compared_pct`` % of the compared
video's frames are matched. (The C++ tool compares with ``<`` a tolerance of 32 where
python-threatexchange uses ``<=`` 31: the same rule.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass

PDQ_HEX = 64


class VpdqFormatError(ValueError):
    """Text that is not a vPDQ hash in either form; the message names the line."""


@dataclass(frozen=True)
class Frame:
    """One sampled frame's hash."""

    pdq: str
    quality: int
    timestamp: float
    number: int | None = None  # frame number, when the source gives it

    def compact(self) -> str:
        """python-threatexchange's ``pdq,quality,timestamp`` string."""
        return f"{self.pdq},{self.quality},{self.timestamp:.3f}"


@dataclass(frozen=True)
class Rule:
    """The reference's match thresholds (all configurable)."""

    distance: int = 31
    quality: int = 50
    query_pct: float = 80.0
    compared_pct: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.distance < 128:
            raise ValueError(f"vpdq distance must be in 0..127, got {self.distance}")
        if not 0 <= self.quality <= 100:
            raise ValueError(f"vpdq quality must be in 0..100, got {self.quality}")
        for name in ("query_pct", "compared_pct"):
            if not 0.0 <= getattr(self, name) <= 100.0:
                raise ValueError(f"vpdq {name} must be a percentage, got {getattr(self, name)}")


DEFAULT_RULE = Rule()


def _check_hash(value: str, where: str) -> str:
    value = value.strip().lower()
    if len(value) != PDQ_HEX or any(c not in "0123456789abcdef" for c in value):
        raise VpdqFormatError(f"{where}: {value[:80]!r} is not a 64-hex-digit PDQ hash")
    return value


def _number(text: str, kind: type, where: str) -> float | int:
    try:
        return kind(text.strip())
    except ValueError:
        raise VpdqFormatError(f"{where}: {text.strip()[:40]!r} is not a number") from None


def parse_compact(text: str, where: str = "vpdq") -> Frame:
    """One ``pdq,quality,timestamp`` string."""
    parts = text.split(",")
    if len(parts) != 3:
        raise VpdqFormatError(f"{where}: expected 'pdq,quality,timestamp', got {text[:80]!r}")
    quality = int(_number(parts[1], int, where))
    return Frame(_check_hash(parts[0], where), quality, float(_number(parts[2], float, where)))


def parse_reference_line(line: str, where: str) -> Frame:
    """One ``frame,quality,pdq,timestamp`` line of the reference hasher's output."""
    parts = line.strip().split(",")
    if len(parts) != 4:
        raise VpdqFormatError(f"{where}: expected 'frame,quality,pdq,timestamp'")
    return Frame(_check_hash(parts[2], where), int(_number(parts[1], int, where)),
                 float(_number(parts[3], float, where)), int(_number(parts[0], int, where)))


def looks_like_reference(text: str) -> bool:
    """Whether ``text`` (a file's head) is the reference hasher's per-frame output."""
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    try:
        parse_reference_line(first, "head")
    except VpdqFormatError:
        return False
    return True


def looks_like_json_list(text: str) -> bool:
    """Whether ``text`` starts a JSON list of compact frame strings."""
    stripped = text.lstrip()
    if not stripped.startswith("["):
        return False
    rest = stripped[1:].lstrip()
    if not rest.startswith('"'):
        return False
    end = rest.find('"', 1)
    try:
        parse_compact(rest[1:end] if end > 0 else "", "head")
    except VpdqFormatError:
        return False
    return True


def from_json(text: str, where: str = "vpdq") -> list[Frame]:
    """The JSON list form (a JSON string of a list of compact strings)."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise VpdqFormatError(f"{where}: line {exc.lineno}: {exc.msg}") from None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise VpdqFormatError(f"{where}: expected a JSON list of 'pdq,quality,timestamp'")
    return [parse_compact(item, f"{where}: item {n}") for n, item in enumerate(items, 1)]


def to_json(frames: list[Frame]) -> str:
    return json.dumps([f.compact() for f in frames])


def to_reference_text(frames: list[Frame]) -> str:
    """The reference hasher's file format (frame numbers must be known)."""
    return "".join(f"{f.number},{f.quality},{f.pdq},{f.timestamp:.3f}\n" for f in frames)


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def match_brute(query: list[Frame], compared: list[Frame], rule: Rule = DEFAULT_RULE
                ) -> tuple[float, float]:
    """(query-matched %, compared-matched %) by the reference's brute-force comparison.

    Small and obviously right: the oracle the indexed matcher in ``pipeline.matching``
    is tested against. An empty side after the quality filter matches 0 %.
    """
    q = [f for f in query if f.quality >= rule.quality]
    c = [f for f in compared if f.quality >= rule.quality]
    if not q or not c:
        return 0.0, 0.0
    q_hit = sum(any(hamming(a.pdq, b.pdq) <= rule.distance for b in c) for a in q)
    c_hit = sum(any(hamming(a.pdq, b.pdq) <= rule.distance for b in q) for a in c)
    return q_hit * 100.0 / len(q), c_hit * 100.0 / len(c)


def is_match(query_pct: float, compared_pct: float, rule: Rule = DEFAULT_RULE) -> bool:
    return query_pct >= rule.query_pct and compared_pct >= rule.compared_pct


def time_ranges(timestamps: list[float], gap: float) -> list[tuple[float, float]]:
    """Sorted timestamps merged into (start, end) ranges where neighbours are ≤ ``gap`` apart."""
    out: list[list[float]] = []
    for t in sorted(timestamps):
        if out and t - out[-1][1] <= gap + 1e-6:
            out[-1][1] = t
        else:
            out.append([t, t])
    return [(round(a, 3), round(b, 3)) for a, b in out]
