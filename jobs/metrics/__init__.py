"""Metrics: estimators (pure, numpy), their numba kernels, and measuring a stored run into metrics.json."""
