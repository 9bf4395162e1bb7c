"""The committed demo model: small, and evaluated by the demo only on questions it never saw."""

import os
import sys

from omegaconf import OmegaConf

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "demo"))

import train_model  # noqa: E402


def test_the_demo_asks_exactly_the_held_out_questions():
    demo = OmegaConf.load(os.path.join(REPO, "conf", "demo.yaml"))
    assert demo.problems.source == "arithmetic"
    assert dict(demo.problems.options) == train_model.EVAL_SET
    assert demo.model.path == "demo/model"


def test_training_never_sees_a_held_out_question():
    held_out = train_model.held_out_questions()
    trained = train_model.training_questions()
    assert len(held_out) == 100
    assert len(trained) == 20_000 - 100
    prompts = {prompt for prompt, _ in trained}
    from jobs.problems.arithmetic import format_prompt

    assert not prompts & {format_prompt(a, op, b) for a, op, b in held_out}


def test_the_committed_model_is_complete_and_under_10_mb():
    folder = os.path.join(REPO, "demo", "model")
    names = set(os.listdir(folder))
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert sum(os.path.getsize(os.path.join(folder, n)) for n in names) < 10 * 2**20
