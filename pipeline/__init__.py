"""Who does the work, in what order, and where results go: CLI, Dask, case database."""
