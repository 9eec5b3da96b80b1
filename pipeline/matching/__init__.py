"""Known-hash sets (one module per format), the near-duplicate index, matching and series."""
