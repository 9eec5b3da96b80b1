"""The ledger's exceptions: one root, so callers can catch every custody failure at once."""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every error this package raises about a ledger or its contents."""


class TornLedgerError(LedgerError):
    """The ledger's final line is incomplete: a write was cut short (crash, full disk).

    Raised instead of repairing, because truncating or completing the line would destroy
    the evidence of what happened; a person must look at the file first.
    """

    def __init__(self, path: str, offset: int, why: str) -> None:
        self.path = path
        self.offset = offset  # byte offset where the torn line starts
        super().__init__(
            f"{path}: torn final line at byte {offset} ({why}); the ledger was left "
            "untouched and refuses further appends until someone has examined it "
            "(python -m chain_of_custody verify)"
        )


class CanonicalizationError(LedgerError, ValueError):
    """A value has no RFC 8785 canonical form (not a JSON type, NaN, lone surrogate …)."""
