"""jobs.cluster.placement: the Ray requests generation and verification actors would make on a given
cluster description (no Ray cluster, no GPU), the config keys behind them, and the engine's
executor inside a placement group."""

import pytest

from jobs.config import merge_config, merge_root_config
from jobs.errors import ConfigError, TroopError
from jobs.cluster.placement import (
    Node, PlacementSettings, alive_nodes, generation_placement, label_matches, verify_placement,
)
from jobs.stages.verification import verify_settings
from workers.engine import EngineSpec, engine_args

REQUIRED = ["run.root=/tmp/troop-run", "model.path=org/model"]


def gpu_node(gpus=8, cpus=32, **labels) -> Node:
    return Node({"CPU": cpus, "GPU": gpus, "memory": 1e12}, labels)


def cpu_node(cpus=32, **labels) -> Node:
    return Node({"CPU": cpus, "memory": 1e11}, labels)


# Generation actors on GPUs.


def test_two_8_gpu_nodes_tp1_give_16_one_gpu_actors_without_groups():
    placement = generation_placement([gpu_node(), gpu_node()], 1, 1.0)
    assert (placement.num_workers, placement.capacity) == (16, 16)
    assert placement.options == {"num_cpus": 1.0, "num_gpus": 1}
    assert (placement.bundles, placement.strategy, placement.uses_placement_groups) == ([], None, False)


def test_tp4_gives_a_strict_pack_group_of_4_gpu_bundles_per_actor():
    placement = generation_placement([gpu_node(), gpu_node()], 4, 2.0)
    assert placement.num_workers == 4
    assert placement.uses_placement_groups and placement.strategy == "STRICT_PACK"
    assert placement.bundles == [{"GPU": 1, "CPU": 2.0}, {"GPU": 1}, {"GPU": 1}, {"GPU": 1}]
    # The actor runs in bundle 0 on its CPUs; vLLM's Ray workers take the group's GPUs.
    assert placement.options == {"num_cpus": 2.0, "num_gpus": 0}
    assert placement.bundle_label_selector is None


def test_a_tensor_parallel_group_never_spans_nodes():
    """TP=3 on 8-GPU nodes: 2 groups per node, 2 GPUs idle on each; not 16 // 3 = 5."""
    assert generation_placement([gpu_node(), gpu_node()], 3, 1.0).num_workers == 4


def test_nodes_without_gpus_host_no_generation_actor_on_a_gpu_cluster():
    assert generation_placement([gpu_node(8), cpu_node(64)], 2, 1.0).num_workers == 4


def test_a_node_short_of_cpus_holds_fewer_actors():
    """8 GPUs but 3 CPUs: a fourth one-GPU actor would wait for a CPU forever."""
    assert generation_placement([gpu_node(8, cpus=3)], 1, 1.0).num_workers == 3


def test_explicit_num_workers_wins():
    placement = generation_placement([gpu_node(), gpu_node()], 4, 1.0, num_workers=3)
    assert (placement.num_workers, placement.capacity) == (3, 4)
    assert generation_placement([gpu_node()], 1, 1.0, num_workers=20).num_workers == 20  # the rest wait for nodes


def test_label_selector_restricts_the_nodes_and_passes_through():
    nodes = [gpu_node(market="spot"), gpu_node(market="on-demand"), gpu_node(4, market="on-demand")]
    settings = PlacementSettings(label_selector={"market": "on-demand"})
    one_gpu = generation_placement(nodes, 1, 1.0, settings=settings)
    assert one_gpu.num_workers == 12
    assert one_gpu.options == {"num_cpus": 1.0, "num_gpus": 1, "label_selector": {"market": "on-demand"}}
    grouped = generation_placement(nodes, 4, 1.0, settings=settings)
    assert grouped.num_workers == 3
    assert grouped.bundle_label_selector == [{"market": "on-demand"}] * 4
    assert "label_selector" not in grouped.options  # the group's bundles carry it


