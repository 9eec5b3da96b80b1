"""The triage run: plan batches, run them on Dask workers, collect each into the case, resume."""
