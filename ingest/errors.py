"""The root exception of the ingest layer."""

from __future__ import annotations


class IngestError(Exception):
    """Evidence that cannot be opened, read or walked as asked."""


class UnsupportedImageError(IngestError, ValueError):
    """The input is not an image format exhibit reads."""
