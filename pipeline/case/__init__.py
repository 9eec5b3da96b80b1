"""The case directory: its SQLite database, ledger, keys and run lock, and custody events."""
