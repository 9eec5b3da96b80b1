"""Carving on the pipeline side: plan ranges of unallocated space, carve them on workers.

``plan`` runs on the driver after the walk (ranges as pseudo-entries and batches, one
ledger entry); ``task`` runs on the workers inside the batch task, returning carved
pictures as derived entries. The carvers themselves are in ``ingest.carve``.
"""

RANGE_BYTES = 64 << 20  # unallocated bytes one carve task owns (here: a light import)
