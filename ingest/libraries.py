"""Versions of the native libraries ingest reads evidence through (for the session record)."""

from __future__ import annotations

import contextlib
import importlib


def native_versions() -> dict[str, str]:
    """libtsk, libewf and the virtual-disk libraries as loaded in this process (a worker's
    may differ from the driver's)."""
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
    from ingest.formats import libewf_native

    system_libewf = libewf_native.version()  # reads E01 media where installed
    if system_libewf is not None:
        found["libewf_system"] = system_libewf
    try:
        import libarchive.ffi

        number = int(libarchive.ffi.version_number())  # e.g. 3006002 for 3.6.2
        found["libarchive"] = f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"
    except (ImportError, AttributeError, OSError):  # pragma: no cover
        pass
    for library, module in (("libvmdk", "pyvmdk"), ("libvhdi", "pyvhdi"), ("libqcow", "pyqcow"),
                            ("libmodi", "pymodi")):
        with contextlib.suppress(ImportError):  # dependencies, but a worker may lack them
            found[library] = str(importlib.import_module(module).get_version())
    return found
