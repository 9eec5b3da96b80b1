"""Project VIC VICS JSON 1.x/2.0, streamed: ``value[]`` of Media, or Cases with ``Media[]``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.matching.known import HashSetError, KnownEntry, ParsedSet, normalise, vpdq_hashes

_HASH_FIELDS = {
    "md5": "md5", "sha1": "sha1", "sha-1": "sha1", "sha256": "sha256", "sha-256": "sha256",
    "pdq": "pdq", "phash": "phash", "dhash": "dhash",
}
_IGNORED_HASHES = ("photodna",)  # known, but not something exhibit computes
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


def read(path: Path, info: ParsedSet) -> Iterator[KnownEntry]:
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
    video: list[tuple[str, str]] = []  # a "VPDQ" field: the JSON list, one row per frame
    for key, value in media.items():
        if key.lower() == "vpdq" and value not in (None, "", []):
            video = vpdq_hashes(value, f"{where}: {key}")
        algo = _HASH_FIELDS.get(key.lower())
        if algo is not None and value not in (None, ""):
            hashes[algo] = normalise(algo, value, f"{where}: {key}")
    for alt in media.get("AlternativeHashes") or []:
        if not isinstance(alt, dict):
            raise HashSetError(f"{where}: AlternativeHashes entries must be objects")
        name = str(alt.get("HashName", "")).lower()
        algo = _HASH_FIELDS.get(name)
        if algo is not None and alt.get("HashValue") not in (None, ""):
            hashes.setdefault(algo, normalise(algo, alt["HashValue"], f"{where}: {name}"))
    if not hashes and not video:  # e.g. PhotoDNA only: counted and reported, never silently dropped
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
        ref=ref, hashes=sorted(hashes.items()) + video,
        category=None if category is None else str(category),
        media_id=None if media_id is None else str(media_id),
        series=None if media.get("Series") in (None, "") else str(media["Series"]),
        precategorized=None if precat is None else bool(precat),
        details=details or None,
    )
