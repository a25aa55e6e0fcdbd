"""The Python API: inputs left alone, FusionOptions, errors with the CLI's messages and exit
codes, compare / perf / `python -m bertopt` against the CLI, saving, the README example."""

import doctest
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import ROOT
from onnx import numpy_helper

import bertopt

TF_MODEL = ROOT / "tests" / "models" / "tf2onnx" / "tf2onnx_seq_erf_op13_dynamic.onnx"


def run_cli(cli, *args):
    return subprocess.run([*cli, *map(str, args)], capture_output=True, text=True)


def cli_optimize(cli, model, output, *flags):
    r = run_cli(cli, "optimize", "--input", model, "--output", output, "--target_ort_version",
                "none", *flags)
    assert r.returncode == 0, r.stderr
    return Path(output).read_bytes()


def saved_bytes(m, path):
    m.save_model_to_file(path)
    return Path(path).read_bytes()


# --- inputs ---------------------------------------------------------------------------------

def test_model_proto_input_is_untouched_and_gives_the_path_result(bert_model, tmp_path):
    proto = onnx.load(str(bert_model))
    before = proto.SerializeToString()
    from_proto = bertopt.optimize_model(proto)
    assert proto.SerializeToString() == before
    from_path = bertopt.optimize_model(str(bert_model))
    assert from_proto.model.SerializeToString() == from_path.model.SerializeToString()
    assert from_proto.model is not proto
    assert len(from_proto.model.graph.node) < len(proto.graph.node)


def test_input_file_is_never_written_over(bert_model, tmp_path):
    model = tmp_path / "bert.onnx"
    shutil.copy(bert_model, model)
    before = model.read_bytes()
    m = bertopt.optimize_model(model)  # a PathLike works too
    with pytest.raises(bertopt.BadInputError) as e:
        m.save_model_to_file(model)
    assert e.value.exit_code == 2 and "bert.onnx" in str(e.value)
    assert model.read_bytes() == before
    m.save_model_to_file(model, overwrite=True)
    assert model.read_bytes() != before


def test_external_data_format(bert_model, tmp_path):
    m = bertopt.optimize_model(str(bert_model))
    out = tmp_path / "ext.onnx"
    m.save_model_to_file(out, use_external_data_format=True)
    assert (tmp_path / "ext.onnx.data").stat().st_size > 0
    assert out.stat().st_size < (tmp_path / "ext.onnx.data").stat().st_size
    # Reloaded (external data read back in, by bertopt and by onnx) it is the same model.
    again = bertopt.optimize_model(out)
    assert again.get_fused_operator_statistics() == m.get_fused_operator_statistics()
    loaded = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer}
    for t in m.model.graph.initializer:
        np.testing.assert_array_equal(loaded[t.name], numpy_helper.to_array(t))


def test_bert_type_takes_tensorflow_exports():
    m = bertopt.optimize_model(str(TF_MODEL))  # model_type="bert", ORT's default
    assert m.report["model_type"] == "bert_tf"
    assert "tf2onnx" in m.report["model_type_evidence"]
    assert m.is_fully_optimized(), m.report["missing"]
    explicit = bertopt.optimize_model(str(TF_MODEL), model_type="bert_tf")
    # ORT's defaults for bert_tf feed Attention the raw mask, as FusionOptions("bert_tf") does.
    assert explicit.model.SerializeToString() != m.model.SerializeToString()
    raw = bertopt.FusionOptions("bert")
    raw.use_raw_attention_mask()
    same = bertopt.optimize_model(str(TF_MODEL), optimization_options=raw)
    assert same.model.SerializeToString() == explicit.model.SerializeToString()


# --- the report -----------------------------------------------------------------------------

def test_report_is_plain_data_and_matches_the_cli_json(bert_model, cli, tmp_path):
    m = bertopt.optimize_model(str(bert_model))
    report = json.loads(json.dumps(m.report))  # plain data: survives JSON unchanged
    assert report == m.report
    r = run_cli(cli, "optimize", "--input", bert_model, "--output", tmp_path / "o.onnx",
                "--target_ort_version", "none", "--json")
    assert r.returncode == 0, r.stderr
    theirs = json.loads(r.stdout)
    for key in ("model_type", "fused_ops", "layers", "fully_optimized", "missing",
                "nodes_before", "nodes_after", "warnings", "target"):
        assert m.report[key] == theirs[key], key
    strip = [{k: v for k, v in p.items() if k != "seconds"} for p in m.report["passes"]]
    assert strip == [{k: v for k, v in p.items() if k != "seconds"} for p in theirs["passes"]]
    fused = {k: v for k, v in m.get_fused_operator_statistics().items() if v}
    assert fused == {k: v for k, v in m.report["fused_ops"].items() if v}