def test_custom_resources_are_requested_and_limit_the_count():
    nodes = [Node({"CPU": 32, "GPU": 8, "nvlink_island": 2}), gpu_node()]
    settings = PlacementSettings(resources={"nvlink_island": 1})
    one_gpu = generation_placement(nodes, 1, 1.0, settings=settings)
    assert one_gpu.num_workers == 2  # only the first node has the resource, twice
    assert one_gpu.options == {"num_cpus": 1.0, "num_gpus": 1, "resources": {"nvlink_island": 1}}
    grouped = generation_placement(nodes, 2, 1.0, settings=settings)
    assert grouped.bundles == [{"GPU": 1, "CPU": 1.0, "nvlink_island": 1}, {"GPU": 1}]
    assert grouped.options == {"num_cpus": 1.0, "num_gpus": 0}


# Clusters that cannot host one generation actor.


def test_tp_larger_than_any_node_is_a_one_line_error_naming_the_setting():
    with pytest.raises(TroopError) as caught:
        generation_placement([gpu_node(2), gpu_node(2)], 4, 1.0)
    assert str(caught.value) == (
        "model.tensor_parallel_size=4 needs 4 GPU on one node and no node has more than 2: "
        "lower model.tensor_parallel_size or add a node with 4 GPU")


def test_a_label_selector_matching_no_node_is_an_error():
    with pytest.raises(TroopError, match=r"^cluster.label_selector=\{'zone': 'b'\} matches none of the cluster's 2 node\(s\)"):
        generation_placement([gpu_node(zone="a"), gpu_node(zone="a")], 1, 1.0, settings=PlacementSettings(label_selector={"zone": "b"}))


def test_matching_nodes_without_room_name_the_selector():
    nodes = [gpu_node(8, zone="a"), gpu_node(2, zone="b")]
    with pytest.raises(TroopError, match=r"no matching node \(cluster.label_selector\) has more than 2"):
        generation_placement(nodes, 4, 1.0, settings=PlacementSettings(label_selector={"zone": "b"}))


def test_a_custom_resource_no_node_has_is_an_error():
    with pytest.raises(TroopError, match=r"^cluster.resources.tpu_slice=1 needs 1 tpu_slice on one node"):
        generation_placement([gpu_node()], 1, 1.0, settings=PlacementSettings(resources={"tpu_slice": 1}))


# Without GPUs: today's behaviour.


def test_cpu_only_cluster_runs_one_actor_on_its_cpus():
    placement = generation_placement([cpu_node(16)], 1, 1.0)
    assert (placement.num_workers, placement.options, placement.bundles) == (1, {"num_cpus": 1.0, "num_gpus": 0}, [])


def test_cpu_only_cluster_keeps_tensor_parallelism_inside_the_engine():
    placement = generation_placement([cpu_node(16), cpu_node(16)], 2, 4.0, num_workers=2)
    assert (placement.num_workers, placement.capacity, placement.options) == (2, 8, {"num_cpus": 4.0, "num_gpus": 0})
    assert not placement.uses_placement_groups


def test_ray_nodes_are_read_alive_only():
    described = [{"Alive": True, "Resources": {"CPU": 4.0, "GPU": 2.0}, "Labels": {"ray.io/node-id": "a"}},
                 {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}, "Labels": {}},
                 {"Alive": True, "Resources": {"CPU": 2.0}}]
    assert alive_nodes(described) == [Node({"CPU": 4.0, "GPU": 2.0}, {"ray.io/node-id": "a"}), Node({"CPU": 2.0}, {})]


# Label selectors, as Ray reads them.


@pytest.mark.parametrize("selector, labels, matches", [
    ({"zone": "a"}, {"zone": "a"}, True),
    ({"zone": "a"}, {"zone": "b"}, False),
    ({"zone": "a"}, {}, False),
    ({"zone": "!a"}, {"zone": "b"}, True),
    ({"zone": "!a"}, {}, True),  # a node without the label is "not a"
    ({"zone": "!a"}, {"zone": "a"}, False),
    ({"zone": "in(a, b)"}, {"zone": "b"}, True),
    ({"zone": "in(a,b)"}, {"zone": "c"}, False),
    ({"zone": "!in(a,b)"}, {"zone": "c"}, True),
    ({"zone": "!in(a,b)"}, {"zone": "a"}, False),
    ({"zone": "a", "market": "spot"}, {"zone": "a", "market": "on-demand"}, False),
    ({}, {}, True),
])
def test_label_matches(selector, labels, matches):
    assert label_matches(labels, selector) is matches


