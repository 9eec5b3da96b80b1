"""The fast RFC 8785 path gives the exact implementation's bytes, or hands over to it.

``canonical_bytes`` lets the standard library's C encoder write a value and keeps the
text only where it provably is RFC 8785 (``chain_of_custody/canonical.py``). Every hash
in the ledger and every Merkle leaf rests on those bytes, so the two are compared here
on generated values chosen to hit each difference between ``json`` and RFC 8785: floats,
keys with characters above U+FFFF next to U+E000–U+FFFF, lone surrogates, control
characters, integers around ±(2**53 − 1), non-string keys, tuples, NaN and infinities.
The oracle is ``rfc8785`` (``exact_canonical_bytes``), which the ledger used alone before.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain_of_custody.canonical import (
    _fast_canonical,
    canonical_bytes,
    exact_canonical_bytes,
)
from chain_of_custody.errors import CanonicalizationError

LIMIT = 2**53 - 1

# Characters where json and RFC 8785 could part: controls, quote and backslash, DEL,
# the line separators, the top of the BMP (sorts after surrogates in UTF-16), astral
# characters (sort before it in UTF-16) and lone surrogates (no UTF-8 form).
SPECIAL = st.sampled_from(["\x00", "\x1f", "\b", "\f", "\n", "\r", "\t", '"', "\\", "\x7f",
                           "\u2028", "\u2029", "\ue000", "\uffff", "\ufeff", "é", "€",
                           "\U0001f600", "\U00010000", "\U0010ffff", "\ud800", "\udfff"])
CHARS = st.one_of(SPECIAL, st.characters(codec=None, categories=None),
                  st.characters(min_codepoint=0x20, max_codepoint=0x7e))
TEXT = st.text(CHARS, max_size=12)
INTS = st.one_of(st.integers(), st.integers(-LIMIT - 3, -LIMIT + 3),
                 st.integers(LIMIT - 3, LIMIT + 3), st.integers(-1000, 1000))
FLOATS = st.one_of(st.floats(), st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e21, 1e20, 1e-6,
                                                 1e-7, 1e16, 123456789.125, 5e-324,
                                                 1.7976931348623157e308]))
SCALARS = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXT)
KEYS = st.one_of(TEXT, TEXT, TEXT, st.integers(-5, 5), st.none(), st.booleans(),
                 st.floats(allow_nan=False))


def _containers(children: Any) -> Any:
    return st.one_of(st.lists(children, max_size=5), st.tuples(children, children),
                     st.dictionaries(KEYS, children, max_size=5),
                     st.dictionaries(TEXT, children, max_size=5))


VALUES = st.recursive(SCALARS, _containers, max_leaves=25)
# Values such as result records: string keys from code, no floats, ordinary ints.
PLAIN = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-LIMIT, LIMIT), TEXT),
    lambda c: st.one_of(st.lists(c, max_size=5),
                        st.dictionaries(st.text(min_size=1, max_size=8), c, max_size=5)),
    max_leaves=25)


def _outcome(func: Any, value: Any) -> tuple[str, Any]:
    try:
        return "bytes", func(value)
    except (CanonicalizationError, UnicodeError) as exc:  # rfc8785 lets UnicodeError out
        return type(exc).__name__, str(exc)


@settings(max_examples=1000, deadline=None, derandomize=True, database=None)
@given(VALUES)
def test_canonical_bytes_equal_the_exact_implementation(value: Any) -> None:
    assert _outcome(canonical_bytes, value) == _outcome(exact_canonical_bytes, value)
    fast = _fast_canonical(value)
    if fast is not None:  # what the fast path vouches for, the exact one writes too
        assert fast == exact_canonical_bytes(value)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(PLAIN)
def test_fast_path_takes_plain_values(value: Any) -> None:
    """Without floats, astral characters or lone surrogates the fast path is the one
    taken (else the first test proves nothing about it), with the exact bytes."""
    text = json.dumps(value, ensure_ascii=False)
    if any(0xD800 <= ord(c) <= 0xDFFF or ord(c) > 0xFFFF for c in text):
        assert _outcome(canonical_bytes, value) == _outcome(exact_canonical_bytes, value)
        return
    assert _fast_canonical(value) == exact_canonical_bytes(value)


@pytest.mark.parametrize("value", [
    {"b": 1, "a": 2}, {"\ue000": 1, "\U0001f600": 2}, [0.5, -12.25, 1e-7, 1e21, 1.0, -0.0],
    {"n": LIMIT}, {"n": -LIMIT}, "\x00\x1f\x7f\u2028\"\\", (1, [2, (3,)]),
])
def test_known_values(value: Any) -> None:
    assert canonical_bytes(value) == exact_canonical_bytes(value)


@pytest.mark.parametrize("value", [
    {1: "a"}, {None: 1}, {"a": LIMIT + 1}, {"a": -LIMIT - 1}, {"a": float("nan")},
    [float("inf")], {"a": object()}, {"a": b"bytes"},
])
def test_refusals_stay_refusals(value: Any) -> None:
    with pytest.raises(CanonicalizationError) as fast:
        canonical_bytes(value)
    with pytest.raises(CanonicalizationError) as exact:
        exact_canonical_bytes(value)
    assert str(fast.value) == str(exact.value)


def test_lone_surrogate_refused_as_before() -> None:
    assert _outcome(canonical_bytes, {"k": "a\udc80"})[0] == "CanonicalizationError"
    assert _outcome(canonical_bytes, {"k": "a\udc80"}) == \
        _outcome(exact_canonical_bytes, {"k": "a\udc80"})