def test_misses_say_why(bert_model):
    options = bertopt.FusionOptions("bert")
    options.enable_embed_layer_norm = False
    m = bertopt.optimize_model(str(bert_model), optimization_options=options)
    assert not m.is_fully_optimized()
    assert any("EmbedLayerNormalization" in x for x in m.report["missing"])
    assert m.get_fused_operator_statistics()["EmbedLayerNormalization"] == 0


def test_verbose_prints_the_report(bert_model, capsys):
    bertopt.optimize_model(str(bert_model), verbose=True)
    out = capsys.readouterr().out
    assert "verdict: fully optimized (2 layers)" in out
    assert "attention" in out.lower() and "candidates" in out


def test_convert_float_to_float16_keeps_io_types_and_outputs(bert_model, tmp_path):
    m = bertopt.optimize_model(str(bert_model))
    m.convert_float_to_float16(keep_io_types=True)
    weights = [t for t in m.model.graph.initializer if len(t.dims) == 2]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in m.model.graph.output)
    assert m.report["float16"]["tensors_converted"] > 0
    out = tmp_path / "fp16.onnx"
    m.save_model_to_file(str(out))
    report = bertopt.compare(str(bert_model), str(out), rtol=1e-2, atol=1e-2, samples=3,
                             batch_size=2, sequence_length=16, write_test_data=False)
    assert report["all_passed"], report
    with pytest.raises(bertopt.BadInputError, match="unsupported"):
        m.convert_float_to_float16(min_positive_val=1e-7)


# --- FusionOptions --------------------------------------------------------------------------

def test_fusion_options_have_ort_names_and_defaults():
    from onnxruntime.transformers.fusion_options import FusionOptions as OrtFusionOptions
    for model_type in ("bert", "bert_tf", "bert_keras"):
        ort, ours = vars(OrtFusionOptions(model_type)), vars(bertopt.FusionOptions(model_type))
        assert set(ort) - {"model_type"} <= set(ours), set(ort) - set(ours)
        for name, value in ort.items():
            assert ours[name] == value, (model_type, name)


SWITCHES = [("enable_attention", "--disable_attention", "Attention"),
            ("enable_skip_layer_norm", "--disable_skip_layer_norm", "SkipLayerNormalization"),
            ("enable_embed_layer_norm", "--disable_embed_layer_norm", "EmbedLayerNormalization"),
            ("enable_bias_gelu", "--disable_bias_gelu", "BiasGelu"),
            ("enable_gelu", "--disable_gelu", None),
            ("enable_layer_norm", "--disable_layer_norm", None)]


@pytest.mark.parametrize("name,flag,op", SWITCHES)
def test_fusion_switch_is_the_cli_flag(name, flag, op, bert_model, cli, tmp_path):
    options = bertopt.FusionOptions("bert")
    setattr(options, name, False)
    m = bertopt.optimize_model(str(bert_model), optimization_options=options)
    assert saved_bytes(m, tmp_path / "py.onnx") == cli_optimize(cli, bert_model,
                                                                tmp_path / "cli.onnx", flag)
    default = bertopt.optimize_model(str(bert_model))
    assert m.model.SerializeToString() != default.model.SerializeToString()
    if op:
        assert m.get_fused_operator_statistics()[op] == 0


def test_raw_attention_mask_is_the_cli_flag(bert_model, cli, tmp_path):
    options = bertopt.FusionOptions("bert")
    options.use_raw_attention_mask()
    m = bertopt.optimize_model(str(bert_model), optimization_options=options)
    assert saved_bytes(m, tmp_path / "py.onnx") == cli_optimize(
        cli, bert_model, tmp_path / "cli.onnx", "--use_raw_attention_mask")


def test_ort_fusion_options_object_is_accepted(bert_model):
    from onnxruntime.transformers.fusion_options import FusionOptions as OrtFusionOptions
    theirs, ours = OrtFusionOptions("bert"), bertopt.FusionOptions("bert")
    theirs.enable_bias_gelu = ours.enable_bias_gelu = False
    a = bertopt.optimize_model(str(bert_model), optimization_options=theirs)
    b = bertopt.optimize_model(str(bert_model), optimization_options=ours)
    assert a.model.SerializeToString() == b.model.SerializeToString()
    assert a.get_fused_operator_statistics()["BiasGelu"] == 0


