"""Known-hash sets: read every supported format, import one atomically into the case.

Formats (told apart by content, not by file name):

- **plain**: one MD5, SHA-1 or SHA-256 per line (the algorithm is told by the length),
  ``#`` starts a comment, blank lines are ignored.
- **csv**: a header row naming the columns: ``md5``, ``sha1``/``sha-1``, ``sha256``/
  ``sha-256``, ``hash`` (any digest, told by length), ``phash``, ``dhash`` (16 hex
  digits), ``pdq`` (64 hex digits), and optionally ``category``, ``category_label``,
  ``series``, ``media_id``, ``description``/``name``. One row is one known entry.
- **vics**: Project VIC VICS JSON, data model 1.x (``odata.metadata``) and 2.0
  (``@odata.context``); ``value[]`` holds Media directly (a hash set) or Cases with
  ``Media[]`` (a case export). Each Media gives ``MD5``/``SHA1``/``SHA256`` and, where
  present, ``PDQ``/``pHash``/``dHash`` — as fields or as ``AlternativeHashes[]``
  (``HashName``/``HashValue``) — plus ``MediaID``, ``Category``, ``IsPrecategorized``,
  ``Series`` and ``MediaFiles[]``. exhibit's own export of found media is VICS 2.0 and
  imports through this reader.
- **nsrl**: NIST NSRL RDSv3 SQLite (``FILE``/``VERSION`` tables, ``DISTINCT_HASH``
  view); imported as a **known-good** set (``kind = 'known-good'``): matches mark files
  as known so they can be hidden from review.

Import is atomic: the whole set is one transaction, so a malformed line or record
(:class:`HashSetError`, naming the line or the record) leaves nothing behind. Parsing
streams: one entry at a time goes to SQLite, so memory stays near the size of the file
(a JSON file is held once as text; nothing is built per entry beyond the row in flight).

Categories are kept exactly as the set states them (a VICS ``1`` stays ``"1"``); a
*category profile* maps them to labels for display — a built-in one (:data:`PROFILES`),
a ``category_label`` CSV column, or a JSON/CSV file given with ``--category-map``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.case.database import utc_now

if TYPE_CHECKING:
    from pipeline.case.store import Case

EXACT_ALGORITHMS = ("md5", "sha1", "sha256")
PERCEPTUAL_ALGORITHMS = ("phash", "dhash", "pdq")
ALGORITHMS = EXACT_ALGORITHMS + PERCEPTUAL_ALGORITHMS
HEX_DIGITS = {"md5": 32, "sha1": 40, "sha256": 64, "phash": 16, "dhash": 16, "pdq": 64}
_ALGORITHM_BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256"}
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_CSV_COLUMNS = {
    "md5": "md5", "sha1": "sha1", "sha-1": "sha1", "sha256": "sha256", "sha-256": "sha256",
    "hash": "hash", "phash": "phash", "dhash": "dhash", "pdq": "pdq",
}
_VICS_HASH_FIELDS = {
    "md5": "md5", "sha1": "sha1", "sha-1": "sha1", "sha256": "sha256", "sha-256": "sha256",
    "pdq": "pdq", "phash": "phash", "dhash": "dhash",
}
_VICS_IGNORED_HASHES = ("photodna",)  # known, but not something exhibit computes
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BATCH = 5_000  # rows per executemany: Python memory is one batch, whatever the size
_CACHE_KIB = 256 * 1024  # SQLite page cache while importing (restored afterwards)

# Project VIC (US) categories as Griffeye/VICS tools label them. The number stays the
# record; the label is only for display and can be replaced with --category-map.
PROFILES: dict[str, dict[str, str]] = {
    "projectvic-us": {
        "0": "Non-Pertinent",
        "1": "Child Abuse Material",
        "2": "Child Exploitive (non-CAM) / Age Difficult",
        "3": "CGI / Animation",
        "4": "Comparison Images",
    },
    "none": {},
}
DEFAULT_PROFILE = {"vics": "projectvic-us"}


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
    if not _HEX.match(value):
        return None
    return _ALGORITHM_BY_LENGTH.get(len(value))


def normalise(algorithm: str, value: Any, where: str) -> str:
    """A hash value as lower-case hex of the algorithm's length, or HashSetError."""
    text = str(value).strip()
    if algorithm == "hash":
        found = classify(text)
        if found is None:
            raise HashSetError(f"{where}: {_show(text)} is not an MD5, SHA-1 or SHA-256 value")
        return text.lower()
    if len(text) != HEX_DIGITS[algorithm] or not _HEX.match(text):
        raise HashSetError(f"{where}: {algorithm} value {_show(text)} is not"
                           f" {HEX_DIGITS[algorithm]} hex digits")
    return text.lower()


