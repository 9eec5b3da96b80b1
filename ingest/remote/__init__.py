"""Evidence by URL: images in object storage (S3, MinIO, Ceph, GCS, Azure, HTTP) read-only.

An examiner names an image ``s3://bucket/case-17/disk.E01`` instead of a path. Every
reader in ``ingest.formats`` then gets a :class:`~ingest.remote.objects.RemotePath`
where it would get a ``pathlib.Path``: it answers the few questions detection asks
(name, size, siblings for split sets and EWF segments) and opens a read-only file
object whose every byte comes from a ranged GET. Nothing in this package can write:
the only calls made to a store are ``info`` (HEAD), ``ls`` (LIST) and ``cat_file``
(GET with a Range) — no put, copy, delete or multipart call exists here.

Configuration is the store's own (fsspec/s3fs, i.e. botocore for S3): the standard AWS
variables and files (``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ``~/.aws/credentials``).
So credentials never pass through exhibit: a Dask worker reads the same environment
or files, and only URLs and ETags travel in task graphs and the ledger.
"""

from __future__ import annotations

import re

_URL = re.compile(r"^(?P<protocol>[a-z][a-z0-9+.-]*)://", re.IGNORECASE)


def url_protocol(text: str) -> str | None:
    """The protocol of ``text`` when it is a URL other than ``file://``, else None."""
    match = _URL.match(text)
    if match is None:
        return None
    protocol = match["protocol"].lower()
    return None if protocol in ("file", "local") else protocol


def is_url(text: object) -> bool:
    """True for evidence named by a (non-local) URL rather than a path."""
    return isinstance(text, str) and url_protocol(text) is not None


def local_path_of(text: str) -> str:
    """``file:///x/y`` → ``/x/y``; any other text unchanged (``file://`` keeps working)."""
    if text.lower().startswith("file://"):
        return text[len("file://"):]
    return text
