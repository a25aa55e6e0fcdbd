"""Every model of the e2e matrices (tests/models/test_matrix.txt, tf_test_matrix.txt and the
committed tf2onnx exports) through bertopt.optimize_model, checked against the CLI and against
ONNX Runtime's own optimize_model on the same input with the same arguments."""

import subprocess
import warnings

import pytest
from conftest import ROOT, TF_MATRIX, fused_ops_behind, matrix_lines

import bertopt

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TF2ONNX_EXPORTS = sorted((ROOT / "tests" / "models" / "tf2onnx").glob("*.onnx"))


@pytest.fixture(scope="module")
def ort_optimizer():
    from onnxruntime.transformers import optimizer
    return optimizer


def check_model(path, model_type, cli_flags, cli, ort_optimizer, tmp_path):
    # opt_level=0 on both sides: bertopt runs no ORT pre-pass, and ORT's (opt_level >= 1) imports
    # torch, which the test venv does not have; the Python fusions are what is compared.
    ours = bertopt.optimize_model(str(path), model_type=model_type, opt_level=0)
    ours.save_model_to_file(tmp_path / "python.onnx")

    # The same model as `bertopt optimize` (which by default targets the ORT it links;
    # optimize_model, like ORT's, emits every fusion).
    subprocess.run([*cli, "optimize", "--input", str(path), "--output", str(tmp_path / "cli.onnx"),
                    "--target_ort_version", "none", *cli_flags], check=True, capture_output=True)
    assert (tmp_path / "python.onnx").read_bytes() == (tmp_path / "cli.onnx").read_bytes()

    # Outputs match the original (static exports take batch 2, sequence 16); models exported in
    # float16 compare at 1e-2, as in the e2e tests (11 significant bits).
    tolerance = {"rtol": 1e-2, "atol": 1e-2} if "_half_" in path.name else {}
    result = bertopt.compare(str(path), ours, batch_size=2, sequence_length=16, samples=3,
                             **tolerance)
    assert result["all_passed"], result

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            theirs = ort_optimizer.optimize_model(str(path), model_type=model_type, opt_level=0)
        except Exception as e:  # noqa: BLE001 - whatever ORT raises, the comparison cannot run
            pytest.skip(f"ONNX Runtime's optimize_model fails on this model: {e!r}"[:300])
    their_stats = theirs.get_fused_operator_statistics()
    our_stats = ours.get_fused_operator_statistics()
    assert set(our_stats) == set(their_stats)
    behind = fused_ops_behind(our_stats, their_stats)
    assert not behind, f"fewer fused ops than ORT (ours, ORT's): {behind}"
    if theirs.is_fully_optimized():
        assert ours.is_fully_optimized(), ours.report["missing"]
    assert ours.is_fully_optimized(our_stats) or not theirs.is_fully_optimized()
    return ours


@pytest.mark.parametrize("test_id", [test_id for test_id, _ in matrix_lines()])
def test_matrix_model(test_id, matrix_models, cli, ort_optimizer, tmp_path):
    check_model(matrix_models[test_id], "bert", [], cli, ort_optimizer, tmp_path)


@pytest.mark.parametrize("test_id", [test_id for test_id, _ in matrix_lines(TF_MATRIX)])
def test_tf_layout_model(test_id, tf_layout_models, cli, ort_optimizer, tmp_path):
    # As ORT does for these types, FusionOptions(bert_tf / bert_keras) feeds Attention the raw mask.
    model_type = "bert_keras" if test_id.startswith("keras") else "bert_tf"
    check_model(tf_layout_models[test_id], model_type,
                ["--model_type", model_type, "--use_raw_attention_mask"], cli, ort_optimizer,
                tmp_path)


@pytest.mark.parametrize("path", TF2ONNX_EXPORTS, ids=[p.stem for p in TF2ONNX_EXPORTS])
def test_tf2onnx_export(path, cli, ort_optimizer, tmp_path):
    ours = check_model(path, "bert_tf", ["--model_type", "bert_tf", "--use_raw_attention_mask"],
                       cli, ort_optimizer, tmp_path)
    assert ours.is_fully_optimized(), ours.report["missing"]
