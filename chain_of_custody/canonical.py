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

Speed: the driver canonicalises every result record, and ``rfc8785`` is pure Python
(~0.13 ms a record). :func:`canonical_bytes` therefore first lets the C encoder of the
standard library write the value (sorted keys, no whitespace, UTF-8 text) and keeps
that only where it provably equals RFC 8785; anything else goes to the exact, slow
implementation (:func:`exact_canonical_bytes`). ``tests/test_canonical_fast.py`` holds
the two to the same bytes on generated values.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
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


class _NotFast(ValueError):
    """The fast path cannot vouch for this value; the exact implementation decides."""


_FAST_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=True,
                                 separators=(",", ":"))
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _fast_float(token: str) -> float:
    """Accept a float only where Python's repr is already ECMAScript's form.

    ``rfc8785`` writes ``str(f)`` with the exponent rewritten and a trailing ``.0``
    dropped; a repr with neither (``0.5``, ``-12.25``) is therefore its output too.
    """
    if "e" in token or "E" in token or token.endswith(".0"):
        raise _NotFast(token)
    return float(token)


def _fast_int(token: str) -> int:
    value = int(token)
    if not -_INT_LIMIT <= value <= _INT_LIMIT:
        raise _NotFast(token)  # the exact implementation refuses it, with its message
    return value


_FAST_DECODER = json.JSONDecoder(parse_float=_fast_float, parse_int=_fast_int)


def _fast_canonical(obj: Any) -> bytes | None:
    """RFC 8785 bytes by the standard library's C encoder, or None when not provably so.

    ``json`` with sorted keys and compact separators differs from RFC 8785 only in
    (a) floats (repr, not ECMAScript form), (b) key order when a key holds a character
    above U+FFFF (code points, not UTF-16 code units), (c) what it accepts: integers
    beyond ±(2**53 − 1), non-string keys (turned into strings), lone surrogates. The text
    is parsed back: the float and integer hooks catch (a) and the big integers, a value
    that does not compare equal to ``obj`` had a key or a type converted (tuples too,
    which is only slower), an astral character anywhere sends (b) to the exact path and
    UTF-8 refuses lone surrogates. String escapes are the same in both (the mandatory
    ones, other control characters as lower-case ``\\u00xx``).
    """
    try:
        text = _FAST_ENCODER.encode(obj)
        if not text.isascii() and _ASTRAL.search(text):
            return None
        if _FAST_DECODER.decode(text) != obj:
            return None
        return text.encode("utf-8")
    except (TypeError, ValueError, RecursionError):  # ValueError: NaN, cycles, _NotFast,
        return None                                    # lone surrogates (UnicodeError)


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 canonical JSON of ``obj`` as UTF-8 bytes; refuses non-JSON values.

    The standard library's encoder where it provably gives the same bytes, else the
    exact implementation (:func:`exact_canonical_bytes`).
    """
    fast = _fast_canonical(obj)
    return exact_canonical_bytes(obj) if fast is None else fast


def exact_canonical_bytes(obj: Any) -> bytes:
    """:func:`canonical_bytes` by ``rfc8785`` alone (the reference the fast path meets).

    rfc8785 refuses the same values :func:`_check` does; only on a refusal is the value
    walked again, to name where the culprit sits.
    """
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        _check(obj, "$")
        raise CanonicalizationError(str(exc)) from exc


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256, the digest form used throughout the ledger."""
    return hashlib.sha256(data).hexdigest()
