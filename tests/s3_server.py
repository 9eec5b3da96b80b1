"""A real S3 server on 127.0.0.1 (moto's server mode) that logs and can break requests.

The server runs moto's own WSGI application in a thread of the test process; a thin
WSGI layer in front of it records every request's method (so a test proves that no
PUT/POST/DELETE reached the store) and, on demand, breaks ranged GETs the way networks
do: the connection dropped half-way through the body, or a body shorter than asked
with a Content-Length that agrees (a lying server or proxy).

Credentials are checked (moto's IAM authentication switched on after the setup): only
the access key made here reads; anything else gets AccessDenied.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUCKET = "evidence"
REGION = "us-east-1"


@dataclass
class Faults:
    """How to break the next ranged GETs: ``drop`` cuts the connection, ``short`` sends half."""

    mode: str | None = None
    remaining: int = 0  # how many more GETs to break (-1: all)

    def take(self) -> str | None:
        if self.mode is None or self.remaining == 0:
            return None
        if self.remaining > 0:
            self.remaining -= 1
        return self.mode


@dataclass
class S3Server:
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)
    key_id: str = ""
    secret: str = ""
    direct: dict[str, Path] = field(default_factory=dict)  # see serve_ranges_directly
    _server: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> S3Server:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        inner = DomainDispatcherApplication(create_backend_app)

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
            with self._lock:
                self.requests.append((method, path))
                fault = (self.faults.take() if method == "GET" and environ.get("HTTP_RANGE")
                         and not path.startswith("/moto-api") else None)
            if fault is None and method == "GET" and path in self.direct \
                    and environ.get("HTTP_RANGE"):
                return _range_from_file(self.direct[path], environ["HTTP_RANGE"],
                                        start_response)
            if fault is None:
                return inner(environ, start_response)
            return _broken(inner, environ, start_response, fault)

        self._server = make_server(self.host, self.port, app, threaded=True,
                                   request_handler=MotoRequestHandler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def serve_ranges_directly(self, key: str, path: Path) -> None:
        """Answer ranged GETs of ``key`` from ``path`` (benchmarks only).

        moto builds the whole object for every ranged GET and slices it, so a GET of 64 KiB
        from a 300 MB object costs a 300 MB copy: that would measure moto, not exhibit.
        These answers skip moto's signature check; the tests never use this.
        """
        self.direct[f"/{BUCKET}/{key}"] = path

    def methods_since(self, mark: int) -> set[str]:
        with self._lock:
            return {m for m, p in self.requests[mark:] if not p.startswith("/moto-api")}

    def mark(self) -> int:
        with self._lock:
            return len(self.requests)

    # -- setup (before authentication is switched on) ------------------------------

    def setup(self, uploads: dict[str, Path]) -> None:
        """The bucket, the objects, an IAM user allowed to read; then credentials are checked."""
        import boto3

        # moto's backends and its authentication switch are per process: a server started
        # earlier in this process (another test module) left both behind.
        self._moto_api("reset", b"")
        self._moto_api("reset-auth", b"inf")
        kwargs = {"endpoint_url": self.endpoint, "region_name": REGION,
                  "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        s3 = boto3.client("s3", **kwargs)
        s3.create_bucket(Bucket=BUCKET)
        for key, path in uploads.items():
            s3.upload_file(str(path), BUCKET, key)
        iam = boto3.client("iam", **kwargs)
        iam.create_user(UserName="examiner")
        iam.put_user_policy(UserName="examiner", PolicyName="read", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="examiner")["AccessKey"]
        self.key_id, self.secret = key["AccessKeyId"], key["SecretAccessKey"]
        self._moto_api("reset-auth", b"0")

    def _moto_api(self, what: str, body: bytes) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/{what}", data=body,
                                         headers={"Content-Type": "text/plain"}, method="POST")
        urllib.request.urlopen(request, timeout=10).read()

    def env(self, home: Path, secret: str | None = None) -> dict[str, str]:
        """The standard AWS configuration an examiner would have: a profile in files."""
        home.mkdir(parents=True, exist_ok=True)
        (home / "credentials").write_text(
            f"[evidence]\naws_access_key_id = {self.key_id}\n"
            f"aws_secret_access_key = {secret or self.secret}\n", encoding="utf-8")
        (home / "config").write_text(
            f"[profile evidence]\nregion = {REGION}\nendpoint_url = {self.endpoint}\n",
            encoding="utf-8")
        return {"AWS_PROFILE": "evidence", "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
                "AWS_CONFIG_FILE": str(home / "config"), "AWS_ACCESS_KEY_ID": "",
                "AWS_SECRET_ACCESS_KEY": "", "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}


def _range_from_file(path: Path, header: str, start_response: Any) -> list[bytes]:
    size = path.stat().st_size
    first, _, last = header.removeprefix("bytes=").partition("-")
    begin, end = int(first), min(int(last) if last else size - 1, size - 1)
    with path.open("rb") as fh:
        fh.seek(begin)
        body = fh.read(end - begin + 1)
    start_response("206 Partial Content", [
        ("Content-Type", "binary/octet-stream"), ("Content-Length", str(len(body))),
        ("Content-Range", f"bytes {begin}-{end}/{size}"), ("Accept-Ranges", "bytes")])
    return [body]


def _broken(inner: Any, environ: dict[str, Any], start_response: Any,
            fault: str) -> Iterator[bytes]:
    """The real response, cut: half its body, then a dropped connection or a clean end."""
    captured: dict[str, Any] = {}

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, headers
        return lambda data: None

    body = b"".join(inner(environ, capture))
    half = body[: len(body) // 2]
    headers = captured["headers"]
    if fault == "short":  # a server that sends less and says so
        headers = [(k, str(len(half)) if k.lower() == "content-length" else v)
                   for k, v in headers]
    start_response(captured["status"], headers)
    yield half
    if fault == "drop":  # the socket itself goes: the client sees the body end early
        with contextlib.suppress(OSError):
            environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
        raise ConnectionAbortedError("connection dropped by the test server mid-body")
