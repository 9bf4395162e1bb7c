"""Whether every node of a cluster can reach a run's root.

Generation and verification actors write their unit files themselves, on whatever node Ray
placed them. A local path on a cluster of several nodes would scatter a run over as many
disks, and the driver (which reads the units back for the metrics) would see only its own
node's share. Pure: `troop submit` calls it with the cluster's node count before it submits,
and a driver can call it after `ray.init`.
"""

from jobs.errors import ConfigError


def is_local_root(root: str) -> bool:
    """A path on this machine's filesystem: no URL, or a file:// URL."""
    return "://" not in root or root.startswith("file://")


def check_root_reachable(root: str, alive_nodes: int, shared_filesystem: bool) -> None:
    """Refuse a local root on a cluster of several nodes unless it is on a shared filesystem."""
    if alive_nodes <= 1 or shared_filesystem or not is_local_root(root):
        return
    raise ConfigError(
        f"run.root={root} is a local path and the cluster has {alive_nodes} nodes: each node would write "
        "its units to its own disk and no node would see the whole run; use a URL every node reaches "
        "(run.root=s3://bucket/prefix) or, if the path is on a filesystem every node mounts (NFS, Lustre, ...), "
        "set run.shared_filesystem=true"
    )
