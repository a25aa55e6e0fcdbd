#!/usr/bin/env python3
"""One-off validation of gen_tf_layouts.py: run each built graph in onnxruntime (all graph
optimizations off) and compare with a numpy float64 forward pass of the same BERT, same weights.

Needs onnxruntime, so run it with a venv outside the repository, e.g.
    python3 -m venv /work/venvs/ort && /work/venvs/ort/bin/pip install onnxruntime numpy onnx
    /work/venvs/ort/bin/python tests/models/check_tf_layouts.py
    /work/venvs/ort/bin/python tests/models/check_tf_layouts.py --list      # one layer's nodes
Not part of the test suite; see TF_LAYOUTS.md.
"""

import argparse
import math
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_tf_layouts as gen  # noqa: E402

TOL = 1e-4
CONFIGS = [
    ["--kind", "keras_seq", "--keras_version", "1.6.1"],
    ["--kind", "keras_seq", "--keras_version", "1.6.1", "--static", "--batch", "3"],
    ["--kind", "keras_seq", "--keras_version", "1.6.5"],
    ["--kind", "keras_seq", "--keras_version", "1.6.5", "--static", "--batch", "3"],
    ["--kind", "keras_qa", "--keras_version", "1.6.1"],
    ["--kind", "keras_qa", "--keras_version", "1.6.1", "--static", "--batch", "3"],
    ["--kind", "keras_qa", "--keras_version", "1.6.5"],
    ["--kind", "keras_qa", "--keras_version", "1.6.5", "--static", "--batch", "3"],
    ["--kind", "tf2onnx16"],
    ["--kind", "tf2onnx16", "--static", "--batch", "3"],
]


# ---------------------------------------------------------------------------------------------
# numpy reference (float64), written from the math of exporter-layouts.md 1.1

def layer_norm(x, gb, eps=gen.LN_EPS):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * gb[0] + gb[1]


def lin(x, wb):
    return x @ wb[0].astype(np.float64) + wb[1]


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def gelu_erf(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def reference(spec, w, ids, mask, types=None):
    H, N = spec["hidden"], spec["heads"]
    Hd = H // N
    B, S = ids.shape
    x = w["word"][ids].astype(np.float64) + w["pos"][:S]
    if types is not None:
        x = x + w["type"][types]
    x = layer_norm(x, w["emb_ln"])
    add = (1.0 - mask[:, None, None, :].astype(np.float64)) * -10000.0
    gelu = gelu_tanh if spec["kind"] == "tf2onnx16" else gelu_erf
    for lw in w["layers"]:
        def heads(t):
            return t.reshape(B, S, N, Hd).transpose(0, 2, 1, 3)
        q, k, v = (heads(lin(x, lw[n])) for n in ("q", "k", "v"))
        p = softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(Hd) + add)
        ctx = (p @ v).transpose(0, 2, 1, 3).reshape(B, S, H)
        y1 = layer_norm(lin(ctx, lw["o"]) + x, lw["ln1"])
        x = layer_norm(lin(gelu(lin(y1, lw["i"])), lw["o2"]) + y1, lw["ln2"])
    if spec["kind"] == "keras_qa":
        logits = lin(x, w["qa"])
        return [logits[..., 0], logits[..., 1]]
    return [lin(np.tanh(lin(x[:, 0], w["pool"])), w["cls"])]


# ---------------------------------------------------------------------------------------------

