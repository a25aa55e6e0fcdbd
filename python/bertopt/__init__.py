"""bertopt: rewrites BERT ONNX models into ONNX Runtime's fused operators.

A drop-in for ``onnxruntime.transformers.optimizer.optimize_model`` for the BERT family
(PyTorch, tf2onnx and keras2onnx exports), running bertopt's C++ core in this process::

    import bertopt
    m = bertopt.optimize_model("bert.onnx")            # or an onnx.ModelProto
    m.get_fused_operator_statistics(), m.is_fully_optimized(), m.report["missing"]
    m.save_model_to_file("bert_opt.onnx")
    bertopt.compare("bert.onnx", "bert_opt.onnx")["all_passed"]

``python -m bertopt optimize|compare|perf ...`` runs the CLI with the same flags.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from typing import Any, Sequence

import onnx

from . import _core
from ._errors import BadInputError, Error, FailedError
from ._model import FUSED_OPERATORS, OptimizedModel
from ._options import AttentionMaskFormat, AttentionOpType, FusionOptions, _resolve

__version__ = "0.1.0"
__all__ = [
    "AttentionMaskFormat", "AttentionOpType", "BadInputError", "BertoptWarning", "Error",
    "FailedError", "FusionOptions", "OptimizedModel", "compare", "format_report", "optimize_model",
    "perf", "FUSED_OPERATORS", "MODEL_TYPES", "HAS_ORT",
]

#: The model types optimize_model accepts. "bert" (ORT's default) takes every BERT layout, TF ones
#: included: the exporter is detected, and the passes recognise all three exporters' spellings.
MODEL_TYPES = ("bert", "bert_tf", "bert_keras")
#: Whether compare, perf and ``python -m bertopt`` are available (the ORT SDK was found at build).
HAS_ORT: bool = bool(_core.has_ort)


class BertoptWarning(UserWarning):
    """Something the user should know that did not stop the work."""


def optimize_model(input: str | os.PathLike[str] | onnx.ModelProto, model_type: str = "bert",
                   num_heads: int = 0, hidden_size: int = 0,
                   optimization_options: FusionOptions | Any | None = None,
                   opt_level: int | None = None, use_gpu: bool = False,
                   only_onnxruntime: bool = False, verbose: bool = False, *,
                   provider: str | None = None,
                   target_ort_version: str | None = None) -> OptimizedModel:
    """Fuses a BERT-family ONNX model into ONNX Runtime's fused operators.

    Arguments as ``onnxruntime.transformers.optimizer.optimize_model``:

    - ``input``: a model path (external data is read in) or an ``onnx.ModelProto``, which is
      never modified.
    - ``model_type``: ``"bert"`` (ORT's default) detects the exporter, so it takes tf2onnx and
      keras2onnx exports too; ``"bert_tf"`` / ``"bert_keras"`` name it (a contradiction with the
      model's producer is a BertoptWarning). Other ORT types raise BadInputError.
    - ``num_heads``, ``hidden_size``: 0 reads them from the graph; given, they are checked.
    - ``optimization_options``: a FusionOptions (bertopt's or ORT's); None uses
      ``FusionOptions(model_type)`` as ORT does (the raw attention mask for bert_tf/bert_keras).
    - ``opt_level``: bertopt does not run ONNX Runtime's own graph optimizer first. A level
      above 0 gives a BertoptWarning saying so, and the fusions run as with 0; ORT still applies
      its optimizations at the level of the session that loads the model.
    - ``only_onnxruntime=True`` raises BadInputError: that is ORT's optimizer, not bertopt.
    - ``use_gpu``, ``provider``: only choose how ORT's pre-pass runs, so they change nothing.
    - ``verbose``: prints the report as ``bertopt optimize --verbose`` does.

    bertopt's own keyword: ``target_ort_version`` (e.g. ``"1.30"``) leaves out fusions that run
    slower on that ORT version (as the CLI does by default for the ORT it links); None emits
    every fusion, as ONNX Runtime's optimize_model does.

    Returns an OptimizedModel. Raises BadInputError (the CLI's exit code 2) for bad input,
    FailedError (exit code 1) for an internal failure, with the CLI's message.
    """
    if model_type not in MODEL_TYPES:
        raise BadInputError(
            f"model_type '{model_type}': bertopt optimizes the BERT family only "
            f"({', '.join(MODEL_TYPES)})", "invalid argument")
    if only_onnxruntime:
        raise BadInputError(
            "only_onnxruntime=True: bertopt does not run ONNX Runtime's graph optimizer; use "
            "onnxruntime.transformers.optimizer.optimize_model for that", "invalid argument")
    if opt_level not in (None, 0, 1, 2, 99):
        raise BadInputError(f"opt_level {opt_level!r}: expected None, 0, 1, 2 or 99",
                            "invalid argument")
    if opt_level:
        warnings.warn(
            f"opt_level={opt_level}: bertopt does not run ONNX Runtime's graph optimizer before "
            f"its fusions (ORT applies it itself when a session loads the model); the fusions "
            f"ran as with opt_level=0", BertoptWarning, stacklevel=2)
    for name, value in (("num_heads", num_heads), ("hidden_size", hidden_size)):
        if not isinstance(value, int) or value < 0:
            raise BadInputError(f"{name} {value!r}: expected 0 (read from the graph) or a "
                                f"positive int", "invalid argument")
    args = _resolve(optimization_options, model_type)
    for name in args.pop("_unknown"):
        warnings.warn(f"optimization_options.{name}: not an option bertopt knows; ignored",
                      BertoptWarning, stacklevel=2)

    path, data = "", None
    if isinstance(input, onnx.ModelProto):
        data = input.SerializeToString()
    elif isinstance(input, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(input))
    else:
        raise TypeError(f"input: expected a path or an onnx.ModelProto, got {type(input).__name__}")

    model_bytes, report = _core.optimize(
        path=path, model=data, model_type="auto" if model_type == "bert" else model_type,
        num_heads=num_heads, hidden_size=hidden_size,
        target_ort_version=target_ort_version or "", **args)
    for warning in report["warnings"]:
        warnings.warn(warning, BertoptWarning, stacklevel=2)
    result = OptimizedModel(onnx.ModelProto.FromString(model_bytes), report, path)
    if verbose:
        print(format_report(report, verbose=True), file=sys.stdout)
    return result


def format_report(report: dict[str, Any], verbose: bool = False) -> str:
    """The report as ``bertopt optimize`` prints it (``verbose``: with the passes and misses)."""
    lines: list[str] = []
    evidence = report["model_type_evidence"]
    lines.append(f"model_type {report['model_type']}"
                 + (f", detected from {evidence}" if evidence else ""))
    if report["target"]:
        lines.append(f"target: {report['target']}")
    if verbose:
        lines.append("")
        lines.append(f"  {'pass':<26} {'candidates':>10} {'fused':>6} {'time (ms)':>9}")
        for p in report["passes"]:
            lines.append(f"  {p['name']:<26} {p['candidates']:>10} {p['fused']:>6} "
                         f"{p['seconds'] * 1e3:>9.1f}")
        misses = [m for p in report["passes"] for m in p["misses"]]
        if misses:
            lines.append("")
            lines.append("not fused:")
            lines.extend(f"  {m}" for m in misses)
    lines.append("")
    lines.append(f"  {'fused operator':<26} {'count':>5}")
    for op in _core.reported_op_types():
        lines.append(f"  {op:<26} {report['fused_ops'].get(op, 0):>5}")
    lines.append("")
    if report["fully_optimized"]:
        lines.append(f"verdict: fully optimized ({report['layers']} layers)")
    else:
        lines.append(f"verdict: not fully optimized: {'; '.join(report['missing'])}")
    lines.append(f"nodes {report['nodes_before']} -> {report['nodes_after']} in "
                 f"{report['seconds']:.3f} s")
    return "\n".join(lines)


def _require_ort(what: str) -> None:
    if not HAS_ORT:
        # A feature this build lacks is bad input (exit code 2), as in the CLI.
        raise BadInputError(f"{what}: this bertopt was built without the ONNX Runtime SDK "
                            f"(run scripts/setup.sh, then pip install . again)", "unimplemented")


def compare(baseline_model: str | os.PathLike[str],
            optimized_model: str | os.PathLike[str] | OptimizedModel | onnx.ModelProto,
            batch_size: int = 1, sequence_length: int = 128, samples: int = 100, seed: int = 3,
            rtol: float = 1e-3, atol: float = 1e-4, use_gpu: bool = False,
            output_dir: str | os.PathLike[str] | None = None, input_ids_name: str | None = None,
            segment_ids_name: str | None = None, input_mask_name: str | None = None,
            verbose: bool = False, write_test_data: bool = True,
            check: bool = False) -> dict[str, Any]:
    """Runs both models through ONNX Runtime (its graph optimizations off) on the same generated
    BERT inputs and compares every output, as ``bertopt compare``: returns what
    ``bertopt compare --json`` prints (``all_passed``, ``samples``, ``passed``, per output
    ``max_abs_diff``, ``max_rel_diff`` and ``samples_failed``, ``test_data_dir``, ...).

    ``optimized_model`` may also be an OptimizedModel or a ModelProto (saved to a temporary
    folder for ORT, and no test data written unless ``output_dir`` is given). A mismatch is
    ``all_passed`` False (the CLI exits 1), or with ``check=True`` a FailedError; bad input raises
    BadInputError. ``verbose`` prints the CLI's log.
    """
    _require_ort("compare")
    with tempfile.TemporaryDirectory(prefix="bertopt-compare-") as tmp:
        if isinstance(optimized_model, (OptimizedModel, onnx.ModelProto)):
            model = optimized_model if isinstance(optimized_model, OptimizedModel) else \
                OptimizedModel(optimized_model, {})
            optimized_path = os.path.join(tmp, "optimized.onnx")
            model.save_model_to_file(optimized_path, overwrite=True)
            write_test_data = write_test_data and output_dir is not None
        else:
            optimized_path = os.fspath(optimized_model)
        text, log = _core.compare(
            baseline_model=os.fspath(baseline_model), optimized_model=optimized_path,
            batch_size=batch_size, sequence_length=sequence_length, samples=samples, seed=seed,
            rtol=rtol, atol=atol, use_gpu=use_gpu,
            output_dir=os.fspath(output_dir) if output_dir is not None else "",
            input_ids_name=input_ids_name or "", segment_ids_name=segment_ids_name or "",
            input_mask_name=input_mask_name or "", verbose=verbose,
            write_test_data=write_test_data)
    if verbose:
        print(log, end="")
    result = json.loads(text)
    if check and not result["all_passed"]:
        failed = [o["name"] for o in result["outputs"] if o["samples_failed"]]
        raise FailedError(
            f"{result['optimized_model']}: {result['passed']} of {result['samples']} samples "
            f"passed (rtol={rtol}, atol={atol}); outputs that differ: {', '.join(failed)}",
            "failed precondition")
    return result


def perf(model: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
         batch_size: int | Sequence[int] = 1, sequence_length: int | Sequence[int] = 128,
         samples: int = 10, test_times: int = 100, warmup: int = 5,
         intra_op_num_threads: int | Sequence[int] | None = None, opt_level: str = "all",
         inclusive: bool = False, use_gpu: bool = False, use_io_binding: bool = False,
         seed: int = 42, input_ids_name: str | None = None, segment_ids_name: str | None = None,
         input_mask_name: str | None = None, output: str | os.PathLike[str] | None = None,
         plot: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Measures latency and throughput through ONNX Runtime, as ``bertopt perf`` with the same
    flags (lists where the CLI takes several values); returns what ``bertopt perf --json``
    prints. Like the CLI it writes the TSV (``output``, default beside the first model) and,
    given ``plot``, the SVG chart."""
    _require_ort("perf")

    def many(value: Any) -> list[str]:
        if isinstance(value, (str, os.PathLike, int)):
            value = [value]
        return [str(os.fspath(v) if isinstance(v, os.PathLike) else v) for v in value]

    argv = ["bertopt perf", "--json", "--model", *many(model), "--batch_size", *many(batch_size),
            "--sequence_length", *many(sequence_length), "--samples", str(samples),
            "--test_times", str(test_times), "--warmup", str(warmup), "--opt_level", opt_level,
            "--seed", str(seed)]
    if intra_op_num_threads is not None:
        argv += ["--intra_op_num_threads", *many(intra_op_num_threads)]
    for flag, on in (("--inclusive", inclusive), ("--use_gpu", use_gpu),
                     ("--use_io_binding", use_io_binding)):
        if on:
            argv.append(flag)
    for flag, value in (("--input_ids_name", input_ids_name),
                        ("--segment_ids_name", segment_ids_name),
                        ("--input_mask_name", input_mask_name), ("--output", output),
                        ("--plot", plot)):
        if value is not None:
            argv += [flag, os.fspath(value)]
    return json.loads(_core.perf(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bertopt <command> <flags>``: the CLI in this process; returns its exit code."""
    _require_ort("python -m bertopt")
    sys.stdout.flush()
    sys.stderr.flush()
    return int(_core.cli(list(sys.argv[1:] if argv is None else argv)))
