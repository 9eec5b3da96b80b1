"""Open seized media read-only: raw/dd, split raw, EnCase (E01) and virtual-disk images.

Every container becomes one ``EvidenceImage``: a ``pytsk3.Img_Info`` created with
``TSK_IMG_TYPE_EXTERNAL`` so The Sleuth Kit reads through *our* reader. That is the only
way the PyPI pytsk3 (which has no libewf) can see inside an E01, and it keeps every byte
read in code we control: segments are opened ``O_RDONLY`` and read with ``pread``, never
anything that could write to the evidence.

pytsk3 objects cannot be pickled, so Dask tasks carry an ``ImageSpec`` (format and
paths) and re-open the image in the worker.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyewf
import pytsk3

from ingest.errors import IngestError, UnsupportedImageError
from ingest.formats import MediaReader, ewf, raw, virtual
from ingest.remote import is_url, local_path_of
from ingest.remote.objects import RemoteError, RemotePath, ewf_segments

EvidencePath = Path | RemotePath  # a local file, or an object named by URL

ImageFormat = str  # "raw", "split-raw", "ewf" or a virtual disk (virtual.FORMATS)
FORMATS: tuple[str, ...] = ("raw", "split-raw", "ewf", *virtual.FORMATS)

_NUMERIC_SEGMENT = re.compile(r"^(?P<stem>.+)\.(?P<num>\d{3,})$")
_ALPHA_SEGMENT = re.compile(r"^(?P<stem>.+)\.(?P<alpha>[a-z]{2,})$")


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """A picklable description of an image: enough for a worker to re-open it."""

    format: str
    paths: tuple[str, ...]
    pins: tuple[str | None, ...] = ()  # per path: the ETag of an object in a store

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"unknown image format {self.format!r}; expected one of {FORMATS}")
        if not self.paths:
            raise ValueError("an ImageSpec needs at least one path")

    def open(self) -> EvidenceImage:
        """Re-open the image this spec describes (in a worker process, typically)."""
        pins = self.pins or (None,) * len(self.paths)
        return _open_resolved(self.format, [as_path(p, pin) for p, pin in
                                            zip(self.paths, pins, strict=True)])


def as_path(text: str | Path | RemotePath, pin: str | None = None) -> EvidencePath:
    """A local path (``file://`` URLs included) or, for any other URL, a ``RemotePath``."""
    if isinstance(text, Path | RemotePath):
        return text
    return RemotePath(text, pin) if is_url(text) else Path(local_path_of(text))


# --------------------------------------------------------------------------- image


class EvidenceImage(pytsk3.Img_Info):
    """An image The Sleuth Kit reads through our read-only reader."""

    def __init__(self, spec: ImageSpec, reader: MediaReader) -> None:
        self.spec = spec
        self.format = spec.format
        self.paths = tuple(as_path(p) for p in spec.paths)
        self._reader = reader
        self.size = reader.size
        self.stored_hashes: dict[str, str] = reader.stored_hashes()
        self.metadata: dict[str, str] = reader.metadata()
        self._closed = False
        # The store's error behind a failed read: The Sleuth Kit turns any exception in
        # ``read`` into its own OSError, and a caller must tell "the store failed" (stop,
        # resume later) from "the evidence is damaged" (record it, go on).
        self.remote_failure: RemoteError | None = None
        super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL)

    # The two callbacks The Sleuth Kit calls.
    def read(self, offset: int, size: int) -> bytes:
        if self.remote_failure is not None:  # fail fast: TSK would retry every fs type
            raise self.remote_failure
        try:
            return self._reader.read_at(offset, size)
        except RemoteError as exc:
            self.remote_failure = exc
            raise

    def get_size(self) -> int:
        return self.size

    @property
    def media_reader(self) -> str | None:
        """The library that read the media, where a container has a choice (E01)."""
        return getattr(self._reader, "media_reader", None)

    def read_at(self, offset: int, size: int) -> bytes:
        """Read media bytes; short only at the end of the image."""
        return self._reader.read_at(offset, size)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._reader.close()

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle the description, not the handle: the receiver re-opens the image.
        return (_open_spec, (self.spec,))

    def __enter__(self) -> EvidenceImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EvidenceImage(format={self.format!r}, paths={list(self.spec.paths)!r})"


def _open_spec(spec: ImageSpec) -> EvidenceImage:
    return spec.open()


# --------------------------------------------------------------------------- detection


