"""The driver's Ray session: a command stops only the Ray it started itself."""

import os
import subprocess
import sys
import types

import psutil
import pytest

from jobs.cluster import session

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
    def install(initialized: bool, kind: type = FakeRay) -> FakeRay:
        ray = kind(initialized)
        monkeypatch.setitem(sys.modules, "ray", ray)
        monkeypatch.setitem(sys.modules, "ray._private", None)  # not the real one, which this process may have loaded
        monkeypatch.setattr(session, "_connected_here", False)
        monkeypatch.setattr(session, "_watchdog", None)
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


class FakeProcess:
    def __init__(self, calls):
        self.calls = calls

    def kill(self):
        self.calls.append("kill monitor")

    def wait(self, timeout):
        pass


def test_the_autoscaler_monitor_of_a_local_ray_is_killed_before_shutdown(fake_ray, monkeypatch):
    ray = fake_ray(initialized=False)
    node = types.SimpleNamespace(is_head=lambda: True,
                                 all_processes={"monitor": [types.SimpleNamespace(process=FakeProcess(ray.calls))]})
    private = types.ModuleType("ray._private")
    private.worker = types.SimpleNamespace(_global_node=node)
    private.ray_constants = types.SimpleNamespace(PROCESS_TYPE_MONITOR="monitor")
    monkeypatch.setitem(sys.modules, "ray._private", private)
    session.init_ray(None)
    session.end_ray()
    assert ray.calls == ["init", "kill monitor", "shutdown"]


def test_without_ray_internals_to_reach_shutdown_goes_on(fake_ray):
    ray = fake_ray(initialized=False)  # `ray._private` cannot be imported
    session.init_ray(None)
    session.end_ray()
    assert ray.calls == ["init", "shutdown"]


@pytest.mark.slow
def test_the_installed_rays_monitor_is_reached_and_killed(tmp_path):
    """Against the Ray installed: `_stop_local_monitor` finds the monitor of a local Ray and
    kills it while the GCS lives; the driver hears of no autoscaler failure."""
    code = """if True:
        import ray
        from ray._private import ray_constants, worker
        from jobs.cluster import session
        session.init_ray(None)
        processes = worker._global_node.all_processes
        monitor = processes[ray_constants.PROCESS_TYPE_MONITOR][0].process
        session._stop_local_monitor()
        gcs = processes[ray_constants.PROCESS_TYPE_GCS_SERVER][0].process
        print(monitor.poll() is not None, gcs.poll() is None)
        session.end_ray()
        print(ray.is_initialized())
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.stdout.split() == ["True", "True", "False"], done.stderr
    assert "autoscaler failed" not in done.stderr.lower(), done.stderr


class RayThatStartsAProcess(FakeRay):
    """`init` starts a process, as a local Ray's start does."""

    def init(self, **kwargs):
        super().init(**kwargs)
        self.started = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])


def test_a_watchdog_covers_what_the_local_ray_started_until_the_command_stops_it(fake_ray):
    ray = fake_ray(initialized=False, kind=RayThatStartsAProcess)
    try:
        session.init_ray(None)
        watchdog = session._watchdog
        assert watchdog is not None and f"[{ray.started.pid}]" in watchdog.args[-1]  # its command: what it watches
        session.end_ray()
        assert watchdog.returncode is not None and session._watchdog is None  # stopped before Ray's own shutdown
        assert ray.started.poll() is None  # what it watched is Ray's to stop
    finally:
        ray.started.kill()
        ray.started.wait()


@pytest.mark.slow
def test_a_sigkilled_command_leaves_no_process_of_its_local_ray(tmp_path):
    """Ray's fate sharing took the GCS, the raylet and the workers down with a SIGKILLed
    driver, but its DashboardAgent and RuntimeEnvAgent lived on under init."""
    code = """if True:
        import psutil, time
        from jobs.cluster import session
        session.init_ray(None)
        print(*[child.pid for child in psutil.Process().children(recursive=True)], flush=True)
        time.sleep(600)
    """
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        started = [psutil.Process(int(pid)) for pid in driver.stdout.readline().split()]
        assert {"raylet", "ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= {p.name() for p in started}
        driver.kill()
        driver.wait(30)
        _, alive = psutil.wait_procs(started, timeout=30)
        assert [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    finally:
        driver.kill()
        driver.wait(30)
