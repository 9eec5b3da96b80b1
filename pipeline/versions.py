"""Which tool and which library versions produced a result.

Pillow and libjpeg change perceptual hashes between releases and libmagic changes MIME
answers, so every ledger entry and every batch of results records the versions in force
where the work was done (on a remote cluster, the worker's, not the driver's).
"""

from __future__ import annotations

import platform
import sys
from functools import cache
from importlib import metadata

from ingest.libraries import native_versions

TOOL_NAME = "exhibit"

_DISTRIBUTIONS = (
    "exhibit",
    "pytsk3",
    "libewf-python",
    "python-magic",
    "exifread",
    "pillow",
    "imagehash",
    "numpy",
    "dask",
    "distributed",
    "rfc8785",
    "pillow-heif",
    "pdqhash",
    "libarchive-c",
    "olefile",
    "pypdf",
)


def tool_version() -> str:
    try:
        return metadata.version(TOOL_NAME)
    except metadata.PackageNotFoundError:
        return "0+unknown"


@cache
def library_versions() -> dict[str, str]:
    """Versions of Python, the packages above and the native libraries under them."""
    versions: dict[str, str] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in _DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    versions.update(_native_versions())
    return versions


def _native_versions() -> dict[str, str]:
    found = native_versions()
    try:
        import magic

        found["libmagic"] = str(magic.version())
    except (ImportError, AttributeError, OSError):
        pass
    try:
        from PIL import features

        found["libjpeg"] = str(features.version("jpg"))
        found["libjpeg_turbo"] = str(features.version("libjpeg_turbo"))
        found["zlib"] = str(features.version("zlib"))
    except (ImportError, ValueError):
        pass
    return found


def tool_record() -> dict[str, object]:
    """The ``tool`` block of a ledger entry."""
    return {"name": TOOL_NAME, "version": tool_version(), "libraries": library_versions()}
