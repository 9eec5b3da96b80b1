"""``python -m pipeline.cli``: the same as the ``exhibit`` command."""

from pipeline.cli import run

run()
