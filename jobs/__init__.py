"""The Troop driver: config, problem sets, planning, Ray orchestration, store, metrics, CLI."""

from importlib import metadata

try:
    __version__ = metadata.version("troop")
except metadata.PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0+unknown"
