"""Running on machines exhibit does not own: when a Dask cluster may be used, and how."""
