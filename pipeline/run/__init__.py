"""The triage run: plan batches, run them on Dask workers, collect each into the case, resume."""

# The expansion step's name among a task's analyzers, and its method version: known to the
# conductor before the analysis stack (``run.expand``, ``run.worker``) is imported.
EXPAND = "expand"
EXPAND_VERSION = "1"
