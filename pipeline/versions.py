"""Which tool and which library versions produced a result.

Pillow and libjpeg change perceptual hashes between releases and libmagic changes MIME
answers, so every ledger entry and every batch of results records the versions in force
where the work was done (on a remote cluster, the worker's, not the driver's).
"""

from __future__ import annotations

import os
import platform
import re
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
    return distribution_version(TOOL_NAME) or "0+unknown"


@cache
def distribution_version(name: str) -> str | None:
    """``importlib.metadata.version(name)``, or None where it is not installed.

    Where the first metadata directory on ``sys.path`` for ``name`` is pip's
    ``NAME-VERSION.dist-info``, the version is read from its name: the same answer
    without parsing its METADATA with the e-mail parser (~5 ms a package, ~0.09 s of
    every command's start for the packages below; issue 18). Anything else (an
    ``.egg-info``, a name not found) is asked of ``importlib.metadata``. Once per name
    and process: the case's tool record and ``tool_version`` ask for ``exhibit`` twice."""
    version = _first_metadata().get(_normalised(name))
    if version:
        return version
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503, as importlib.metadata compares


@cache
def _first_metadata() -> dict[str, str | None]:
    """Per normalised name, the version in its first ``.dist-info`` directory's name on
    ``sys.path``, or None when an ``.egg-info`` comes first (searched in the same order
    as ``importlib.metadata``)."""
    found: dict[str, str | None] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for item in names:
            stem, dot, suffix = item.rpartition(".")
            if not dot or suffix not in ("dist-info", "egg-info"):
                continue
            project, _, version = stem.partition("-")  # the name as importlib reads it
            key = _normalised(project)
            if key not in found:  # a version with a "-" is a name that kept its dashes
                found[key] = version if suffix == "dist-info" and version \
                    and "-" not in version else None
    return found


@cache
def library_versions() -> dict[str, str]:
    """Versions of Python, the packages above and the native libraries under them."""
    versions: dict[str, str] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in _DISTRIBUTIONS:
        versions[dist] = distribution_version(dist) or "not installed"
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