def test_unknown_option_name_is_an_attribute_error():
    options = bertopt.FusionOptions("bert")
    with pytest.raises(AttributeError, match="enable_gelu_aproximation"):
        options.enable_gelu_aproximation = True


@pytest.mark.parametrize("change,name", [
    (lambda o: setattr(o, "enable_gelu_approximation", True), "enable_gelu_approximation"),
    (lambda o: setattr(o, "use_multi_head_attention", True), "use_multi_head_attention"),
    (lambda o: setattr(o, "enable_bias_skip_layer_norm", False), "enable_bias_skip_layer_norm"),
    (lambda o: setattr(o, "enable_gemm_fast_gelu", True), "enable_gemm_fast_gelu"),
    (lambda o: o.disable_attention_mask(), "attention_mask_format"),
    (lambda o: o.set_attention_op_type(bertopt.AttentionOpType.MultiHeadAttention),
     "attention_op_type"),
])
def test_unsupported_option_value_is_named(change, name, bert_model):
    options = bertopt.FusionOptions("bert")
    change(options)
    with pytest.raises(bertopt.BadInputError, match=name):
        bertopt.optimize_model(str(bert_model), optimization_options=options)


# --- arguments ORT has and bertopt does not act on ------------------------------------------

def test_opt_level_warns_that_no_ort_pre_pass_runs(bert_model):
    with pytest.warns(bertopt.BertoptWarning, match="opt_level=1"):
        m = bertopt.optimize_model(str(bert_model), opt_level=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = bertopt.optimize_model(str(bert_model), opt_level=0)
    assert m.model.SerializeToString() == plain.model.SerializeToString()


def test_only_onnxruntime_and_other_model_types_are_errors(bert_model):
    with pytest.raises(bertopt.BadInputError, match="only_onnxruntime"):
        bertopt.optimize_model(str(bert_model), only_onnxruntime=True)
    with pytest.raises(bertopt.BadInputError, match="gpt2"):
        bertopt.optimize_model(str(bert_model), model_type="gpt2")
    with pytest.raises(TypeError):
        bertopt.optimize_model(b"not a model")


# --- errors: the CLI's message and exit code ------------------------------------------------

def cli_error(cli, *args):
    r = run_cli(cli, *args)
    prefix = "bertopt optimize: "
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(prefix), r.stderr
    return r.returncode, line[len(prefix):]


@pytest.mark.parametrize("case", ["missing", "truncated", "not_onnx", "num_heads"])
def test_errors_carry_the_cli_message_and_exit_code(case, bert_model, cli, tmp_path):
    model, kwargs, flags = tmp_path / "bad.onnx", {}, []
    if case == "truncated":
        model.write_bytes(bert_model.read_bytes()[:5000])
    elif case == "not_onnx":
        model.write_text("this is not a model\n")
    elif case == "num_heads":
        model = bert_model
        kwargs, flags = {"num_heads": 3}, ["--num_heads", "3"]
    code, message = cli_error(cli, "optimize", "--input", model, "--output",
                              tmp_path / "out.onnx", *flags)
    with pytest.raises(bertopt.Error) as e:
        bertopt.optimize_model(str(model), **kwargs)
    assert isinstance(e.value, bertopt.BadInputError) and e.value.exit_code == code == 2
    assert str(e.value) == message


def test_compare_mismatch_and_json_match_the_cli(bert_model, cli, tmp_path):
    m = bertopt.optimize_model(str(bert_model))
    good = tmp_path / "good" / "opt.onnx"
    good.parent.mkdir()
    m.save_model_to_file(good)
    result = bertopt.compare(str(bert_model), str(good), samples=3, sequence_length=16)
    r = run_cli(cli, "compare", "--baseline_model", bert_model, "--optimized_model", good,
                "--samples", 3, "--sequence_length", 16, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == result
    assert result["all_passed"] and result["passed"] == 3
    assert (Path(result["test_data_dir"]) / "input_0.pb").exists()

    # A wrong weight: every sample fails; the CLI exits 1, check=True raises FailedError.
    broken = onnx.ModelProto()
    broken.CopyFrom(m.model)
    skip = next(n for n in broken.graph.node if n.op_type == "SkipLayerNormalization")
    gamma = next(t for t in broken.graph.initializer if t.name == skip.input[2])
    gamma.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(gamma) * 2, gamma.name))
    bad = tmp_path / "bad.onnx"
    bertopt.OptimizedModel(broken, m.report).save_model_to_file(bad)
    result = bertopt.compare(str(bert_model), bad, samples=3, sequence_length=16)
    assert not result["all_passed"] and result["passed"] == 0
    r = run_cli(cli, "compare", "--baseline_model", bert_model, "--optimized_model", bad,
                "--samples", 3, "--sequence_length", 16, "--json")
    assert r.returncode == 1 and json.loads(r.stdout) == result
    with pytest.raises(bertopt.FailedError) as e:
        bertopt.compare(str(bert_model), bad, samples=3, sequence_length=16, check=True)
    assert e.value.exit_code == 1 and "0 of 3 samples passed" in str(e.value)


