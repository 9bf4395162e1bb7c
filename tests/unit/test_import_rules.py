"""The import rules of DESIGN.md, as import-linter contracts in pyproject.toml: this test fails
the suite when a change breaks one (workers/verifiers importing jobs, the metrics math importing
Ray or the store, anything importing the CLI, a cycle among jobs' modules, a layer skipped upward)."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_import_contracts_hold():
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    result = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Contracts: 7 kept, 0 broken." in result.stdout