def make_inputs(spec, rng, B):
    tf = spec["kind"] == "tf2onnx16"
    S = spec["seq"] if spec["seq"] else 11  # dynamic tf2onnx16: a length unlike the default 16
    lengths = [S, max(1, S - 5), 3][:B] + [S] * max(0, B - 3)
    mask = np.zeros((B, S), np.int64)
    for r, n in enumerate(lengths):
        mask[r, :n] = 1
    low = 1 if tf else 0
    ids = rng.integers(low, spec["vocab"], (B, S))
    if tf:
        ids = ids * mask  # id 0 = padding; it defines the mask inside the graph
        return {"input_ids_tensor:0": ids.astype(np.int64)}, (ids, mask, None)
    types = np.zeros((B, S), np.int64)
    for r, n in enumerate(lengths):  # second segment: the last ~third of the real tokens
        types[r, max(1, 2 * n // 3):n] = 1
    feeds = {"attention_mask": mask.astype(np.int32), "input_ids": ids.astype(np.int32),
             "token_type_ids": types.astype(np.int32)}
    return feeds, (ids, mask, types)


def run_one(argv, ort, tmp):
    parser = gen.build_parser()
    args = parser.parse_args(argv + ["--output", str(Path(tmp) / "m.onnx")])
    spec = gen.resolve(args)
    path = gen.generate(args)
    w = gen.make_weights(spec)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(123)
    feeds, (ids, mask, types) = make_inputs(spec, rng, 3)
    got = sess.run(None, feeds)
    want = reference(spec, w, ids, mask, types)
    diff = max(float(np.abs(g - r).max()) for g, r in zip(got, want))
    # sensitivity: the same reference without the mask must differ clearly
    nomask = reference(spec, w, ids, np.ones_like(mask), types)
    sens = max(float(np.abs(a - b).max()) for a, b in zip(nomask, want))
    import onnx
    nodes = len(onnx.load(str(path)).graph.node)
    return diff, sens, nodes, [tuple(g.shape) for g in got]


def list_layer(argv, tmp):
    """Prints one encoder layer's nodes compactly as 'outputs = Op(inputs) attrs'. For tf2onnx16
    also the shared (de-duplicated) shape/mask nodes before layer 0 and the nodes after the last
    layer. Names are shortened: the model prefix and '<...>/bert/' are dropped, 'encoder/layer_._0/'
    (keras) or 'encoder/layer_0/' (tf2onnx) becomes 'L0/', ':0' is dropped; initializers are shown
    as I:dtype[shape] plus their values when they have at most 4 elements."""
    import onnx
    parser = gen.build_parser()
    args = parser.parse_args(argv + ["--output", str(Path(tmp) / "m.onnx")])
    spec = gen.resolve(args)
    model = onnx.load(str(gen.generate(args)))
    inits = {t.name: t for t in model.graph.initializer}
    tf = spec["kind"] == "tf2onnx16"

    def short(name):
        if name in inits:
            t = inits[name]
            arr = onnx.numpy_helper.to_array(t)
            dt = {1: "f32", 6: "i32", 7: "i64"}[t.data_type]
            vals = arr.ravel().tolist() if arr.size <= 4 else ""
            return f"I:{dt}{list(arr.shape)}{vals}".replace(" ", "")
        name = re.sub(r"^.*?bert/", "", name).replace(":0", "")
        return re.sub(r"^encoder/layer_(\._)?(\d+)/", r"L\2/", name)

    def attrs(n):
        out = []
        for a in n.attribute:
            v = onnx.helper.get_attribute_value(a)
            out.append(f"{a.name}={list(v) if isinstance(v, (list, tuple)) or type(v).__name__.startswith('Repeated') else v}".replace(" ", ""))
        return (" " + " ".join(out)) if out else ""

    nodes = list(model.graph.node)
    key = "/layer_0/" if tf else "/layer_._0/"
    idx = [i for i, n in enumerate(nodes) if key in "/" + n.name]
    chosen = [n for n in nodes if key in "/" + n.name]
    if tf:
        chosen = nodes[idx[0]:idx[-1] + 1]
        emb_end = max(i for i, n in enumerate(nodes) if n.name.startswith("bert/embeddings/"))
        last = max(i for i, n in enumerate(nodes) if f"layer_{spec['layers'] - 1}/output/" in n.name)
        chosen = nodes[emb_end + 1:idx[0]] + chosen + ["..."] + nodes[last + 1:]
    print(f"# {' '.join(argv)}: {len(nodes)} nodes; listed {sum(1 for n in chosen if n != '...')}")
    for n in chosen:
        if n == "...":
            print("... (layers 1..L-1) ...")
            continue
        print(f"{', '.join(short(o) for o in n.output)} = {n.op_type}"
              f"({', '.join(short(i) for i in n.input)}){attrs(n)}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--list", action="store_true", help="print one layer's nodes per kind instead")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if a.list:
            for argv in CONFIGS:  # the keras_qa layers equal keras_seq's
                if "--static" not in argv and "keras_qa" not in argv:
                    list_layer(argv, tmp)
                    print()
            return
        import onnxruntime as ort
        print(f"onnxruntime {ort.__version__}, numpy {np.__version__}")
        worst = 0.0
        for argv in CONFIGS:
            diff, sens, nodes, shapes = run_one(argv, ort, tmp)
            worst = max(worst, diff)
            ok = diff < TOL and sens > 1e-3
            print(f"{'ok  ' if ok else 'FAIL'} {' '.join(argv):<60} nodes {nodes:4d}  "
                  f"outputs {shapes}  max|diff| {diff:.2e}  (no-mask change {sens:.2e})")
            if not ok:
                raise SystemExit("validation failed")
        print(f"all ok, worst max|diff| {worst:.2e}")


if __name__ == "__main__":
    main()
