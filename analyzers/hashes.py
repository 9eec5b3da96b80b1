"""MD5, SHA-1 and SHA-256 of a file's content, computed in one streamed pass.

All three digests are kept because hash sets in the field use all three (Project VIC
VICS carries MD5 and SHA-1, NSRL RDSv3 SHA-1 and MD5, court reports SHA-256). ``size`` is
the number of bytes actually hashed, which is what a digest vouches for; it can differ
from the directory entry's size for deleted or damaged files.
"""

from __future__ import annotations

import hashlib
import sys

from analyzers.base import Analyzer, Findings, StreamSession
from ingest.location import FileEntry


class _HashSession(StreamSession):
    """Running digests for one file."""

    def __init__(self) -> None:
        # usedforsecurity=False: FIPS-mode OpenSSL would refuse MD5 otherwise; these are
        # identifiers of content, not a security control.
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha1 = hashlib.sha1(usedforsecurity=False)
        self._sha256 = hashlib.sha256()
        self._size = 0

    def update(self, chunk: bytes) -> None:
        self._md5.update(chunk)
        self._sha1.update(chunk)
        self._sha256.update(chunk)
        self._size += len(chunk)

    def finish(self) -> Findings:
        return {
            "md5": self._md5.hexdigest(),
            "sha1": self._sha1.hexdigest(),
            "sha256": self._sha256.hexdigest(),
            "size": self._size,
        }


class HashesAnalyzer(Analyzer):
    """Exact content identity: the key for known-file matching and for court reports."""

    name = "hashes"
    version = "1.0.0"
    input = "stream"

    def applies_to(self, entry: FileEntry, findings: dict[str, Findings]) -> bool:
        return entry.kind == "file"

    def start(self, entry: FileEntry) -> StreamSession:
        return _HashSession()

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        import ssl

        # hashlib's digests come from OpenSSL; the values never change, but the
        # record of what computed them belongs in the session record.
        return {"python": sys.version.split()[0], "openssl": ssl.OPENSSL_VERSION}
