"""Known-hash sets: read them, load them into the case, match exact digests.

Formats read here:
- plain lists: one MD5, SHA-1 or SHA-256 per line (the algorithm is told by the length),
  ``#`` starts a comment, blank lines are ignored;
- CSV with a header row that names the hash column(s) (``md5``, ``sha1``, ``sha256``,
  or ``hash``) and optionally ``category``.

A line that is not a hash is counted and reported (first line numbers kept), never
silently dropped. A set is identified by its own SHA-256; loading the same file twice
into a case is a no-op.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.casedb import utc_now

if TYPE_CHECKING:
    from pipeline.case import Case

_ALGORITHM_BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256"}
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_HASH_COLUMNS = ("md5", "sha1", "sha256", "sha-1", "sha-256", "hash")
EXACT_ALGORITHMS = ("md5", "sha1", "sha256")


@dataclass
class KnownHashSet:
    """A parsed set, ready to load: its identity and its entries."""

    name: str
    source: str
    sha256: str
    format: str
    entries: list[tuple[str, str, str | None]] = field(default_factory=list)  # algo, hex, cat
    rejected: list[int] = field(default_factory=list)  # line numbers that were not hashes

    def counts(self) -> dict[str, int]:
        counts = Counter(algo for algo, _, _ in self.entries)
        summary = {algo: counts.get(algo, 0) for algo in EXACT_ALGORITHMS}
        summary["rejected_lines"] = len(self.rejected)
        return summary


def classify(value: str) -> str | None:
    """The algorithm a hex digest belongs to by its length, or None if it is no digest."""
    value = value.strip()
    if not _HEX.match(value):
        return None
    return _ALGORITHM_BY_LENGTH.get(len(value))


def read_hashset(path: Path, name: str | None = None) -> KnownHashSet:
    """Parse a plain list or a CSV hash set; raises ValueError if nothing in it is a hash."""
    data = path.read_bytes()
    text = data.decode("utf-8-sig", errors="replace")
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
    is_csv = "," in first and any(col in first.lower() for col in _HASH_COLUMNS)
    hashset = KnownHashSet(
        name=name or path.name,
        source=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        format="csv" if is_csv else "plain",
    )
    rows = _read_csv(text, hashset) if is_csv else _read_plain(text, hashset)
    for algo, value, category in rows:
        hashset.entries.append((algo, value.lower(), category))
    if not hashset.entries:
        raise ValueError(f"{path}: no MD5, SHA-1 or SHA-256 values found")
    return hashset


def _read_plain(text: str, hashset: KnownHashSet) -> Iterator[tuple[str, str, str | None]]:
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        algo = classify(value)
        if algo is None:
            hashset.rejected.append(number)
            continue
        yield algo, value, None


def _read_csv(text: str, hashset: KnownHashSet) -> Iterator[tuple[str, str, str | None]]:
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    fields = {f.strip().lower(): f for f in reader.fieldnames or []}
    hash_fields = [fields[c] for c in _HASH_COLUMNS if c in fields]
    category_field = fields.get("category")
    for number, row in enumerate(reader, start=2):
        found = False
        for column in hash_fields:
            value = (row.get(column) or "").strip()
            algo = classify(value)
            if algo is not None:
                found = True
                category = (row.get(category_field) or "").strip() if category_field else ""
                yield algo, value, category or None
        if not found:
            hashset.rejected.append(number)


def load_hashset(case: Case, path: Path) -> None:
    """Import a set into the case (one transaction) and record it; a no-op if present."""
    hashset = read_hashset(path)
    db = case.db
    row = db.conn.execute("SELECT id FROM hashsets WHERE sha256 = ?", (hashset.sha256,))
    if row.fetchone() is not None:
        return
    db.begin()
    try:
        cur = db.conn.execute(
            "INSERT INTO hashsets (name, sha256, source, format, counts, loaded_at)"
            " VALUES (?,?,?,?,?,?)",
            (hashset.name, hashset.sha256, hashset.source, hashset.format,
             json.dumps(hashset.counts()), utc_now()),
        )
        db.conn.executemany(
            "INSERT INTO known_hashes (hashset_id, algorithm, value, category)"
            " VALUES (?,?,?,?)",
            [(cur.lastrowid, a, v, c) for a, v, c in hashset.entries],
        )
        db.commit()
    except BaseException:
        db.rollback()
        raise
    case.record("hashset.loaded", None, {
        "name": hashset.name, "source": hashset.source, "sha256": hashset.sha256,
        "format": hashset.format, "counts": hashset.counts(),
        "rejected_lines": hashset.rejected[:20],
    })
