"""The native libraries ingest reads evidence through: their versions (for the session
record), and Pillow's HEIF reader, plugged in where a picture is first opened."""

from __future__ import annotations

import contextlib
import functools
import importlib


@functools.cache
def register_heif_opener() -> None:
    """Let Pillow open HEIC/HEIF/AVIF (pillow-heif's plug-in), once per process.

    Done on first need rather than at import: pillow-heif's import (~0.03 s) is not paid
    by a process that never opens a picture, such as the driver (issue 18)."""
    import pillow_heif

    pillow_heif.register_heif_opener()


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
