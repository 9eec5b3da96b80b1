"""Evidence in object storage: triage by s3:// URL against a real S3 server on 127.0.0.1.

The server is moto's (``s3_server.py``), with credentials checked, every request's method
logged, and ranged GETs broken on demand. The oracle is exhibit's own triage of the very
same files from the local disk: the same media must give the same export, entry for
entry, and the same evidence SHA-256 (itself checked against ``sha256sum``-style hashing
of the local file).
"""

from __future__ import annotations

import hashlib
import http.server
import os
import pickle
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import boto3
import fsspec
import pytest
from conftest import require_tool, sha256_file
from pipeline_helpers import (
    CONFIG_HOME,
    EXAMINER,
    REPO,
    exhibit,
    export_jsonl,
    ledger_entries,
)
from s3_server import BUCKET, S3Server

from ingest.acquisition import hash_image
from ingest.errors import IngestError
from ingest.image import image_spec, open_image
from pipeline.run.worker import BatchTask

WRITES = {"PUT", "POST", "DELETE", "PATCH"}


@pytest.fixture(scope="module")
def split_e01(sample_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The sample acquired by ``ewfacquire`` into 16 MiB segments (.E01 … .E04)."""
    require_tool("ewfacquire")
    outdir = tmp_path_factory.mktemp("e01split")
    subprocess.run(["ewfacquire", "-u", "-t", str(outdir / "sample"), "-f", "encase6", "-c",
                    "none", "-S", "16MiB", "-l", str(outdir / "acquire.log"), str(sample_raw)],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    segments = sorted(outdir.glob("sample.E*"))
    assert len(segments) > 1, "the test needs a split E01"
    return segments


@pytest.fixture(scope="module")
def store(sample_raw: Path, sample_split: list[Path], split_e01: list[Path]
          ) -> Iterator[S3Server]:
    server = S3Server().start()
    uploads = {"raw/sample.dd": sample_raw}
    uploads.update({f"split/{p.name}": p for p in sample_split})
    uploads.update({f"e01/{p.name}": p for p in split_e01})
    server.setup(uploads)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def local_cases(sample_raw: Path, sample_split: list[Path], split_e01: list[Path],
                tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("local")
    cases = {}
    for name, image in (("raw", sample_raw), ("split", sample_split[0]), ("e01", split_e01[0])):
        cases[name] = root / name
        exhibit("triage", image, "--case", cases[name], "--workers", "2", "--no-progress")
    return cases


URLS = {"raw": f"s3://{BUCKET}/raw/sample.dd", "split": f"s3://{BUCKET}/split/sample.001",
        "e01": f"s3://{BUCKET}/e01/sample.E01"}


def remote_triage(store: S3Server, url: str, case: Path, tmp: Path, *extra: str,
                  check: bool = True, secret: str | None = None
                  ) -> subprocess.CompletedProcess[str]:
    return exhibit("triage", url, "--case", case, "--workers", "2", "--no-progress", *extra,
                   check=check, env=store.env(tmp / "aws", secret))


def evidence_sha256(case: Path) -> str:
    return next(e for e in ledger_entries(case)
                if e["action"] == "acquisition.hashed")["details"]["sha256"]


def case_bytes(case: Path) -> bytes:
    """Every byte the case holds: ledger, database (with its WAL), exports."""
    return b"".join(p.read_bytes() for p in sorted(case.rglob("*")) if p.is_file())


@pytest.mark.parametrize("kind", ["raw", "split", "e01"])
def test_triage_by_url_equals_triage_of_the_local_files(
        store: S3Server, local_cases: dict[str, Path], sample_raw: Path, tmp_path: Path,
        kind: str) -> None:
    case = tmp_path / "case"
    mark = store.mark()
    remote_triage(store, URLS[kind], case, tmp_path)
    assert store.methods_since(mark) <= {"GET", "HEAD"}, "a write call reached the store"
    assert store.methods_since(mark) & WRITES == set()

    assert evidence_sha256(case) == evidence_sha256(local_cases[kind]) == sha256_file(sample_raw)
    remote, local = export_jsonl(case), export_jsonl(local_cases[kind])
    assert len(remote) > 10
    assert remote == local

    hashed = next(e for e in ledger_entries(case) if e["action"] == "acquisition.hashed")
    details = hashed["details"]
    assert details["paths"][0] == URLS[kind]
    assert all(p.startswith(f"s3://{BUCKET}/") for p in details["paths"])
    objects = details["objects"]
    assert [o["url"] for o in objects] == details["paths"]
    assert all(o["etag"] and o["size"] > 0 for o in objects)
    assert sum(o["size"] for o in objects) == sum(
        p.stat().st_size for p in _local_parts(local_cases[kind]))
    assert details["md5"] and details["sha1"]
    if kind == "e01":  # objects in a store are read by pyewf; the system's libewf reads files
        assert details["media_read_by"] == "pyewf"
        local_hashed = next(e for e in ledger_entries(local_cases[kind])
                            if e["action"] == "acquisition.hashed")["details"]
        assert local_hashed["media_read_by"] == "libewf-system"


def _local_parts(case: Path) -> list[Path]:
    hashed = next(e for e in ledger_entries(case) if e["action"] == "acquisition.hashed")
    return [Path(p) for p in hashed["details"]["paths"]]


def test_the_secret_never_reaches_the_ledger_the_database_or_a_task(
        store: S3Server, tmp_path: Path) -> None:
    case = tmp_path / "case"
    remote_triage(store, URLS["split"], case, tmp_path, "--analyzers", "filetype")
    held = case_bytes(case)
    assert URLS["split"].encode() in held  # the URL is recorded …
    assert store.secret.encode() not in held  # … the secret is not
    assert store.key_id.encode() not in held

    # What a Dask task carries: the spec (URLs and ETags), pickled as Dask pickles it.
    saved = dict(os.environ)
    os.environ.update(store.env(tmp_path / "aws2"))
    try:
        spec = image_spec(URLS["split"])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    task = pickle.dumps(BatchTask("b1", spec, 0, (), ("filetype",)))
    assert b"s3://" in task
    assert store.secret.encode() not in task and store.key_id.encode() not in task


def test_a_missing_object_is_a_clear_error(store: S3Server, tmp_path: Path) -> None:
    proc = remote_triage(store, f"s3://{BUCKET}/raw/nothere.dd", tmp_path / "case", tmp_path,
                         check=False)
    assert proc.returncode == 3
    assert "s3://evidence/raw/nothere.dd: no such object" in proc.stderr


def test_wrong_credentials_are_a_clear_error(store: S3Server, tmp_path: Path) -> None:
    proc = remote_triage(store, URLS["raw"], tmp_path / "case", tmp_path, check=False,
                         secret="not-the-secret")
    assert proc.returncode == 3
    assert "access denied" in proc.stderr and "AWS_PROFILE" in proc.stderr


def test_a_dropped_connection_is_retried_to_the_right_hash(
        store: S3Server, sample_raw: Path, tmp_path: Path) -> None:
    store.faults.mode, store.faults.remaining = "drop", 3
    try:
        remote_triage(store, URLS["raw"], tmp_path / "case", tmp_path, "--analyzers",
                      "filetype")
    finally:
        store.faults.mode = None
    assert store.faults.remaining == 0, "the faults were not injected"
    assert evidence_sha256(tmp_path / "case") == sha256_file(sample_raw)


@pytest.mark.parametrize(("kind", "mode"), [("raw", "drop"), ("raw", "short"),
                                           ("e01", "drop")])
def test_a_connection_that_keeps_failing_stops_cleanly_and_resumes(
        store: S3Server, sample_raw: Path, tmp_path: Path, kind: str, mode: str) -> None:
    """Never a wrong hash: no evidence is registered from a failed read; a re-run finishes."""
    case = tmp_path / "case"
    store.faults.mode, store.faults.remaining = mode, -1
    try:
        proc = remote_triage(store, URLS[kind], case, tmp_path, "--analyzers", "filetype",
                             check=False)
    finally:
        store.faults.mode = None
    assert proc.returncode == 3, proc.stderr
    assert "could not be read after" in proc.stderr and "run the same command" in proc.stderr
    actions = [e["action"] for e in ledger_entries(case)]
    assert "acquisition.hashed" not in actions and "evidence.registered" not in actions
    remote_triage(store, URLS[kind], case, tmp_path, "--analyzers", "filetype")
    assert evidence_sha256(case) == sha256_file(sample_raw)
    # Run again: the objects are recognised by URL, size and ETag, not hashed again.
    remote_triage(store, URLS[kind], case, tmp_path, "--analyzers", "filetype")
    actions = [e["action"] for e in ledger_entries(case)]
    assert actions.count("acquisition.hashed") == 1 and "evidence.reopened" in actions


def test_a_store_failing_during_analysis_stops_the_run_and_it_resumes(
        store: S3Server, local_cases: dict[str, Path], tmp_path: Path) -> None:
    """Workers that cannot read the store stop the run; no file is recorded unreadable."""
    case = tmp_path / "case"
    env = dict(os.environ, XDG_CONFIG_HOME=str(CONFIG_HOME), EXHIBIT_EXAMINER=EXAMINER,
               **store.env(tmp_path / "aws"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "triage", URLS["raw"], "--case", str(case),
         "--workers", "2", "--no-progress", "--batch-files", "5"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ledger = case / "ledger.jsonl"
        deadline = time.monotonic() + 240
        while not (ledger.exists() and '"analysis.started"' in ledger.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.02)
        store.faults.mode, store.faults.remaining = "drop", -1
        _, stderr = proc.communicate(timeout=300)
    finally:
        store.faults.mode = None
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, stderr
    assert "could not be read after" in stderr and "run the same command" in stderr
    errors = [e for e in ledger_entries(case) if e["action"] == "error"]
    assert errors and errors[-1]["details"]["stage"] == "analysis"
    remote_triage(store, URLS["raw"], case, tmp_path, "--batch-files", "5")
    actions = [e["action"] for e in ledger_entries(case)]
    assert actions.count("acquisition.hashed") == 1 and "triage.completed" in actions
    assert export_jsonl(case) == export_jsonl(local_cases["raw"])


def test_an_object_replaced_after_registration_is_refused(
        store: S3Server, sample_raw: Path, tmp_path: Path) -> None:
    """A worker opening the image checks the ETag it was registered with."""

    saved = dict(os.environ)
    os.environ.update(store.env(tmp_path / "aws"))
    try:
        s3 = boto3.session.Session().client("s3")  # a fresh session reads the new env
        s3.upload_file(str(sample_raw), BUCKET, "swap/sample.dd")
        spec = image_spec(f"s3://{BUCKET}/swap/sample.dd")
        with spec.open() as image:
            assert image.size == sample_raw.stat().st_size
        s3.put_object(Bucket=BUCKET, Key="swap/sample.dd", Body=b"\0" * 4096)
        with pytest.raises(IngestError, match="changed since it was registered"):
            spec.open()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_other_fsspec_protocols_take_the_same_path(sample_split: list[Path]) -> None:
    """fsspec's in-memory filesystem: split raw found by listing, read by ranges."""

    memory = fsspec.filesystem("memory")
    for part in sample_split:
        memory.pipe_file(f"/case/{part.name}", part.read_bytes())
    with open_image("memory://case/sample.001") as image:
        assert image.format == "split-raw" and len(image.paths) == len(sample_split)
        digest = hash_image(image)["sha256"]
    whole = b"".join(p.read_bytes() for p in sample_split)
    assert digest == hashlib.sha256(whole).hexdigest()


def test_file_urls_and_plain_paths_are_the_same_evidence(sample_raw: Path,
                                                         tmp_path: Path) -> None:

    assert image_spec(f"file://{sample_raw}") == image_spec(sample_raw)
    assert image_spec(str(sample_raw)).paths == (str(sample_raw),)
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.parametrize(("fmt", "options"), [
    ("qcow2", []), ("vpc", []), ("vmdk", ["-o", "subformat=twoGbMaxExtentSparse"])])
def test_virtual_disks_by_url_read_as_the_local_files(sample_raw: Path, tmp_path: Path,
                                                      fmt: str, options: list[str]) -> None:
    """A virtual disk and its extents, found beside it in the store, give the same media."""

    qemu_img = require_tool("qemu-img")
    local = tmp_path / f"disk.{'vhd' if fmt == 'vpc' else fmt}"
    subprocess.run([qemu_img, "convert", "-O", fmt, *options, str(sample_raw), str(local)],
                   check=True)
    memory = fsspec.filesystem("memory")
    for part in tmp_path.iterdir():
        memory.pipe_file(f"/vdisk-{fmt}/{part.name}", part.read_bytes())
    with open_image(local) as image:
        expected = (image.format, len(image.paths), hash_image(image)["sha256"])
    with open_image(f"memory://vdisk-{fmt}/{local.name}") as image:
        assert all(str(p).startswith("memory://") for p in image.paths)
        assert (image.format, len(image.paths), hash_image(image)["sha256"]) == expected
    if fmt == "vmdk":
        assert expected[1] > 1, "the VMDK's extent was not found beside it"


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """A plain web server that answers HEAD and ranged GETs of one file (no S3 at all)."""

    image: ClassVar[Path]
    methods: ClassVar[list[str]]

    def log_message(self, *args: object) -> None:
        pass

    def _head(self, status: int, length: int, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", '"sample-v1"')
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()

    def do_HEAD(self) -> None:
        self.methods.append("HEAD")
        self._head(200, self.image.stat().st_size, {})

    def do_GET(self) -> None:
        self.methods.append("GET")
        size = self.image.stat().st_size
        first, _, last = self.headers.get("Range", "bytes=0-").removeprefix("bytes=").partition("-")
        begin, end = int(first), min(int(last) if last else size - 1, size - 1)
        with self.image.open("rb") as fh:
            fh.seek(begin)
            body = fh.read(end - begin + 1)
        self._head(206, len(body), {"Content-Range": f"bytes {begin}-{end}/{size}"})
        self.wfile.write(body)


def test_an_image_over_http_range_requests(sample_raw: Path) -> None:
    """https:// (here http:// on 127.0.0.1) goes through the same reader: same SHA-256."""
    handler = type("Handler", (_RangeHandler,), {"image": sample_raw, "methods": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/sample.dd"
        with open_image(url) as image:
            assert image.format == "raw" and image.spec.pins == ("sample-v1",)
            assert hash_image(image)["sha256"] == sha256_file(sample_raw)
    finally:
        server.shutdown()
    assert set(handler.methods) <= {"HEAD", "GET"} and "GET" in handler.methods


def test_evidence_registered_and_verified_by_url(store: S3Server, sample_raw: Path,
                                                 tmp_path: Path) -> None:
    """The custody commands take the same URLs as triage: the split E01 in the store is
    registered (its media hash equals the raw file's) and re-verified, without a write."""
    case = tmp_path / "case"
    env = store.env(tmp_path / "aws")
    mark = store.mark()
    exhibit("evidence", "register", case, URLS["e01"], "--exhibit-number", "S3-1",
            "--description", "split E01 kept in the evidence store",
            "--expect-sha256", sha256_file(sample_raw), env=env)
    exhibit("evidence", "verify", case, env=env)
    assert store.methods_since(mark) & WRITES == set()
    entries = ledger_entries(case)
    registered = next(e for e in entries if e["action"] == "evidence.registered")
    acquisition = registered["details"]["acquisition"]
    assert acquisition["paths"][0] == URLS["e01"] and len(acquisition["paths"]) > 1
    assert acquisition["sha256"] == sha256_file(sample_raw)
    assert acquisition["result"] == "match"
    verified = next(e for e in entries if e["action"] == "evidence.verified")
    assert verified["details"]["result"] == "same"
    assert verified["details"]["paths"] == acquisition["paths"]
