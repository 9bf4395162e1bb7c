"""Where the actors go: the Ray resources they request, computed from a cluster description.

Pure functions over `Node`s (what `ray.nodes()` reports of the live nodes); `jobs.cluster.executor` and
`jobs.cluster.verify_pool` turn the results into actors and placement groups, so every request can be
checked in a unit test without a cluster or a GPU.

- On a cluster without GPUs a generation actor asks `cluster.cpus_per_worker` CPUs and one
  actor runs by default (vLLM's CPU engine uses the machine's cores on its own).
- With GPUs and `model.tensor_parallel_size` 1, an actor asks one GPU.
- With tensor parallelism, an actor holds a placement group of one bundle per GPU, packed on one
  node (STRICT_PACK: tensor-parallel ranks talk over NVLink/PCIe, not the network). The actor
  sits in bundle 0 and asks no GPU itself: vLLM's Ray workers take the group's GPUs.
- By default as many generation actors run as fit node by node on the nodes that match
  `cluster.label_selector`; verification actors take the CPUs left and never a GPU.
"""

import bisect
import sys
from dataclasses import dataclass, field

from jobs.errors import TroopError
from jobs.ray_syntax import SELECTOR_VALUE

STRICT_PACK = "STRICT_PACK"

@dataclass(frozen=True)
class Node:
    """One live node: its resources ({"CPU": 32, "GPU": 8, ...}) and labels."""

    resources: dict[str, float]
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PlacementSettings:
    """What the config adds to an actor's request: custom resources and node labels."""

    resources: dict[str, float] = field(default_factory=dict)
    label_selector: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ActorPlacement:
    """How many actors to start and what each asks of Ray."""

    num_workers: int
    capacity: int  # actors the cluster can host now, node by node
    options: dict  # keyword arguments of the actor's `.options()`
    bundles: list = field(default_factory=list)  # a placement group per actor; empty: none
    bundle_label_selector: list | None = None  # one selector per bundle, or none
    strategy: str | None = None  # the groups' placement strategy

    @property
    def uses_placement_groups(self) -> bool:
        return bool(self.bundles)


def alive_nodes(ray_nodes: list[dict]) -> list[Node]:
    """The live nodes of a `ray.nodes()` answer."""
    return [Node(dict(n.get("Resources") or {}), dict(n.get("Labels") or {})) for n in ray_nodes if n.get("Alive")]


def label_matches(labels: dict, selector: dict) -> bool:
    """Ray's rule: `value` and `in(...)` need the label with one of the values; `!value` and
    `!in(...)` accept a node without the label or with another value."""
    for key, expression in selector.items():
        match = SELECTOR_VALUE.fullmatch(expression)
        values = {v.strip() for v in (match["values"] or match["value"]).split(",")}
        if (labels.get(key) in values) == bool(match["negated"]):
            return False
    return True


def matching_nodes(nodes: list[Node], selector: dict, key: str) -> list[Node]:
    """The nodes `selector` (config key `key`) accepts; an error if it accepts none."""
    chosen = [node for node in nodes if label_matches(node.labels, selector)]
    if selector and not chosen:
        raise TroopError(
            f"{key}={selector} matches none of the cluster's {len(nodes)} node(s): "
            "fix the selector or start nodes with those labels (ray start --labels)"
        )
    return chosen


def fits(resources: dict, demand: dict) -> int:
    """How many copies of `demand` fit in one node's `resources`."""
    # A hair of tolerance: Ray counts in units of 1e-4, floats do not (0.3 / 0.1 < 3).
    return min((int(resources.get(k, 0) / need + 1e-9) for k, need in demand.items()), default=sys.maxsize)


def generation_demand(tensor_parallel_size: int, cpus_per_worker: float, settings: PlacementSettings, on_gpus: bool) -> dict:
    """All that one generation actor reserves on its node (its group's bundles together)."""
    demand = {"CPU": cpus_per_worker, **settings.resources}
    if on_gpus:
        demand["GPU"] = tensor_parallel_size
    return {k: v for k, v in demand.items() if v > 0}


def generation_placement(nodes: list[Node], tensor_parallel_size: int, cpus_per_worker: float,
                         num_workers: int | None = None, settings: PlacementSettings = PlacementSettings()) -> ActorPlacement:
    """The generation actors' count and requests on `nodes`; an explicit `num_workers` wins."""
    on_gpus = any(node.resources.get("GPU", 0) > 0 for node in nodes)
    demand = generation_demand(tensor_parallel_size, cpus_per_worker, settings, on_gpus)
    eligible = matching_nodes(nodes, settings.label_selector, "cluster.label_selector")
    capacity = sum(fits(node.resources, demand) for node in eligible)
    if capacity == 0:
        raise TroopError(no_room(eligible, demand, tensor_parallel_size, cpus_per_worker, bool(settings.label_selector)))
    default = capacity if on_gpus else 1  # one CPU engine already uses every core it is given
    count = num_workers or default
    if on_gpus and tensor_parallel_size > 1:
        return _grouped(count, capacity, tensor_parallel_size, cpus_per_worker, settings)
    options = _with_settings({"num_cpus": cpus_per_worker, "num_gpus": 1 if on_gpus else 0}, settings)
    return ActorPlacement(count, capacity, options)


