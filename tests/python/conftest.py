"""Fixtures for the pytest suite, which runs against the INSTALLED bertopt package (make test
installs it into build/venv with `pip install .`), with PyPI onnxruntime as the reference."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MATRIX = ROOT / "tests" / "models" / "test_matrix.txt"
GEN_BERT = ROOT / "tests" / "models" / "gen_bert.py"
# The model generator needs Debian's python3-torch, so it runs under the system interpreter.
GEN_PYTHON = os.environ.get("BERTOPT_GEN_PYTHON", "/usr/bin/python3")


def matrix_lines():
    """(test id, gen_bert.py options) for each model of the e2e matrix, in file order."""
    out = []
    for line in MATRIX.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(("-".join(w.lstrip("-") for w in words if w != "--kind"), words))
    return out


@pytest.fixture(scope="session")
def matrix_models():
    """{test id: model path}: generated (or found in tests/models/cache) by gen_bert.py."""
    result = subprocess.run([GEN_PYTHON, str(GEN_BERT), "--batch_file", str(MATRIX)],
                            capture_output=True, text=True, check=True)
    paths = result.stdout.split()
    lines = matrix_lines()
    assert len(paths) == len(lines), result.stderr
    return {test_id: Path(p) for (test_id, _), p in zip(lines, paths)}


@pytest.fixture(scope="session")
def bert_model(matrix_models):
    """A small dynamic PyTorch BERT (2 layers, hidden 64)."""
    return matrix_models["bert_seq-opset-11"]


@pytest.fixture(scope="session")
def cli():
    """The CLI to compare against: BERTOPT_CLI (make test sets it to the built binary), else
    `python -m bertopt`."""
    binary = os.environ.get("BERTOPT_CLI")
    return [binary] if binary else [sys.executable, "-m", "bertopt"]
