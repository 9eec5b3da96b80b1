"""The carve task on a worker: scan one range, analyse each picture as a derived entry.

The range's pseudo-entry gets a record like a file's: its findings are the scan's
summary (bytes, candidates, finds by kind, partial finds, other headers); each carved
picture or video is copied out, analysed by every analyzer and expanded like an archive
member (``pipeline.run.expand``), so it travels back as a child record and the driver
stores it under the batch's Merkle root. No side effects, as every Dask task here.
"""

from __future__ import annotations

import io
import traceback
from collections.abc import Callable
from typing import Any

from analyzers.base import Analyzer
from ingest.carve import VERSION, CarveHit, Carver, RunView, ViewStream, kinds_for
from ingest.content import reader_for
from ingest.derive import Child, LimitExceeded
from ingest.location import Derivation, FileEntry
from ingest.remote.objects import RemoteError
from pipeline.run.expand import Context, Node, Tap, expand_member

METHOD = "carved"


class CarveMethod:
    """Names the carve in the error records the expansion writes (a reader's two fields)."""

    method = METHOD
    version = VERSION

    def sniff(self, head: bytes) -> bool:
        return False

    def children(self, stream: Any, size: int, name: str) -> Any:
        return iter(())


def carve_range(task: Any, analyzers: list[Analyzer], versions: dict[str, str],
                watch: Callable[[], Any], detach: Callable[[dict[str, Any]], dict[str, bytes]]
                ) -> dict[str, Any]:
    """The range's record, with every carved entry's record as its children."""
    file_id, key, entry_dict = task.items[0]
    entry = FileEntry.from_dict(entry_dict)
    spec = task.carve
    errors: list[dict[str, Any]] = []
    children: list[dict[str, Any]] = []
    findings: dict[str, Any] = {}
    image = None
    try:
        image = reader_for(task.spec).image
        view = RunView(image, spec["runs"])
        carver = Carver(view, kinds_for(spec["mode"]), others=spec["mode"] == "all")
        ctx = Context(task.limits, analyzers, versions, watch, task.scratch)
        node = Node(entry=entry, key=key, tap=Tap(iter(())), size=view.size,
                    open=lambda: io.BufferedReader(ViewStream(view, 0, view.size)),
                    errors=errors)
        hits = carver.scan(0, int(spec["stop"]))
        copied = 0
        try:
            while True:
                with watch():
                    hit = next(hits, None)
                if hit is None:
                    break
                child = carved_child(view, hit)
                copied += expand_member(ctx, node, CarveMethod(), child,
                                        key + child.step.key(), copied, children)
        except LimitExceeded as exc:
            errors.append({"stage": "carve", "analyzer": METHOD, "version": VERSION,
                           "error": "LimitExceeded", "limit": exc.limit,
                           "message": str(exc), "traceback": None})
        findings["carve"] = carver.summary.to_dict()
        if carver.summary.limit:
            errors.append({"stage": "carve", "analyzer": METHOD, "version": VERSION,
                           "error": "LimitExceeded", "limit": "carve-walk-bytes",
                           "message": carver.summary.limit, "traceback": None})
    except RemoteError:  # not the evidence but its store failed: the run stops, resumable
        raise
    except Exception as exc:  # the range could not be read: an error record, the run goes on
        errors.append({"stage": "read", "analyzer": METHOD, "version": VERSION,
                       "error": type(exc).__name__, "message": str(exc) or type(exc).__name__,
                       "traceback": "".join(traceback.format_exception(exc))})
    if image is not None and image.remote_failure is not None:  # inside a carved find: as above
        failure, image.remote_failure = image.remote_failure, None
        raise failure
    for child_record in children:
        blobs = detach(child_record["record"]["findings"])
        if blobs:
            child_record["blobs"] = blobs
    return {"file_id": file_id,
            "record": {"entry": key, "location": entry.location.to_dict(),
                       "analyzers": versions, "findings": findings, "errors": errors},
            **({"children": children} if children else {})}


def carved_child(view: RunView, hit: CarveHit) -> Child:
    """A hit as a derived entry: image offset, length and runs; named like PhotoRec's."""
    first = hit.runs[0][0]
    step = Derivation(METHOD, VERSION, offset=first, length=hit.length, runs=hit.runs)
    notes = (f"carved {hit.family}",) + (("fragmented: read across allocated blocks",)
                                         if len(hit.runs) > 1 else ())

    def open_hit() -> Any:
        return io.BufferedReader(ViewStream(view, hit.start, hit.length))

    return Child(step, f"carved-{first}.{hit.extension}", open_hit, size=hit.length,
                 notes=notes)
