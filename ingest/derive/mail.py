"""E-mail: RFC 822/MIME messages (.eml) and mbox mailboxes.

A message's children are its attachments and inline non-text parts (inline pictures
included), each decoded from its transfer encoding; text bodies are the message's own
content, not children (a text part with a file name or ``attachment`` disposition is one).
A nested ``message/rfc822`` part is a child, re-serialised by the stdlib (its bytes are
not the original's byte for byte), and is expanded as a message in its turn. The stdlib
parser needs the whole message in memory, so messages over :data:`MAX_MESSAGE` bytes are
refused with a ContainerError rather than parsed.

An mbox is never loaded: it is read line by line, and each message is a byte range of
the mailbox (``Derivation`` offset/length) from the line after its ``From`` separator to
the blank line before the next one — the same range Python's ``mailbox.mbox`` returns.
``>From`` quoting is left as stored.
"""

from __future__ import annotations

import io
import mimetypes
import re
from collections.abc import Callable, Iterator
from email import policy
from email.message import Message
from email.parser import BytesParser
from typing import BinaryIO

from ingest.derive.base import Child, ContainerError, RangeStream
from ingest.location import Derivation

MAX_MESSAGE = 256 << 20  # bytes: the largest single message parsed (in memory)
_HEADER = re.compile(rb"^([!-9;-~]+):")  # a header field name, RFC 5322 3.6.8
_STRONG = frozenset({b"from", b"received", b"return-path", b"mime-version", b"message-id",
                     b"delivered-to"})
_SEPARATOR = re.compile(rb"^From \S*\s.*\d{1,2}:\d{2}")  # "From sender <asctime date>"
_LINE = 64 * 1024  # longest line piece read at once while scanning an mbox
_MAX_NESTING = 32  # multipart levels followed inside one message


def _header_names(head: bytes, lines: int = 200) -> set[bytes] | None:
    """Lower-case field names of the header block at the start of ``head``, or None."""
    names: set[bytes] = set()
    for number, line in enumerate(head.split(b"\n")[:lines]):
        line = line.rstrip(b"\r")
        if not line:
            return names
        if line[:1] in (b" ", b"\t") and number:
            continue  # folded continuation
        match = _HEADER.match(line)
        if match is None:
            return names if len(names) >= 2 else None
        names.add(match.group(1).lower())
    return names


class EmailReader:
    """Attachments and inline parts of one RFC 822 / MIME message."""

    method = "email"
    version = "1"

    def sniff(self, head: bytes) -> bool:
        names = _header_names(head)
        return names is not None and len(names & _STRONG) >= 2

    def children(self, stream: BinaryIO, size: int, name: str) -> Iterator[Child]:
        if size > MAX_MESSAGE:
            raise ContainerError(f"email: {size} bytes is over the {MAX_MESSAGE}-byte "
                                 "limit for parsing one message in memory")
        stream.seek(0)
        try:
            message = BytesParser(policy=policy.default).parse(stream)  # type: ignore[arg-type]
        except (ValueError, TypeError, LookupError, RecursionError) as exc:
            raise ContainerError(f"email: cannot parse the message: {exc}") from exc
        yield from self._parts(message, "")

    def _parts(self, message: Message, prefix: str) -> Iterator[Child]:
        if prefix.count(".") >= _MAX_NESTING:
            raise ContainerError(f"email: multiparts nested over {_MAX_NESTING} deep at "
                                 f"part {prefix.rstrip('.')}; the parts inside were not read")
        for index, part in enumerate(message.iter_parts()  # type: ignore[attr-defined]
                                     if message.is_multipart() else [message], 1):
            path = f"{prefix}{index}"
            if part.is_multipart() and part.get_content_maintype() == "multipart":
                yield from self._parts(part, path + ".")
                continue
            child = self._child(part, path)
            if child is not None:
                yield child

    def _child(self, part: Message, path: str) -> Child | None:
        content_type = part.get_content_type()
        disposition = part.get_content_disposition()
        try:
            filename = part.get_filename()
        except (ValueError, TypeError, LookupError):
            filename = None
        if (part.get_content_maintype() == "text" and not filename
                and disposition != "attachment"):
            return None  # the message's body
        if content_type == "message/rfc822":
            extension = ".eml"
        else:
            extension = mimetypes.guess_extension(content_type, strict=False) or ".bin"
        leaf = (filename or f"part-{path}{extension}").replace("/", "_").replace("\\", "_")
        notes: tuple[str, ...] = ("inline",) if disposition == "inline" else ()
        if content_type == "message/rfc822":
            notes = (*notes, "re-serialised by the e-mail parser")
        step = Derivation(self.method, self.version, inner=f"part {path}/{leaf}")
        return Child(step, leaf, _part_opener(part, f"part {path}"), notes=notes)


def _part_opener(part: Message, what: str) -> Callable[[], BinaryIO]:
    def open_part() -> BinaryIO:
        try:
            if part.get_content_type() == "message/rfc822":
                inner = part.get_payload()
                nested = inner[0] if isinstance(inner, list) else inner
                return io.BytesIO(nested.as_bytes(policy=policy.default))  # type: ignore[union-attr]
            data = part.get_payload(decode=True)
        except (ValueError, TypeError, LookupError, IndexError, AttributeError,
                RecursionError) as exc:
            raise ContainerError(f"email {what}: cannot decode: {exc}") from exc
        return io.BytesIO(data if isinstance(data, bytes) else b"")
    return open_part


class MboxReader:
    """Messages of an mbox mailbox, each a byte range of it."""

    method = "mbox"
    version = "1"

    def sniff(self, head: bytes) -> bool:
        first, _, rest = head.partition(b"\n")
        if not _SEPARATOR.match(first):
            return False
        names = _header_names(rest)
        return bool(names)

    def children(self, stream: BinaryIO, size: int, name: str) -> Iterator[Child]:
        for number, (start, end) in enumerate(_message_ranges(stream, size), 1):
            step = Derivation(self.method, self.version, inner=f"message {number}",
                              offset=start, length=end - start)
            yield Child(step, f"message-{number}.eml", _range_opener(stream, start, end),
                        size=end - start)


def _message_ranges(stream: BinaryIO, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each message: after its separator line, before the blank line."""
    lines = io.BufferedReader(RangeStream(stream, 0, size), 1 << 20)  # type: ignore[arg-type]
    pos = 0
    start: int | None = None
    previous_blank = 0  # length of the previous line if it was empty ("\n" or "\r\n")
    at_line_start = True
    while True:
        line = lines.readline(_LINE)
        if not line:
            break
        if at_line_start and line.startswith(b"From ") and (pos == 0 or previous_blank) \
                and _SEPARATOR.match(line):
            if start is not None:
                yield start, pos - previous_blank
            start = pos + len(line)
        complete = line.endswith(b"\n")
        previous_blank = len(line) if at_line_start and line in (b"\n", b"\r\n") else 0
        at_line_start = complete
        pos += len(line)
    if start is not None:
        yield start, max(start, pos - previous_blank)


def _range_opener(stream: BinaryIO, start: int, end: int) -> Callable[[], BinaryIO]:
    def open_range() -> BinaryIO:
        return RangeStream(stream, start, end - start)  # type: ignore[return-value]
    return open_range
