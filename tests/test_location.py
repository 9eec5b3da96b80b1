"""The evidence location: one serialisable chain from image to stream to each derivation."""

from __future__ import annotations

import json

from ingest.location import Derivation, EvidenceLocation, FileEntry

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
