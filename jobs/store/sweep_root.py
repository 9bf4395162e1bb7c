"""A sweep's root: `sweep.yaml` listing its points, and one run root per point under it."""

from omegaconf import OmegaConf

from jobs.errors import StoreError
from jobs.store.root import RunStore


def point_root(sweep_root: str, name: str) -> str:
    """A point's run root: its folder under the sweep's root (a path or any URL)."""
    return f"{sweep_root.rstrip('/')}/{name}"


def read_sweep_points(store: RunStore) -> list[dict]:
    """The points listed in a sweep root's sweep.yaml: [{"name": ..., "values": {...}}]."""
    try:
        listing = OmegaConf.to_container(OmegaConf.create(store.read_text(store.sweep_yaml)))
        points = listing["points"]
        assert isinstance(points, list) and all("name" in p for p in points)
    except Exception as err:  # noqa: BLE001 - any malformation has the same fix
        raise StoreError(f"{store.url(store.sweep_yaml)} is not a sweep listing ({type(err).__name__}): restore it or rerun troop sweep") from None
    return points


def is_sweep_root(store: RunStore) -> bool:
    return store.exists(store.sweep_yaml)
