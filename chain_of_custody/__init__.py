"""What happened to the evidence, provably: the hash-chained custody ledger.

Usable on its own: verifying a ledger needs this package and nothing else of exhibit.
"""
