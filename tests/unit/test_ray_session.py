"""The driver's Ray session: a command stops only the Ray it started itself."""

import sys
import types

import pytest

from jobs.cluster import session


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