def _show(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- detection


def detect_format(path: Path) -> str:
    """plain | csv | vics | nsrl, from the content."""
    with path.open("rb") as fh:
        head = fh.read(65536)
    if head.startswith(_SQLITE_MAGIC):
        return "nsrl"
    text = head.decode("utf-8-sig", errors="replace")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return "vics"
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
    columns = {c.strip().strip('"').lower() for c in first.split(",")}
    if "," in first and columns & set(_CSV_COLUMNS):
        return "csv"
    return "plain"


def iter_set(path: Path, *, strict: bool = True) -> tuple[ParsedSet, Iterator[KnownEntry]]:
    """The set's description and a lazy iterator over its entries (errors raise on the way)."""
    if not path.is_file():
        raise HashSetError(f"{path}: not a file")
    fmt = detect_format(path)
    info = ParsedSet(format=fmt)
    if fmt == "nsrl":
        info.kind = "known-good"
        return info, _iter_nsrl(path, info)
    if fmt == "vics":
        return info, _iter_vics(path, info)
    if fmt == "csv":
        return info, _iter_csv(path, info, strict)
    return info, _iter_plain(path, info, strict)


def _lines(path: Path, strict: bool) -> Iterator[str]:
    """The file's lines, streamed (memory does not grow with the file)."""
    with path.open(encoding="utf-8-sig", errors="strict" if strict else "replace",
                   newline="") as fh:
        yield from fh


def read_hashset(path: Path, name: str | None = None, *, strict: bool = True) -> KnownHashSet:
    """Parse a whole set into memory (for small sets and tests; imports stream)."""
    try:
        info, entries = iter_set(path, strict=strict)
        known = list(entries)
    except UnicodeDecodeError as exc:
        raise HashSetError(f"{path}: not UTF-8 text ({exc})") from exc
    hashset = KnownHashSet(name=name or path.name, source=str(path), sha256=file_sha256(path),
                           format=info.format, rejected=info.rejected, version=info.version,
                           kind=info.kind, known=known)
    for entry in known:
        hashset.entries.extend((algo, value, entry.category) for algo, value in entry.hashes)
    if not hashset.entries:
        raise HashSetError(f"{path}: no MD5, SHA-1, SHA-256, pHash, dHash or PDQ values found")
    return hashset


# ----------------------------------------------------------------------------- plain / CSV


def _iter_plain(path: Path, info: ParsedSet, strict: bool) -> Iterator[KnownEntry]:
    for number, line in enumerate(_lines(path, strict), start=1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        algo = classify(value)
        if algo is None:
            if strict:
                raise HashSetError(f"{path}: line {number}: {_show(value)} is not an MD5,"
                                   " SHA-1 or SHA-256 value")
            info.rejected.append(number)
            continue
        yield KnownEntry(ref=f"line {number}", hashes=[(algo, value.lower())])


def _iter_csv(path: Path, info: ParsedSet, strict: bool) -> Iterator[KnownEntry]:
    skipped = [0]  # comment lines consumed so far: physical line = reader.line_num + this

    def uncommented() -> Iterator[str]:
        for line in _lines(path, strict):
            if line.startswith("#"):
                skipped[0] += 1
                continue
            yield line

    reader = csv.reader(uncommented())
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise HashSetError(f"{path}: empty CSV") from None
    hash_cols = [(i, _CSV_COLUMNS[h]) for i, h in enumerate(header) if h in _CSV_COLUMNS]
    if not hash_cols:
        raise HashSetError(f"{path}: line {reader.line_num + skipped[0]}: no hash column in"
                           f" the header (expected one of {', '.join(sorted(_CSV_COLUMNS))})")
    col = {h: i for i, h in enumerate(header)}
    extra = [h for h in ("description", "name", "size", "series") if h in col]
    for row in reader:
        number = reader.line_num + skipped[0]
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}: line {number}"
        if len(row) > len(header):
            if strict:
                raise HashSetError(f"{where}: {len(row)} fields, the header has {len(header)}")
            info.rejected.append(number)
            continue
        row = row + [""] * (len(header) - len(row))
        hashes: list[tuple[str, str]] = []
        try:
            for i, algo in hash_cols:
                cell = row[i].strip()
                if not cell:
                    continue
                value = normalise(algo, cell, where)
                hashes.append((classify(value) if algo == "hash" else algo, value))  # type: ignore[arg-type]
            if not hashes:
                raise HashSetError(f"{where}: no hash value in this row")
        except HashSetError:
            if strict:
                raise
            info.rejected.append(number)
            continue

        category = _cell(row, col, "category")
        label = _cell(row, col, "category_label")
        if category is not None and label is not None:
            info.labels.setdefault(category, label)
        media_id = _cell(row, col, "media_id") or _cell(row, col, "mediaid")
        details = {h: row[col[h]] for h in extra if row[col[h]].strip()}
        yield KnownEntry(ref=f"line {number}", hashes=hashes, category=category,
                         media_id=media_id, series=_cell(row, col, "series"),
                         details=details or None)


def _cell(row: list[str], col: dict[str, int], name: str) -> str | None:
    value = row[col[name]].strip() if name in col else ""
    return value or None


# ----------------------------------------------------------------------------- VICS JSON

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")


def _skip(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()  # type: ignore[union-attr]


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    return f"line {line} column {pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


class _Json:
    """Walk a JSON text without building it: members and items, decoded one at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise HashSetError(f"{path}: not UTF-8 JSON ({exc})") from exc

    def error(self, pos: int, message: str) -> HashSetError:
        return HashSetError(f"{self.path}: {_where(self.text, pos)}: {message}")

    def value(self, pos: int) -> tuple[Any, int]:
        try:
            return _DECODER.raw_decode(self.text, pos)
        except json.JSONDecodeError as exc:
            raise HashSetError(f"{self.path}: line {exc.lineno} column {exc.colno}:"
                               f" invalid JSON ({exc.msg})") from exc

    def expect(self, pos: int, char: str) -> int:
        pos = _skip(self.text, pos)
        if self.text[pos:pos + 1] != char:
            found = self.text[pos:pos + 1] or "end of file"
            raise self.error(pos, f"expected {char!r}, found {found!r}")
        return pos + 1

    def members(self, pos: int) -> Iterator[tuple[str, int, list[int]]]:
        """(key, value position, end holder) per member; the caller sets end_holder[0]."""
        pos = self.expect(pos, "{")
        pos = _skip(self.text, pos)
        if self.text[pos:pos + 1] == "}":
            self.end = pos + 1
            return
        while True:
            key, pos = self.value(pos)
            if not isinstance(key, str):
                raise self.error(pos, "object key is not a string")
            pos = _skip(self.text, self.expect(pos, ":"))
            holder = [-1]
            yield key, pos, holder
            if holder[0] < 0:  # the caller did not consume it: skip the value
                _, holder[0] = self.value(pos)
            pos = _skip(self.text, holder[0])
            char = self.text[pos:pos + 1]
            if char == ",":
                pos = _skip(self.text, pos + 1)
                continue
            if char == "}":
                self.end = pos + 1
                return
            raise self.error(pos, f"expected ',' or '}}', found {char or 'end of file'!r}")

    def items(self, pos: int) -> Iterator[tuple[int, int, list[int]]]:
        """(index, item position, end holder) per array item."""
        pos = self.expect(pos, "[")
        pos = _skip(self.text, pos)
        if self.text[pos:pos + 1] == "]":
            self.end = pos + 1
            return
        index = 0
        while True:
            holder = [-1]
            yield index, pos, holder
            if holder[0] < 0:
                _, holder[0] = self.value(pos)
            pos = _skip(self.text, holder[0])
            char = self.text[pos:pos + 1]
            if char == ",":
                pos = _skip(self.text, pos + 1)
                index += 1
                continue
            if char == "]":
                self.end = pos + 1
                return
            raise self.error(pos, f"expected ',' or ']', found {char or 'end of file'!r}")


def _vics_version(metadata: str) -> str:
    match = re.search(r"DataModels/(\d+(?:\.\d+)*)\.xml", metadata)
    return match.group(1) if match else "unknown"


def _iter_vics(path: Path, info: ParsedSet) -> Iterator[KnownEntry]:
    doc = _Json(path)
    saw_value = False
    for key, pos, end in doc.members(0):
        if key in ("odata.metadata", "@odata.context"):
            metadata, end[0] = doc.value(pos)
            info.version = _vics_version(str(metadata))
            info.format = "vics"
        elif key == "value":
            saw_value = True
            for index, item_pos, item_end in doc.items(pos):
                yield from _vics_element(doc, item_pos, item_end, f"value[{index}]", info)
            end[0] = doc.end
    if info.version is None:
        raise HashSetError(f"{path}: JSON without 'odata.metadata' or '@odata.context':"
                           " not a Project VIC VICS file")
    if not saw_value:
        raise HashSetError(f"{path}: VICS file without a 'value' array")
    trailing = _skip(doc.text, doc.end)
    if trailing < len(doc.text):
        raise doc.error(trailing, "unexpected data after the JSON document")


def _vics_element(doc: _Json, pos: int, end: list[int], ref: str,
                  info: ParsedSet) -> Iterator[KnownEntry]:
    """A value[] element: a Media record, or a Case whose Media[] are streamed."""
    record: dict[str, Any] = {}
    saw_media = False
    for key, member_pos, member_end in doc.members(pos):
        if key == "Media":
            saw_media = True
            for index, item_pos, item_end in doc.items(member_pos):
                media, item_end[0] = doc.value(item_pos)
                yield from _vics_media(doc, media, f"{ref}.Media[{index}]", item_pos, info)
            member_end[0] = doc.end
        else:
            record[key], member_end[0] = doc.value(member_pos)
    end[0] = doc.end
    if not saw_media:
        yield from _vics_media(doc, record, ref, pos, info)


def _vics_media(doc: _Json, media: Any, ref: str, pos: int,
                info: ParsedSet) -> Iterator[KnownEntry]:
    if not isinstance(media, dict):
        raise doc.error(pos, f"{ref}: a Media record must be an object")
    media_id = media.get("MediaID")
    label = ref if media_id is None else f"{ref} (MediaID {media_id})"
    where = f"{doc.path}: {_where(doc.text, pos)}: {label}"
    hashes: dict[str, str] = {}
    for key, value in media.items():
        algo = _VICS_HASH_FIELDS.get(key.lower())
        if algo is not None and value not in (None, ""):
            hashes[algo] = normalise(algo, value, f"{where}: {key}")
    for alt in media.get("AlternativeHashes") or []:
        if not isinstance(alt, dict):
            raise HashSetError(f"{where}: AlternativeHashes entries must be objects")
        name = str(alt.get("HashName", "")).lower()
        algo = _VICS_HASH_FIELDS.get(name)
        if algo is not None and alt.get("HashValue") not in (None, ""):
            hashes.setdefault(algo, normalise(algo, alt["HashValue"], f"{where}: {name}"))
    if not hashes:  # e.g. PhotoDNA only: counted and reported, never silently dropped
        info.skipped["media without MD5/SHA-1/SHA-256/PDQ/pHash/dHash"] += 1
        return
    category = media.get("Category")
    precat = media.get("IsPrecategorized")
    if isinstance(precat, str):
        precat = precat.strip().lower() in ("true", "1", "yes")
    files = [
        {k: f.get(k) for k in ("FileName", "FilePath", "Created", "Written") if f.get(k)}
        for f in media.get("MediaFiles") or [] if isinstance(f, dict)
    ]
    details = {k: media[k] for k in ("MediaSize", "Comments", "Tags", "VictimIdentified",
                                     "OffenderIdentified", "Name", "FileName")
               if media.get(k) not in (None, "", [])}
    if files:
        details["MediaFiles"] = files
    yield KnownEntry(
        ref=ref, hashes=sorted(hashes.items()),
        category=None if category is None else str(category),
        media_id=None if media_id is None else str(media_id),
        series=None if media.get("Series") in (None, "") else str(media["Series"]),
        precategorized=None if precat is None else bool(precat),
        details=details or None,
    )


# ----------------------------------------------------------------------------- NSRL RDSv3


def _iter_nsrl(path: Path, info: ParsedSet) -> Iterator[KnownEntry]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        tables = {r[0].upper() for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    except sqlite3.DatabaseError as exc:
        raise HashSetError(f"{path}: not a readable SQLite database ({exc})") from exc
    try:
        if "FILE" not in tables:
            raise HashSetError(f"{path}: SQLite file without an NSRL RDSv3 FILE table")
        columns = {r[1].lower() for r in conn.execute("PRAGMA table_info(FILE)")}
        missing = {"sha256", "sha1", "md5"} - columns
        if missing:
            raise HashSetError(f"{path}: FILE table lacks {', '.join(sorted(missing))}:"
                               " not the RDSv3 schema")
        if "VERSION" in tables:
            row = conn.execute("SELECT version FROM VERSION ORDER BY rowid DESC").fetchone()
            info.version = None if row is None else str(row[0])
        source = "DISTINCT_HASH" if "DISTINCT_HASH" in tables else \
            "(SELECT DISTINCT sha256, sha1, md5 FROM FILE)"
        rows = conn.execute(f"SELECT sha256, sha1, md5 FROM {source}")
        for number, (sha256, sha1, md5) in enumerate(rows, start=1):
            where = f"{path}: {source.split()[0].strip('(')} row {number}"
            hashes = [(algo, normalise(algo, value, where))
                      for algo, value in (("md5", md5), ("sha1", sha1), ("sha256", sha256))
                      if value not in (None, "")]
            if not hashes:
                raise HashSetError(f"{where}: no hash value")
            yield KnownEntry(ref=f"row {number}", hashes=hashes)
    except sqlite3.DatabaseError as exc:
        raise HashSetError(f"{path}: cannot read the NSRL database ({exc})") from exc
    finally:
        conn.close()


# ----------------------------------------------------------------------------- profiles


def load_profile(spec: str | Path | None, fmt: str, labels: dict[str, str]) -> dict[str, Any]:
    """The category profile: a built-in name, a JSON/CSV file, or the set's own labels."""
    if spec is None:
        if labels:
            return {"name": "from the set", "labels": dict(labels)}
        name = DEFAULT_PROFILE.get(fmt, "none")
        return {"name": name, "labels": PROFILES[name]}
    if str(spec) in PROFILES:
        return {"name": str(spec), "labels": PROFILES[str(spec)]}
    path = Path(spec)
    if not path.is_file():
        raise HashSetError(f"category map {spec}: neither a file nor one of"
                           f" {', '.join(sorted(PROFILES))}")
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("{"):
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HashSetError(f"category map {path}: line {exc.lineno}: {exc.msg}") from exc
        if not isinstance(mapping, dict):
            raise HashSetError(f"category map {path}: expected an object of number -> label")
        return {"name": str(path), "labels": {str(k): str(v) for k, v in mapping.items()}}
    mapping = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or row[0].startswith("#"):
            continue
        if len(row) != 2:
            raise HashSetError(f"category map {path}: line {number}: expected 'value,label'")
        mapping[row[0].strip()] = row[1].strip()
    return {"name": str(path), "labels": mapping}


# ----------------------------------------------------------------------------- import


def import_hashset(case: Case, path: Path, *, name: str | None = None,
                   source: str | None = None, version: str | None = None,
                   category_map: str | Path | None = None, known_good: bool | None = None,
                   strict: bool = True) -> dict[str, Any]:
    """Import ``path`` into the case in one transaction; return its summary.

    A set already in the case (same SHA-256) is not imported twice. A malformed set
    raises :class:`HashSetError`; the transaction is rolled back and the refusal is
    recorded in the ledger.
    """
    db = case.db
    digest = file_sha256(path)
    row = db.conn.execute("SELECT * FROM hashsets WHERE sha256 = ?", (digest,)).fetchone()
    if row is not None:
        return {"id": row["id"], "name": row["name"], "sha256": digest, "already_loaded": True,
                "counts": json.loads(row["counts"])}
    info = ParsedSet(format="unknown")
    counts: Counter[str] = Counter()
    # Index inserts of random digests thrash SQLite's default 2 MB page cache; the
    # connection lives on through the triage, so the cache is given back afterwards.
    previous_cache = db.conn.execute("PRAGMA cache_size").fetchone()[0]
    db.conn.execute(f"PRAGMA cache_size = {-_CACHE_KIB}")
    db.begin()
    try:
        info, entries = iter_set(path, strict=strict)
        total = 0
        cur = db.conn.execute(
            "INSERT INTO hashsets (name, sha256, source, format, counts, loaded_at, version,"
            " kind) VALUES (?,?,?,?,?,?,?,?)",
            (name or path.name, digest, source or str(path), info.format, "{}", utc_now(),
             version, "alert"),
        )
        set_id = int(cur.lastrowid or 0)
        next_id = db.count("SELECT MAX(id) FROM known_entries") + 1
        entry_rows: list[tuple[Any, ...]] = []
        hash_rows: list[tuple[Any, ...]] = []
        for entry in entries:
            entry_rows.append((next_id, set_id, entry.ref, entry.media_id, entry.category,
                               entry.series, None if entry.precategorized is None
                               else int(entry.precategorized),
                               None if entry.details is None
                               else json.dumps(entry.details, sort_keys=True)))
            for algo, value in entry.hashes:
                hash_rows.append((set_id, algo, value, entry.category, next_id))
                counts[algo] += 1
            next_id += 1
            total += 1
            if len(hash_rows) >= _BATCH:
                _flush(db.conn, entry_rows, hash_rows)
        _flush(db.conn, entry_rows, hash_rows)
        if not counts:
            raise HashSetError(f"{path}: no MD5, SHA-1, SHA-256, pHash, dHash or PDQ values"
                               " found")
        kind = "known-good" if (known_good or (known_good is None
                                               and info.kind == "known-good")) else "alert"
        profile = load_profile(category_map, info.format, info.labels)
        summary_counts = {algo: counts.get(algo, 0) for algo in ALGORITHMS}
        summary_counts["entries"] = total
        summary_counts["rejected_lines"] = len(info.rejected)
        summary_counts.update({f"skipped: {k}": v for k, v in info.skipped.items()})
        db.conn.execute(
            "UPDATE hashsets SET counts = ?, version = ?, kind = ?, category_profile = ?"
            " WHERE id = ?",
            (json.dumps(summary_counts), version or info.version, kind,
             json.dumps(profile, sort_keys=True), set_id))
        db.commit()
    except BaseException as exc:
        db.rollback()
        if isinstance(exc, (HashSetError, UnicodeDecodeError)):
            case.record("hashset.refused", None, {
                "source": source or str(path), "sha256": digest, "format": info.format,
                "reason": str(exc)[:1000], "imported": 0,
            })
            if isinstance(exc, UnicodeDecodeError):
                raise HashSetError(f"{path}: not UTF-8 text ({exc})") from exc
        raise
    finally:
        db.conn.execute(f"PRAGMA cache_size = {int(previous_cache)}")
    summary = {
        "id": set_id, "name": name or path.name, "source": source or str(path),
        "sha256": digest, "format": info.format, "version": version or info.version,
        "kind": kind, "category_profile": profile["name"], "counts": summary_counts,
        "rejected_lines": info.rejected[:20],
    }
    case.record("hashset.loaded", None, summary)
    return summary


def _flush(conn: sqlite3.Connection, entry_rows: list[tuple[Any, ...]],
           hash_rows: list[tuple[Any, ...]]) -> None:
    conn.executemany(
        "INSERT INTO known_entries (id, hashset_id, ref, media_id, category, series,"
        " precategorized, details) VALUES (?,?,?,?,?,?,?,?)", entry_rows)
    conn.executemany(
        "INSERT INTO known_hashes (hashset_id, algorithm, value, category, entry_id)"
        " VALUES (?,?,?,?,?)", hash_rows)
    entry_rows.clear()
    hash_rows.clear()


def load_hashset(case: Case, path: Path) -> None:
    """Import a set given to ``triage --hashset`` (any supported format); no-op if present."""
    import_hashset(case, path)


def list_hashsets(case: Case) -> list[dict[str, Any]]:
    """The sets in the case, oldest first, as ``exhibit hashset list`` shows them."""
    out = []
    for row in case.db.conn.execute("SELECT * FROM hashsets ORDER BY id"):
        profile = json.loads(row["category_profile"] or "null") or {}
        out.append({
            "id": row["id"], "name": row["name"], "format": row["format"],
            "version": row["version"], "kind": row["kind"], "sha256": row["sha256"],
            "source": row["source"], "loaded_at": row["loaded_at"],
            "counts": json.loads(row["counts"]), "category_profile": profile.get("name"),
        })
    return out