def test_compare_bad_input(bert_model, cli, tmp_path):
    r = run_cli(cli, "compare", "--baseline_model", bert_model, "--optimized_model",
                tmp_path / "missing.onnx")
    with pytest.raises(bertopt.BadInputError) as e:
        bertopt.compare(str(bert_model), tmp_path / "missing.onnx")
    assert r.returncode == e.value.exit_code == 2
    assert r.stderr.strip().endswith(str(e.value))


def test_perf_matches_the_cli_json(bert_model, cli, tmp_path):
    settings = dict(batch_size=[1, 2], sequence_length=16, samples=2, test_times=3, warmup=1,
                    intra_op_num_threads=1)
    ours = bertopt.perf([bert_model, bert_model], output=tmp_path / "py.tsv", **settings)
    r = run_cli(cli, "perf", "--model", bert_model, bert_model, "--batch_size", 1, 2,
                "--sequence_length", 16, "--samples", 2, "--test_times", 3, "--warmup", 1,
                "--intra_op_num_threads", 1, "--output", tmp_path / "cli.tsv", "--json")
    assert r.returncode == 0, r.stderr
    theirs = json.loads(r.stdout)
    assert list(ours) == list(theirs)
    assert len(ours["results"]) == len(theirs["results"]) == 4
    assert ours["models"][0]["path"] == theirs["models"][0]["path"]
    assert all(row["p50_ms"] > 0 and row["runs"] == 3 for row in ours["results"])
    assert sorted((r["model"], r["batch_size"]) for r in ours["results"]) == \
        sorted((r["model"], r["batch_size"]) for r in theirs["results"])
    assert Path(ours["output"]).read_text().count("\n") == 5
    with pytest.raises(bertopt.BadInputError, match="--batch_size"):
        bertopt.perf(bert_model, batch_size=0)


def test_python_m_bertopt_runs_the_cli(bert_model, tmp_path):
    py = [sys.executable, "-m", "bertopt"]
    r = run_cli(py, "optimize", "--input", bert_model, "--output", tmp_path / "o.onnx", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["fully_optimized"]
    # The CLI's default target is the ORT it links; optimize_model's is every fusion.
    linked = bertopt._core.ort_version()
    m = bertopt.optimize_model(bert_model, target_ort_version=linked)
    assert saved_bytes(m, tmp_path / "py.onnx") == (tmp_path / "o.onnx").read_bytes()
    assert linked.rsplit(".", 1)[0] in m.report["target"]
    assert run_cli(py, "optimize", "--output", tmp_path / "x.onnx").returncode == 2
    assert run_cli(py, "frobnicate").returncode == 2
    r = run_cli(py, "compare", "--help")
    assert r.returncode == 0 and "--baseline_model" in r.stdout


# --- README ---------------------------------------------------------------------------------

def test_readme_example(bert_model, tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use from Python", 1)[1].split("\n## ", 1)[0]
    # A code fence ends an example's expected output, as a blank line does.
    section = "\n".join("" if line.startswith("```") else line for line in section.splitlines())
    test = doctest.DocTestParser().get_doctest(section, {}, "README", "README.md", 0)
    assert test.examples
    shutil.copy(bert_model, tmp_path / "bert.onnx")
    monkeypatch.chdir(tmp_path)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_type_stub_covers_the_public_api():
    import ast
    stub = ast.parse((Path(bertopt.__file__).parent / "__init__.pyi").read_text())
    names = {n.name for n in stub.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    names |= {n.target.id for n in stub.body if isinstance(n, ast.AnnAssign)}
    assert set(bertopt.__all__) <= names, set(bertopt.__all__) - names
    assert all(hasattr(bertopt, name) for name in names), [n for n in names
                                                           if not hasattr(bertopt, n)]
    assert (Path(bertopt.__file__).parent / "py.typed").exists()