# Verification actors.


def test_verifiers_never_ask_a_gpu_and_take_one_cpu_each_of_what_is_free():
    free = [Node({"CPU": 3.5, "GPU": 8}), Node({"CPU": 2.5})]
    placement = verify_placement(free)
    # One-CPU actors fit 3 + 2 node by node (int(3.5 + 2.5) = 6 would leave one waiting).
    assert (placement.num_workers, placement.options) == (5, {"num_cpus": 1.0, "num_gpus": 0})


def test_explicit_verifiers_beyond_the_free_cpus_share_them():
    placement = verify_placement([Node({"CPU": 2.0})], workers=8)
    assert (placement.num_workers, placement.options) == (8, {"num_cpus": 0.25, "num_gpus": 0})


@pytest.mark.parametrize(("free", "workers", "share"), [
    ([2.0], 3, 0.6666),  # 0.6667 x 3 = 2.0001: the third would wait for a CPU that never frees
    ([1.0, 1.0], 3, 0.5),  # 0.6666 fits once per node: two nodes would hold two
    ([1.0, 1.0], 2, 1.0),
    ([4.0, 0.5], 5, 0.8),  # five on the first node; the 0.5 of the second holds none of 0.8
])
def test_explicit_verifiers_ask_what_fits_node_by_node(free, workers, share):
    placement = verify_placement([Node({"CPU": cpus}) for cpus in free], workers=workers)
    assert (placement.num_workers, placement.options["num_cpus"]) == (workers, share)


def test_without_a_whole_cpu_free_one_verifier_takes_the_largest_fraction_on_one_node():
    placement = verify_placement([Node({"CPU": 0.5}), Node({"CPU": 0.25})])
    assert (placement.num_workers, placement.options["num_cpus"]) == (1, 0.5)


def test_verifier_resources_and_labels_pass_through_and_bound_the_count():
    free = [Node({"CPU": 8, "sandbox_host": 1}, {"role": "cpu"}), Node({"CPU": 30}, {"role": "gpu"}),
            Node({"CPU": 16, "sandbox_host": 1}, {"role": "gpu"})]
    settings = PlacementSettings(resources={"sandbox_host": 0.25}, label_selector={"role": "cpu"})
    placement = verify_placement(free, settings=settings)
    assert placement.num_workers == 4  # the one cpu node: 8 CPUs, but 4 quarters of sandbox_host
    assert placement.options == {"num_cpus": 1.0, "num_gpus": 0, "resources": {"sandbox_host": 0.25},
                                 "label_selector": {"role": "cpu"}}


def test_a_verify_label_selector_matching_no_node_is_an_error():
    with pytest.raises(TroopError, match=r"^verify.label_selector=\{'role': 'cpu'\} matches none"):
        verify_placement([Node({"CPU": 8}, {"role": "gpu"})], settings=PlacementSettings(label_selector={"role": "cpu"}))


# The engine inside a placement group.


@pytest.mark.parametrize("tensor_parallel_size, in_group, backend", [(4, True, "ray"), (1, True, None), (4, False, None)])
def test_engine_uses_ray_executor_only_for_tensor_parallelism_in_a_group(tensor_parallel_size, in_group, backend):
    spec = EngineSpec(model="m", tensor_parallel_size=tensor_parallel_size, in_placement_group=in_group)
    assert engine_args(spec, on_cpu=False).get("distributed_executor_backend") == backend


def test_engine_kwargs_choose_the_executor_over_the_placement_group():
    spec = EngineSpec(model="m", tensor_parallel_size=4, in_placement_group=True, engine_kwargs={"distributed_executor_backend": "mp"})
    assert engine_args(spec, on_cpu=False)["distributed_executor_backend"] == "mp"


