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
TF_MATRIX = ROOT / "tests" / "models" / "tf_test_matrix.txt"
GEN_TF_LAYOUTS = ROOT / "tests" / "models" / "gen_tf_layouts.py"
# The model generator needs Debian's python3-torch, so it runs under the system interpreter.
GEN_PYTHON = os.environ.get("BERTOPT_GEN_PYTHON", "/usr/bin/python3")


def matrix_lines(matrix=MATRIX):
    """(test id, generator options) for each model of an e2e matrix, in file order."""
    out = []
    for line in matrix.read_text().splitlines():
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
def tf_layout_models():
    """{test id: model path} for tf_test_matrix.txt (keras2onnx and tf2onnx 1.6 layouts)."""
    result = subprocess.run([GEN_PYTHON, str(GEN_TF_LAYOUTS), "--batch_file", str(TF_MATRIX)],
                            capture_output=True, text=True, check=True)
    paths = result.stdout.split()
    lines = matrix_lines(TF_MATRIX)
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


# LayerNorms that end up inside a larger fused op: a SkipLayerNormalization (with its residual
# Add) or an EmbedLayerNormalization (with the embedding sum).
LAYER_NORM_FAMILY = ("LayerNormalization", "SkipLayerNormalization", "EmbedLayerNormalization")


def fused_ops_behind(ours, theirs):
    """{op: (ours, ORT's)} for every fused op where bertopt has fewer than ORT. One trade is not
    counted: a LayerNormalization or SkipLayerNormalization short is fine when the family's total
    is not (ORT leaves DistilBERT's embedding LayerNorm a SkipLayerNormalization where bertopt
    makes it EmbedLayerNormalization; on tf2onnx 1.6's 2-D encoder bertopt fuses residual
    LayerNorms into SkipLayerNormalization where ORT keeps LayerNormalization)."""
    behind = {op: (ours[op], n) for op, n in theirs.items() if ours[op] < n}
    if sum(ours[op] for op in LAYER_NORM_FAMILY) >= sum(theirs[op] for op in LAYER_NORM_FAMILY):
        for op in ("LayerNormalization", "SkipLayerNormalization"):
            behind.pop(op, None)
    return behind
