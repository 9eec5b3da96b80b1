"""The explicit list of analyzers a triage runs, keyed by name.

Registration is explicit and a duplicate name is an error, so the analyzer set recorded in
the ledger is exactly the one that ran. The built-in analyzers are listed here; they do
not import this module back (no import circle). Plugins call :func:`register`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping

from analyzers.base import Analyzer

PLUGIN_ENV = "EXHIBIT_ANALYZER_MODULES"

_REGISTRY: dict[str, type[Analyzer]] = {}


def register(cls: type[Analyzer]) -> type[Analyzer]:
    """Class decorator: add an analyzer; refuse a second one with the same name."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"analyzer name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    """Register exhibit's own analyzers (imported on first use: they load native libraries)."""
    from analyzers.exif import ExifAnalyzer
    from analyzers.filetype import FileTypeAnalyzer
    from analyzers.hashes import HashesAnalyzer
    from analyzers.perceptual import PerceptualHashAnalyzer
    from analyzers.thumbnail import ThumbnailAnalyzer
    from analyzers.video import VideoAnalyzer

    for cls in (HashesAnalyzer, FileTypeAnalyzer, ExifAnalyzer, PerceptualHashAnalyzer,
                ThumbnailAnalyzer, VideoAnalyzer):
        register(cls)


def _load_plugins() -> None:
    """Import extra analyzer modules named in $EXHIBIT_ANALYZER_MODULES (comma-separated).

    Local Dask workers inherit the driver's environment, so a plugin registered this way
    runs in every worker; on a remote cluster set the variable on the workers too.
    """
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGIN_ENV, "").split(","))):
        importlib.import_module(module)


def registered() -> dict[str, type[Analyzer]]:
    """All known analyzers by name."""
    _load_builtin()
    _load_plugins()
    return dict(_REGISTRY)


def create(names: list[str] | None = None,
           settings: Mapping[str, Mapping[str, str]] | None = None) -> list[Analyzer]:
    """Instances of the named analyzers (all when ``names`` is None), in run order, each
    configured with its ``settings`` (by analyzer name).

    Run order is by input kind: head analyzers first (their findings decide which content
    analyzers apply), then stream, then content; by name within a kind.
    """
    available = registered()
    chosen = sorted(available) if names is None else list(names)
    unknown = [n for n in chosen if n not in available]
    if unknown:
        raise ValueError(f"unknown analyzer(s): {', '.join(unknown)}; known: {sorted(available)}")
    settings = settings or {}
    stray = sorted(set(settings) - set(chosen))
    if stray:
        raise ValueError(f"settings for analyzer(s) not run: {', '.join(stray)}")
    order = {"head": 0, "stream": 1, "content": 2, "random": 3}
    classes = sorted((available[n] for n in chosen), key=lambda c: (order[c.input], c.name))
    return [cls.configured(settings.get(cls.name, {})) for cls in classes]
