"""Container formats: one module each, turning evidence files into media bytes, read-only.

A format module gives a reader class that opens the container's files without any
possibility of writing (``O_RDONLY``/``"rb"``) and implements :class:`MediaReader`;
``ingest.image`` detects the format by content, opens the reader and wraps it in an
``EvidenceImage`` that The Sleuth Kit reads through. A new image format is a module here,
a signature in ``ingest.image``'s detection, and a name in ``ingest.image.FORMATS``; a
new virtual-disk format (``vmdk``, ``vhdi``, ``qcow`` are the examples) only a module
giving ``sniff`` and ``open_layer`` and its name in ``virtual.FORMATS``.
"""

from __future__ import annotations

from typing import Protocol


class MediaReader(Protocol):
    """The media bytes of one image, whatever container holds them."""

    size: int

    def read_at(self, offset: int, size: int) -> bytes:
        """Media bytes at ``offset``; short only at the end of the media."""

    def stored_hashes(self) -> dict[str, str]:
        """Acquisition hashes the container records (algorithm -> hex), if any."""

    def metadata(self) -> dict[str, str]:
        """What the container says about the acquisition (case number, examiner …)."""

    def close(self) -> None: ...
