import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/tiny_model.py

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A random tiny Llama built offline by test code (seconds)."""
    from tiny_model import build_tiny_llama

    return build_tiny_llama(str(tmp_path_factory.mktemp("models") / "tiny-llama"))
