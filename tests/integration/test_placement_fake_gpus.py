"""Placement against a real Ray that declares GPUs it does not have (`ray.init(num_gpus=4)`):
the placement groups, bundles, assigned resources and clean-up that `generation_pool` makes for
tensor parallelism, with scripted workers instead of engines (no GPU here to load one). The
requests themselves are unit-tested in tests/unit/test_placement.py; this checks Ray takes them.

The script runs in its own process: it needs a Ray of its own with fake GPUs, custom resources
and labels, apart from the session's."""

import json
import subprocess
import sys

SCRIPT = r'''
import json, os, ray
ray.init(num_cpus=4, num_gpus=4, resources={"island": 2}, labels={"zone": "a"}, include_dashboard=False,
         log_to_driver=False)
from jobs.cluster.placement import PlacementSettings
from jobs.cluster.pools import generation_pool
from jobs.errors import TroopError
from workers.engine import EngineSpec, engine_args


class Worker:
    def __init__(self, spec):
        self.spec = spec

    def ready(self):
        return os.getpid()

    def close(self):
        pass

    def info(self):
        group = ray.util.get_current_placement_group()
        return {"executor": engine_args(self.spec, on_cpu=False).get("distributed_executor_backend"),
                "bundles": group.bundle_specs if group else None,
                "assigned": ray.get_runtime_context().get_assigned_resources()}


def states():
    return sorted(v["state"] for v in ray.util.placement_group_table().values())


out = {}
settings = PlacementSettings({"island": 1}, {"zone": "a"})
pool = generation_pool(EngineSpec(model="m", tensor_parallel_size=2), None, 1.0, worker_class=Worker, placement=settings)
out["tp2_workers"] = pool.num_workers
out["tp2_info"] = ray.get([a.info.remote() for a in pool.actors])
out["tp2_strategies"] = sorted(v["strategy"] for v in ray.util.placement_group_table().values())
pool.shutdown()
out["after_shutdown"] = states()
single = generation_pool(EngineSpec(model="m"), None, 1.0, worker_class=Worker)
out["tp1_workers"] = single.num_workers
out["tp1_info"] = ray.get(single.actors[0].info.remote())
single.shutdown()
try:
    generation_pool(EngineSpec(model="m", tensor_parallel_size=8), None, 1.0, worker_class=Worker)
except TroopError as err:
    out["tp8_error"] = str(err)
print("RESULT " + json.dumps(out))
'''


def test_tensor_parallel_actors_get_strict_pack_groups_on_a_ray_with_fake_gpus(tmp_path):
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))[7:])
    # 4 GPUs, TP=2, one island resource per actor (2 on the node): 2 actors.
    assert out["tp2_workers"] == 2
    assert out["tp2_strategies"] == ["STRICT_PACK", "STRICT_PACK"]
    for info in out["tp2_info"]:
        assert info["executor"] == "ray"  # vLLM runs its ranks in the actor's group
        assert info["bundles"] == [{"GPU": 1.0, "CPU": 1.0, "island": 1.0}, {"GPU": 1.0}]
        assert info["assigned"].get("GPU", 0) == 0 and info["assigned"]["CPU"] == 1.0  # the ranks take the GPUs
    assert out["after_shutdown"] == ["REMOVED", "REMOVED"]
    # TP=1: one GPU per actor, no group, vLLM's own executor.
    assert out["tp1_workers"] == 4
    assert out["tp1_info"]["bundles"] is None and out["tp1_info"]["executor"] is None
    assert out["tp1_info"]["assigned"]["GPU"] == 1.0
    assert "model.tensor_parallel_size=8" in out["tp8_error"] and "\n" not in out["tp8_error"]