def _grouped(count: int, capacity: int, tensor_parallel_size: int, cpus_per_worker: float, settings: PlacementSettings) -> ActorPlacement:
    """A placement group of one GPU per bundle. The actor's CPUs and the custom resources go in
    bundle 0, where the actor runs: STRICT_PACK puts every bundle on one node, so where in the
    group they sit changes nothing but that the actor can draw its CPUs from its own bundle.
    vLLM's Ray workers ask one GPU and no CPU each (vllm/v1/executor/ray_executor.py)."""
    first = {"GPU": 1, "CPU": cpus_per_worker, **settings.resources}
    bundles = [{k: v for k, v in first.items() if v > 0}] + [{"GPU": 1} for _ in range(tensor_parallel_size - 1)]
    selectors = [dict(settings.label_selector) for _ in bundles] if settings.label_selector else None
    return ActorPlacement(count, capacity, {"num_cpus": cpus_per_worker, "num_gpus": 0}, bundles, selectors, STRICT_PACK)


def _with_settings(options: dict, settings: PlacementSettings) -> dict:
    if settings.resources:
        options["resources"] = dict(settings.resources)
    if settings.label_selector:
        options["label_selector"] = dict(settings.label_selector)
    return options


def no_room(nodes: list[Node], demand: dict, tensor_parallel_size: int, cpus_per_worker: float, selected: bool) -> str:
    """Why not one generation actor fits on any of `nodes`, naming the setting to change."""
    where = "matching node (cluster.label_selector)" if selected else "node"
    settings = {"GPU": f"model.tensor_parallel_size={tensor_parallel_size}", "CPU": f"cluster.cpus_per_worker={cpus_per_worker:g}"}
    for name in sorted(demand, key=lambda k: k != "GPU"):  # the GPUs first: the usual culprit
        most = max((node.resources.get(name, 0) for node in nodes), default=0)
        if most < demand[name]:
            setting = settings.get(name, f"cluster.resources.{name}={demand[name]:g}")
            return (f"{setting} needs {demand[name]:g} {name} on one node and no {where} has more than {most:g}: "
                    f"lower {setting.split('=')[0]} or add a node with {demand[name]:g} {name}")
    return (f"no {where} has {demand} at once for one generation actor: lower model.tensor_parallel_size, "
            "cluster.cpus_per_worker or cluster.resources, or add such a node")


def verify_actor_cpus(workers: int | None, free_cpus: list[float], slots: int) -> tuple[int, float]:
    """(actors, CPUs per actor) on nodes with `free_cpus` each: by default one CPU each, as many
    as `slots` (one-CPU actors that fit node by node), or one actor on the largest fraction left
    where no whole CPU is free (other actors hold fractions); an explicit `workers` beyond the
    free CPUs shares them. So no actor waits for a CPU that never frees."""
    if workers is None:
        return (slots, 1.0) if slots else (1, cpu_share(free_cpus, 1))
    return workers, cpu_share(free_cpus, workers)


RAY_UNITS = 10_000  # Ray counts fractional resources in steps of 1/10000


def cpu_share(free_cpus: list[float], actors: int) -> float:
    """The largest CPU request, at most one CPU, with which `actors` actors fit node by node
    on `free_cpus`, in Ray's steps and rounded down: 3 actors on 2 CPUs ask 0.6666 each
    (0.6667 would need 2.0001), on two 1-CPU nodes 0.5 each (0.6666 fits once per node).
    0 where nothing is free (the actors then share what others hold)."""
    units = [round(cpus * RAY_UNITS) for cpus in free_cpus if cpus > 0]
    # The answer is some node's units split `count` ways; how many fit falls as the share grows.
    shares = sorted({min(RAY_UNITS, free // count) for free in units for count in range(1, actors + 1)} - {0})
    fitting = bisect.bisect_left(shares, True, key=lambda share: sum(free // share for free in units) < actors)
    return shares[fitting - 1] / RAY_UNITS if fitting else 0.0


def verify_placement(free: list[Node], workers: int | None = None, settings: PlacementSettings = PlacementSettings()) -> ActorPlacement:
    """The verification actors' count and requests on the nodes' `free` resources (what the
    generation actors left): CPUs, never a GPU, plus the verifier's own resources and labels."""
    eligible = matching_nodes(free, settings.label_selector, "verify.label_selector")
    free_cpus = [node.resources.get("CPU", 0) for node in eligible if fits(node.resources, settings.resources)]
    slots = sum(fits(node.resources, {"CPU": 1.0, **settings.resources}) for node in eligible)
    count, cpus = verify_actor_cpus(workers, free_cpus, slots)
    return ActorPlacement(count, slots, _with_settings({"num_cpus": cpus, "num_gpus": 0}, settings))
