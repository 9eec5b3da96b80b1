"""The evidence location: one serialisable chain from image to stream to each derivation."""

from __future__ import annotations

import datetime as dt
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.location import (
    Derivation,
    EvidenceLocation,
    FileEntry,
    decode_name,
    encode_name,
    iso_utc,
)

FILE = EvidenceLocation("ab" * 32, 1, 1048576, "ntfs", 64, "/docs/a.zip", "Zone.Identifier")
ZIP = Derivation("zip", "1", inner="pics/inner.tar.gz")
GZIP = Derivation("gzip", "1")
CARVE = Derivation("embedded-jpeg", "1", offset=4096, length=51234)


def test_a_file_location_serialises_as_before_derivations() -> None:
    assert list(FILE.to_dict()) == ["evidence_id", "volume_index", "volume_offset", "fs_type",
                                    "inode", "path", "stream"]
    assert EvidenceLocation.from_dict(FILE.to_dict()) == FILE
    assert "!" not in FILE.key()


def test_derivations_chain_outermost_first_and_round_trip_through_json() -> None:
    member = FILE.derive(ZIP).derive(GZIP).derive(CARVE)
    assert member.derivation == (ZIP, GZIP, CARVE)
    assert FILE.derivation == ()  # frozen: deriving never changes the parent
    data = json.loads(json.dumps(member.to_dict()))
    assert data["derivation"][2] == {"method": "embedded-jpeg", "version": "1", "inner": None,
                                     "offset": 4096, "length": 51234}
    assert EvidenceLocation.from_dict(data) == member
    assert member.key() == (FILE.key() + "!zip:pics/inner.tar.gz!gzip"
                            "!embedded-jpeg@4096+51234")


def test_different_derivations_have_different_keys() -> None:
    keys = {FILE.key(), FILE.derive(ZIP).key(), FILE.derive(GZIP).key(),
            FILE.derive(ZIP).derive(GZIP).key(), FILE.derive(GZIP).derive(ZIP).key(),
            FILE.derive(Derivation("embedded-jpeg", "1", offset=4096, length=1)).key()}
    assert len(keys) == 6


def test_a_derived_entry_round_trips_as_a_file_entry() -> None:
    entry = FileEntry(location=FILE.derive(CARVE), name="carved.jpg", size=51234, kind="file",
                      allocated=False)
    assert FileEntry.from_dict(json.loads(json.dumps(entry.to_dict()))) == entry


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=40))
def test_decode_name_is_reversible_and_escapes_only_what_it_must(raw: bytes) -> None:
    text = decode_name(raw)
    assert encode_name(text) == raw
    try:
        plain = raw.decode("utf-8")
    except UnicodeDecodeError:
        assert "\\x" in text
    else:
        assert text == plain.replace("\\", "\\\\")


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.integers(-62135596800, 253402300799),  # years 1 to 9999
                 st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**32)),
       st.integers(0, 999_999_999))
def test_iso_utc_is_strftime_of_the_utc_time(seconds: int, nanos: int) -> None:
    """The hand formatting gives exactly what strftime gives, out of range is None."""
    try:
        stamp = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        assert iso_utc(seconds, nanos) is None
        return
    expected = stamp.strftime("%Y-%m-%dT%H:%M:%S") + (f".{nanos:09d}" if nanos else "") + "Z"
    assert iso_utc(seconds, nanos) == (None if not seconds and not nanos else expected)