def test_placement_does_not_change_what_engine_a_spec_names():
    assert EngineSpec(model="m", tensor_parallel_size=4, in_placement_group=True) == EngineSpec(model="m", tensor_parallel_size=4)


# Config keys.


def test_placement_keys_default_to_empty_and_take_values():
    config = merge_config(None, REQUIRED + ["cluster.resources.nvlink_island=1", "cluster.label_selector.market='!spot'",
                                            "verify.resources.sandbox_host=0.5", "verify.label_selector.role=in(cpu,general)"])
    assert (config.cluster.resources, config.cluster.label_selector) == ({"nvlink_island": 1.0}, {"market": "!spot"})
    assert (config.verify.resources, config.verify.label_selector) == ({"sandbox_host": 0.5}, {"role": "in(cpu,general)"})
    defaults = merge_config(None, REQUIRED)
    assert (defaults.cluster.resources, defaults.cluster.label_selector, defaults.verify.resources, defaults.verify.label_selector) == ({}, {}, {}, {})


def test_verify_placement_keys_leave_the_verifier_settings_alone():
    plain = merge_config(None, REQUIRED)
    placed = merge_config(None, REQUIRED + ["verify.resources.sandbox_host=1", "verify.label_selector.role=cpu"])
    assert verify_settings(placed.verify) == verify_settings(plain.verify)


@pytest.mark.parametrize("override, message", [
    ("cluster.resources.nvlink_island=-1", "config key 'cluster.resources.nvlink_island' is -1.0: it must be a number >= 0.0001"),
    ("cluster.resources.nvlink_island=0", "config key 'cluster.resources.nvlink_island' is 0.0: it must be a number >= 0.0001"),
    ("cluster.resources.GPU=2", "config key 'cluster.resources.GPU' is not a custom resource: remove it (GPUs are set by their own keys)"),
    ("verify.resources.CPU=2", "config key 'verify.resources.CPU' is not a custom resource: remove it (CPUs are set by their own keys)"),
    ("cluster.label_selector.zone=in()", "config key 'cluster.label_selector.zone' is 'in()' is not a label selector: "
                                         "write 'value', '!value', 'in(a,b)' or '!in(a,b)'"),
    ("verify.label_selector.zone=a b", "config key 'verify.label_selector.zone' is 'a b' is not a label selector: "
                                       "write 'value', '!value', 'in(a,b)' or '!in(a,b)'"),
    ("cluster.cpus_per_worker=0", "config key 'cluster.cpus_per_worker' is 0.0: it must be > 0"),
])
def test_bad_placement_values_are_one_line_errors_naming_the_key(override, message):
    with pytest.raises(ConfigError) as caught:
        merge_config(None, REQUIRED + [override])
    assert str(caught.value) == message


def test_an_unquoted_negated_selector_override_is_a_one_line_error():
    """A command-line value is read as YAML, where `!spot` is a tag, not a string."""
    with pytest.raises(ConfigError, match=r"^override 'cluster.label_selector.market=!spot' is not valid YAML .*: quote the value"):
        merge_config(None, REQUIRED + ["cluster.label_selector.market=!spot"])


def test_bad_verify_placement_values_are_refused_for_an_existing_root_too():
    with pytest.raises(ConfigError, match=r"^config key 'verify.resources.sandbox_host' is -2.0"):
        merge_root_config("/r", None, ["verify.resources.sandbox_host=-2"])


def test_a_verifier_takes_the_fraction_left_where_no_whole_cpu_is_free():
    """An engine actor holds 1 of 2 CPUs and a scoring actor 0.1: one verifier on the 0.9 left,
    not one that waits for a whole CPU forever; nothing left: one that shares (0 CPUs)."""
    placement = verify_placement([Node({"CPU": 0.9})])
    assert (placement.num_workers, placement.options["num_cpus"]) == (1, 0.9)
    assert verify_placement([Node({"CPU": 0.0})]).options["num_cpus"] == 0.0
