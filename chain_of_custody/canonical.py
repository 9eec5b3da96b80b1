"""One byte form per value, so a hash or signature means the same thing everywhere.

Hashes in the ledger are taken over RFC 8785 (JSON Canonicalization Scheme) bytes:
object keys sorted by UTF-16 code units, no whitespace, numbers in ECMAScript form
(``1.0`` → ``1``, ``1e21`` stays ``1e+21``), strings as UTF-8 with only the mandatory
escapes. ``json.dumps`` defaults differ on every one of those points, so it must never
be used for anything that is hashed.

Values must be JSON types: ``None``, ``bool``, ``int`` within ±(2**53 − 1), finite
``float``, ``str``, ``list``/``tuple`` and ``dict`` with ``str`` keys. Anything else is
refused with :class:`CanonicalizationError` naming where it sits (``$.details.size``)
rather than converted, because a silent conversion is an unrecorded change of evidence.

Strings must be valid Unicode. A lone surrogate (what ``surrogateescape`` makes of an
undecodable byte in a file name) has no UTF-8 form and is refused; name bytes from the
media should be escaped reversibly before they reach the ledger (``\\xNN`` text, as the
ingest layer does) — such backslash escapes are ordinary text and round-trip exactly.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import rfc8785

from chain_of_custody.errors import CanonicalizationError

_INT_LIMIT = 2**53 - 1


def _check(value: Any, where: str) -> None:
    """Refuse what RFC 8785 cannot represent, naming the JSON path of the culprit."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -_INT_LIMIT <= value <= _INT_LIMIT:
            raise CanonicalizationError(
                f"{where}: integer {value} is outside ±(2**53 - 1); store it as a string"
            )
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CanonicalizationError(f"{where}: {value} is not a finite number")
        return
    if isinstance(value, str):
        _check_text(value, where)
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalizationError(f"{where}: object key {key!r} is not a string")
            _check_text(key, f"{where} (key {key!r})")
            _check(item, f"{where}.{key}")
        return
    raise CanonicalizationError(f"{where}: {type(value).__name__} is not a JSON type")


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalizationError(
            f"{where}: string contains a lone surrogate at index {exc.start} "
            "(escape undecodable bytes before recording them)"
        ) from exc


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 canonical JSON of ``obj`` as UTF-8 bytes; refuses non-JSON values.

    rfc8785 refuses the same values :func:`_check` does (it is the fast path); only on
    a refusal is the value walked again, to name where the culprit sits.
    """
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        _check(obj, "$")
        raise CanonicalizationError(str(exc)) from exc


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256, the digest form used throughout the ledger."""
    return hashlib.sha256(data).hexdigest()
