"""Versions of the native libraries ingest reads evidence through (for the session record)."""

from __future__ import annotations


def native_versions() -> dict[str, str]:
    """libtsk and libewf as loaded in this process (a worker's may differ from the driver's)."""
    found: dict[str, str] = {}
    try:
        import pytsk3

        found["libtsk"] = str(pytsk3.TSK_VERSION_STR)
    except ImportError:  # pragma: no cover - pytsk3 is a hard dependency
        pass
    try:
        import pyewf

        found["libewf"] = str(pyewf.get_version())
    except ImportError:  # pragma: no cover
        pass
    return found
