"""The run store: the root's layout (every path), atomic writes through fsspec, job.yaml, failures, progress, and the readers of a stored run."""
