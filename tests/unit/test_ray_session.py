"""The driver's Ray session: a command stops only the Ray it started itself, and the gold
self-check that runs while Ray starts hands its result, or its error, to whoever settles it."""

import sys
import types

import pyarrow as pa
import pytest

from jobs.cluster import session
from jobs.config import VerifyConfig
from jobs.errors import TroopError
from jobs.usecases.verify import in_background, prepare_verification


class FakeRay(types.ModuleType):
    def __init__(self, initialized: bool):
        super().__init__("ray")
        self.initialized, self.calls = initialized, []

    def is_initialized(self):
        return self.initialized

    def init(self, **kwargs):
        self.calls.append("init")
        self.initialized = True

    def shutdown(self):
        self.calls.append("shutdown")
        self.initialized = False


@pytest.fixture
def fake_ray(monkeypatch):
    def install(initialized: bool) -> FakeRay:
        ray = FakeRay(initialized)
        monkeypatch.setitem(sys.modules, "ray", ray)
        monkeypatch.setattr(session, "_connected_here", False)
        return ray
    return install


def test_a_command_stops_the_ray_it_started(fake_ray):
    ray = fake_ray(initialized=False)
    session.init_ray(None)
    session.init_ray(None)  # once per process
    session.end_ray()
    session.end_ray()
    assert ray.calls == ["init", "shutdown"]


def test_a_session_opened_before_the_command_is_left_open(fake_ray):
    ray = fake_ray(initialized=True)  # a test's session, or a caller's
    session.init_ray(None)
    session.end_ray()
    assert ray.calls == [] and ray.initialized


def test_the_background_self_check_hands_over_its_result_or_its_error():
    assert in_background(lambda a, b: a + b, 2, 3).result(timeout=10) == 5

    def fails():
        raise TroopError("gold answers unreadable")

    with pytest.raises(TroopError, match="gold answers unreadable"):
        in_background(fails).result(timeout=10)


def test_prepared_verification_settles_the_gold_self_check_once():
    problems = pa.table({"problem_id": ["a", "b", "c"], "answer": ["3", "$1,000", "no number"]})
    job = prepare_verification(VerifyConfig(verifier="numeric"), problems, "problems.parquet")
    assert job.summary.gold_self_check is None  # running, not settled
    job.settle()
    assert job.summary.gold_self_check == (2, 3)
    job.settle()
    assert job.summary.gold_self_check == (2, 3)
