import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/tiny_model.py

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_FIXTURES = {"s3_endpoint", "s3_bucket"}  # a moto S3 server


def pytest_collection_modifyitems(items):
    """A test that needs the moto server is `slow`, whatever module it is in (the quick pass,
    `pytest -m "not integration and not slow"`, runs without servers and subprocesses)."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A random tiny Llama built offline by test code (seconds)."""
    from tiny_model import build_tiny_llama

    return build_tiny_llama(str(tmp_path_factory.mktemp("models") / "tiny-llama"))


@pytest.fixture(scope="session")
def reward_models(tmp_path_factory) -> dict[str, str]:
    """Tiny random reward models built offline by test code (tests/tiny_reward.py): outcome
    models with one and two labels, and a process reward model."""
    from tiny_reward import build_tiny_orm, build_tiny_prm

    root = tmp_path_factory.mktemp("reward-models")
    return {
        "orm1": build_tiny_orm(str(root / "orm-1-label"), num_labels=1),
        "orm2": build_tiny_orm(str(root / "orm-2-labels"), num_labels=2),
        "prm": build_tiny_prm(str(root / "prm")),
    }


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """A moto S3 server on loopback for the whole session (as s3fs's own tests run one): its URL.
    Subprocesses reach it too (AWS_ENDPOINT_URL), unlike moto's in-process mock."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch) -> str:
    """A fresh, empty bucket on the moto server; dummy credentials in the environment, and no
    endpoint there (a test that wants AWS_ENDPOINT_URL sets it)."""
    import uuid

    import s3fs

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # fsspec reuses one S3FileSystem per set of options, whatever the environment was when it was
    # made: a fresh one per test, so that each test's environment is the one in use.
    s3fs.S3FileSystem.clear_instance_cache()
    bucket = f"troop-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(endpoint_url=s3_endpoint, skip_instance_cache=True).mkdir(bucket)
    yield bucket
    s3fs.S3FileSystem.clear_instance_cache()