def _check_file(path: EvidencePath) -> None:
    if isinstance(path, RemotePath):
        if path.info()["size"] == 0:
            raise UnsupportedImageError(f"image object is empty: {path}")
        return
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UnsupportedImageError(f"image file does not exist: {path}") from None
    except OSError as exc:
        raise UnsupportedImageError(f"cannot stat image file {path}: {exc}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise UnsupportedImageError(f"image path is a directory, not a file: {path}")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise UnsupportedImageError(f"image path is not a regular file or block device: {path}")
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        raise UnsupportedImageError(f"image file is empty: {path}")


def _is_ewf(path: EvidencePath) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise UnsupportedImageError(f"cannot read image file {path}: {exc}") from exc
    return head.startswith(ewf.SIGNATURES)


def _alpha_value(text: str) -> int:
    value = 0
    for ch in text:
        value = value * 26 + (ord(ch) - ord("a"))
    return value


def _segment_key(path: Path) -> tuple[str, str, int] | None:
    """(stem, kind, number) when ``path`` looks like a split-raw segment."""
    match = _NUMERIC_SEGMENT.match(path.name)
    if match:
        return match["stem"], f"num{len(match['num'])}", int(match["num"])
    match = _ALPHA_SEGMENT.match(path.name)
    if match and len(match["alpha"]) == 2:
        return match["stem"], "alpha2", _alpha_value(match["alpha"])
    return None


def _split_siblings(first: Path) -> list[Path]:
    """All segments of the set ``first`` starts, in order; fails on a gap."""
    key = _segment_key(first)
    if key is None:
        return [first]
    stem, kind, number = key
    if kind == "alpha2" and number != 0:
        return [first]  # ".dd", ".img"-like names: only ".aa" starts an alphabetic set
    if number > 1:
        raise UnsupportedImageError(
            f"{first} looks like segment {number} of a split image; give the first segment"
        )
    found: dict[int, Path] = {}
    for sibling in first.parent.iterdir():
        sib_key = _segment_key(sibling)
        if sib_key is not None and sib_key[:2] == (stem, kind):
            found[sib_key[2]] = sibling
    if number == 1 and 0 in found:
        raise UnsupportedImageError(f"{first}: the split set starts at {found[0]}, give that")
    return _check_no_gap(sorted(found.items()), first)


def _check_no_gap(numbered: list[tuple[int, Path]], first: Path) -> list[Path]:
    expected = numbered[0][0]
    for num, path in numbered:
        if num != expected:
            raise UnsupportedImageError(
                f"split image {first} has a gap: segment number {expected} is missing "
                f"(next found is {path.name})"
            )
        expected += 1
    return [path for _, path in numbered]


def _resolve(paths: Sequence[EvidencePath | str]) -> tuple[str, list[EvidencePath]]:
    if isinstance(paths, str | Path | RemotePath):
        paths = [paths]
    paths = [as_path(p) for p in paths]
    if not paths:
        raise ValueError("no image path given")
    if len({isinstance(p, RemotePath) for p in paths}) > 1:
        raise UnsupportedImageError("an image's parts are all local files or all objects in"
                                    " a store, not a mix")
    for path in paths:
        _check_file(path)
    first = paths[0]
    if _is_ewf(first):
        try:
            segments = (ewf_segments(first) if isinstance(first, RemotePath)
                        else [Path(p) for p in pyewf.glob(str(first))])
        except (OSError, ValueError) as exc:
            raise UnsupportedImageError(f"cannot find EWF segments of {first}: {exc}") from exc
        if len(paths) > 1 and sorted(map(str, paths)) != sorted(map(str, segments)):
            raise UnsupportedImageError(
                f"EWF segments given ({[p.name for p in paths]}) differ from the set found "
                f"next to {first} ({[p.name for p in segments]})"
            )
        return "ewf", segments
    vdisk = virtual.sniff(first)
    if vdisk is not None:  # further paths: extents, parents, backing files stored elsewhere
        return vdisk, virtual.resolve(vdisk, first, paths[1:])
    if len(paths) == 1:
        segments = _split_siblings(first)
        return ("split-raw" if len(segments) > 1 else "raw"), segments
    keys = [_segment_key(p) for p in paths]
    if any(k is None for k in keys) or len({k[:2] for k in keys if k}) != 1:
        raise UnsupportedImageError(
            f"several image paths given but they are not one split set: {[str(p) for p in paths]}"
        )
    numbered = sorted((k[2], p) for k, p in zip(keys, paths, strict=True) if k)
    if numbered[0][0] > 1:
        raise UnsupportedImageError(f"split set {first} does not start at segment 0 or 1")
    return "split-raw", _check_no_gap(numbered, numbered[0][1])


def detect_format(paths: Sequence[EvidencePath | str] | EvidencePath | str) -> str:
    """Name the container format: one of ``FORMATS``."""
    return _resolve(paths)[0]  # type: ignore[arg-type]


def open_image(paths: Sequence[EvidencePath | str] | EvidencePath | str) -> EvidenceImage:
    """Open an image given its file, its first segment, or all its segments."""
    fmt, segments = _resolve(paths)  # type: ignore[arg-type]
    return _open_resolved(fmt, segments)


def image_spec(paths: Sequence[EvidencePath | str] | EvidencePath | str) -> ImageSpec:
    """The picklable description of the image at ``paths`` (no handles kept open)."""
    fmt, segments = _resolve(paths)  # type: ignore[arg-type]
    for path in segments:
        _check_file(path)
    return _spec(fmt, segments)


def _spec(fmt: str, segments: list[EvidencePath]) -> ImageSpec:
    """Objects in a store are pinned by ETag: a worker refuses one replaced meanwhile."""
    pins = tuple(p.info()["etag"] if isinstance(p, RemotePath) else None for p in segments)
    return ImageSpec(fmt, tuple(str(p) for p in segments),
                     pins if any(pin is not None for pin in pins) else ())


def _open_resolved(fmt: str, segments: list[EvidencePath]) -> EvidenceImage:
    for path in segments:
        _check_file(path)
    spec = _spec(fmt, segments)
    reader: MediaReader
    if fmt in virtual.FORMATS:
        reader = virtual.VirtualDiskReader(fmt, segments)
    else:
        reader = ewf.EwfReader(segments) if fmt == "ewf" else raw.RawReader(segments)
    if reader.size <= 0:
        reader.close()
        raise UnsupportedImageError(f"image {segments[0]} holds no media data")
    try:
        return EvidenceImage(spec, reader)
    except Exception as exc:
        reader.close()
        raise IngestError(f"cannot open image {segments[0]} with The Sleuth Kit: {exc}") from exc
