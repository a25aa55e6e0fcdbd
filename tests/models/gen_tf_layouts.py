#!/usr/bin/python3
"""Build small random BERT graphs in the layouts of keras2onnx 1.6.x and tf2onnx 1.6, for bertopt's tests.

keras2onnx (TensorFlow <= 2.3) cannot be installed any more, so this script writes the graphs those
exporters produced directly with the onnx helper API, node for node as
shared/docs/exporter-layouts.md sections 3 (keras2onnx 1.6.1 / 1.6.5) and 4 (tf2onnx 1.6) describe
them. Every weight, bias and LayerNorm gamma/beta is random, so a fusion that drops one changes the
outputs. Comments marked CHOICE are places where the doc leaves the exact form open.

Run with Debian's /usr/bin/python3 (python3-onnx 1.12 and numpy; nothing else is imported). See
TF_LAYOUTS.md.
"""

import argparse
import collections
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import generator_cli

import numpy as np

KINDS = ("keras_seq", "keras_qa", "tf2onnx16")
KERAS_VERSIONS = ("1.6.1", "1.6.5")
SCRIPT = Path(__file__).resolve()
DEFAULT_CACHE = SCRIPT.parent / "cache"
MAX64 = 9223372036854775807
MAX32 = 2147483647
LN_EPS = 1e-12


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=KINDS, default="keras_seq")
    p.add_argument("--keras_version", choices=KERAS_VERSIONS, default="1.6.5",
                   help="keras kinds only: 1.6.1 (opset 10) or 1.6.5 (opset 11)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, help="default 4*hidden")
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--max_position", type=int, default=128)
    p.add_argument("--type_vocab", type=int, default=2, help="keras kinds only")
    p.add_argument("--seq", type=int, default=16,
                   help="sequence length: baked into keras graphs; tf2onnx16 uses it with --static")
    p.add_argument("--static", action="store_true",
                   help="declare a static batch (and, for tf2onnx16, sequence) on inputs/outputs")
    p.add_argument("--batch", type=int, default=2, help="batch size declared with --static")
    p.add_argument("--seed", type=int, default=0)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--cache_dir", help=f"default {DEFAULT_CACHE}")
    out.add_argument("--output", help="write exactly here (always regenerated)")
    p.add_argument("--batch_file", help="one set of options per line; prints one path per line")
    p.add_argument("--verbose", action="store_true", help="print a node-type histogram (stderr)")
    return p


def resolve(args):
    """Fills defaults, drops options that do not apply to the kind, rejects bad sizes."""
    keras = args.kind != "tf2onnx16"
    spec = dict(
        kind=args.kind, keras_version=args.keras_version if keras else None,
        layers=args.layers, hidden=args.hidden, heads=args.heads,
        intermediate=args.intermediate or 4 * args.hidden, vocab=args.vocab,
        max_position=args.max_position, type_vocab=args.type_vocab if keras else 0,
        seq=args.seq if (keras or args.static) else None, static=args.static,
        batch=args.batch if args.static else None, seed=args.seed)
    if args.layers < 1 or args.hidden < 1 or args.heads < 1:
        raise SystemExit("--layers, --hidden and --heads must be positive")
    if args.hidden % args.heads:
        raise SystemExit(f"--hidden {args.hidden} is not a multiple of --heads {args.heads}")
    if args.seq < 1 or args.seq > args.max_position:
        raise SystemExit(f"--seq {args.seq} must be in [1, --max_position {args.max_position}]")
    if args.vocab <= 2:
        raise SystemExit("--vocab must be > 2")
    if keras and args.type_vocab < 1:
        raise SystemExit("--type_vocab must be >= 1")
    if args.static and args.batch < 1:
        raise SystemExit("--batch must be >= 1")
    return spec


def cache_path(spec, cache_dir):
    source = hashlib.sha256(SCRIPT.read_bytes()).hexdigest()
    key = json.dumps({"spec": spec, "generator": source}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    tag = spec["kind"]
    if spec["keras_version"]:
        tag += "_k" + spec["keras_version"].replace(".", "")
    suffix = "_static" if spec["static"] else ""
    return Path(cache_dir) / f"{tag}{suffix}_{digest}.onnx"


# ----------------------------------------------------------------------------------------------
# Weights

def make_weights(spec):
    """Random weights, drawn in a fixed order from numpy's PCG64 seeded with --seed.

    Same scheme as gen_bert.py: dense kernels ([in, out], as TF stores them) ~ N(0, 1/in),
    embedding tables ~ N(0, 0.02), LayerNorm gamma ~ 1 + N(0, 0.1), beta and biases ~ N(0, 0.1).
    Returned as float32 arrays; check_tf_layouts.py uses the same dict for its numpy reference.
    """
    rng = np.random.default_rng(spec["seed"])
    H, F = spec["hidden"], spec["intermediate"]

    def normal(shape, std, mean=0.0):
        return (mean + std * rng.standard_normal(shape)).astype(np.float32)

    def dense(n_in, n_out):
        return normal((n_in, n_out), 1.0 / math.sqrt(n_in)), normal((n_out,), 0.1)

    def ln():
        return normal((H,), 0.1, 1.0), normal((H,), 0.1)

    w = {"word": normal((spec["vocab"], H), 0.02),
         "pos": normal((spec["max_position"], H), 0.02)}
    if spec["type_vocab"]:
        w["type"] = normal((spec["type_vocab"], H), 0.02)
    w["emb_ln"] = ln()
    w["layers"] = []
    for _ in range(spec["layers"]):
        lw = {}
        for key, n_in, n_out in (("q", H, H), ("k", H, H), ("v", H, H), ("o", H, H)):
            lw[key] = dense(n_in, n_out)
        lw["ln1"] = ln()
        lw["i"] = dense(H, F)
        lw["o2"] = dense(F, H)
        lw["ln2"] = ln()
        w["layers"].append(lw)
    if spec["kind"] == "keras_qa":
        w["qa"] = dense(H, 2)
    else:  # pooler + 2-class classifier (keras MRPC head, tf2onnx16's small head)
        w["pool"] = dense(H, H)
        w["cls"] = dense(H, 2)
    return w


# ----------------------------------------------------------------------------------------------
# Graph building helpers

class Graph:
    """Collects nodes and initializers. Node outputs are named '<node name>:<i>' (TF style)."""

    def __init__(self):
        import onnx  # noqa: F401  (fail early with a clear error if missing)
        self.nodes = []
        self.inits = []
        self.init_names = set()
        self.node_names = set()

    def unique_node_name(self, name):
        base, k = name, 0
        while name in self.node_names:
            k += 1
            name = f"{base}_{k}"
        self.node_names.add(name)
        return name

    def init(self, name, value, dtype=None):
        """Adds an initializer (name should end in ':0'); a taken name gets a numeric suffix."""
        from onnx import numpy_helper
        arr = np.asarray(value, dtype=dtype)
        base, k = name, 0
        while name in self.init_names:
            k += 1
            name = base[:-2] + f"_{k}:0" if base.endswith(":0") else f"{base}_{k}"
        self.init_names.add(name)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def f32(self, name, value):
        return self.init(name, value, np.float32)

    def i32(self, name, value):
        return self.init(name, value, np.int32)

    def i64(self, name, value):
        return self.init(name, value, np.int64)

    def op(self, op_type, inputs, name, outputs=1, out_names=None, **attrs):
        from onnx import helper
        name = self.unique_node_name(name)
        outs = out_names or [f"{name}:{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=name, **attrs))
        return outs[0] if len(outs) == 1 else outs


def tf_layer_norm(g, x, scope, gamma, beta, order, axes, reduce_suffix=""):
    """TF moments/batchnorm LayerNorm (doc 3.3). order '1.6.1' or '1.6.5' (= tf2onnx)."""
    old = order == "1.6.1"
    gname = g.f32(f"{scope}/gamma:0", gamma)
    bname = g.f32(f"{scope}/beta:0", beta)
    m = g.op("ReduceMean", [x], f"{scope}/moments/mean{reduce_suffix}", axes=axes, keepdims=1)
    d = g.op("Sub", [m, x] if old else [x, m], f"{scope}/moments/SquaredDifference")
    sq = g.op("Mul", [d, d], f"{scope}/moments/SquaredDifference_mul")
    v = g.op("ReduceMean", [sq], f"{scope}/moments/variance{reduce_suffix}", axes=axes, keepdims=1)
    eps = g.f32(f"{scope}/batchnorm/add/y:0", LN_EPS)
    ve = g.op("Add", [eps, v] if old else [v, eps], f"{scope}/batchnorm/add")
    sd = g.op("Sqrt", [ve], f"{scope}/batchnorm/Rsqrt_sqrt")
    r = g.op("Reciprocal", [sd], f"{scope}/batchnorm/Rsqrt")
    k = g.op("Mul", [r, gname], f"{scope}/batchnorm/mul")
    b = g.op("Mul", [k, x] if old else [x, k], f"{scope}/batchnorm/mul_1")
    a = g.op("Mul", [k, m] if old else [m, k], f"{scope}/batchnorm/mul_2")
    c = g.op("Sub", [bname, a], f"{scope}/batchnorm/sub")
    return g.op("Add", [b, c], f"{scope}/batchnorm/add_1")


# ----------------------------------------------------------------------------------------------
# keras2onnx 1.6.1 / 1.6.5 (doc section 3)

class Keras:
    def __init__(self, spec, weights):
        self.spec, self.w = spec, weights
        self.old = spec["keras_version"] == "1.6.1"
        self.opset = 10 if self.old else 11
        self.g = Graph()
        self.top = ("tf_bert_for_question_answering" if spec["kind"] == "keras_qa"
                    else "tf_bert_for_sequence_classification")

    # Tensordot pieces (doc 3.4) -------------------------------------------------------------
    def td_shape(self, x, scope):
        """sh = Cast(Shape(x), to=6)."""
        g = self.g
        shp = g.op("Shape", [x], f"{scope}/Tensordot/Shape")
        return g.op("Cast", [shp], f"{scope}/Tensordot/Shape_cast", to=6)

    def td_2d(self, sh, data, scope):
        """g01 and Reshape(data, Cast(Concat(Unsqueeze(Prod(g01)), Unsqueeze(Prod(g2))), to=7))."""
        g = self.g
        g01 = g.op("Gather", [sh, g.i32(f"{scope}/Tensordot/free:0", [0, 1])],
                   f"{scope}/Tensordot/GatherV2", axis=0)
        g2 = g.op("Gather", [sh, g.i32(f"{scope}/Tensordot/axes:0", [2])],
                  f"{scope}/Tensordot/GatherV2_1", axis=0)
        p0 = g.op("ReduceProd", [g01], f"{scope}/Tensordot/Prod_reduce_min", axes=[0], keepdims=0)
        p1 = g.op("ReduceProd", [g2], f"{scope}/Tensordot/Prod_1_reduce_min", axes=[0], keepdims=0)
        u0 = g.op("Unsqueeze", [p0], f"{scope}/Tensordot/stack_unsqueeze", axes=[0])
        u1 = g.op("Unsqueeze", [p1], f"{scope}/Tensordot/stack_unsqueeze_1", axes=[0])
        st = g.op("Concat", [u0, u1], f"{scope}/Tensordot/stack", axis=0)
        s2d = g.op("Cast", [st], f"{scope}/Tensordot/Reshape_cast", to=7)
        x2 = g.op("Reshape", [data, s2d], f"{scope}/Tensordot/Reshape")
        return g01, x2

    def td_s3d(self, g01, scope, hout):
        return self.g.op("Concat", [g01, self.g.i32(f"{scope}/Tensordot/Const_2:0", [hout])],
                         f"{scope}/Tensordot/concat_1", axis=0)

    def td_out(self, x2, s3d, scope, kernel, bias):
        """Add(Reshape(MatMul(x2, W), Cast(s3d, to=7)), b)."""
        g = self.g
        mm = g.op("MatMul", [x2, g.f32(f"{scope}/kernel:0", kernel)], f"{scope}/Tensordot/MatMul")
        c = g.op("Cast", [s3d], f"{scope}/Tensordot_cast", to=7)
        r = g.op("Reshape", [mm, c], f"{scope}/Tensordot")
        return g.op("Add", [r, g.f32(f"{scope}/bias:0", bias)], f"{scope}/BiasAdd")

    def dense(self, x, scope, wb, shape_src=None):
        """One complete Tensordot dense layer (its own Shape chain). shape_src: the tensor whose
        Shape is taken when it differs from the reshaped one (1.6.1 attention output, 3.5)."""
        sh = self.td_shape(shape_src or x, scope)
        g01, x2 = self.td_2d(sh, x, scope)
        return self.td_out(x2, self.td_s3d(g01, scope, wb[0].shape[1]), scope, *wb)

    # shape pieces -1, N, Hd, H (3.5/3.9) ----------------------------------------------------
    def piece(self, name, value):
        g = self.g
        if self.old:  # Unsqueeze(I:i32[] scalar, axes=[0])
            return g.op("Unsqueeze", [g.i32(f"{name}:0", value)], f"{name}_unsqueeze", axes=[0])
        return g.i32(f"{name}:0", [value])  # I:i32[1]

    # one encoder layer -----------------------------------------------------------------------
    def layer(self, x, i, mask):
        g, s, lw, old = self.g, self.spec, self.w["layers"][i], self.old
        H, N = s["hidden"], s["heads"]
        Hd = H // N
        L = f"{self.top}/bert/encoder/layer_._{i}"
        A = f"{L}/attention/self"
        qs, ks, vs = f"{A}/query", f"{A}/key", f"{A}/value"

        if old:
            # Q, K, V share one Shape, one s2d, one 2-D Reshape and one s3d Concat, cast 3x
            # (TF's common-subexpression elimination kept the query scope's names).
            sh = self.td_shape(x, qs)
            g01, x2 = self.td_2d(sh, x, qs)
            s3d = self.td_s3d(g01, qs, H)
            q = self.td_out(x2, s3d, qs, *lw["q"])
            k = self.td_out(x2, s3d, ks, *lw["k"])
            v = self.td_out(x2, s3d, vs, *lw["v"])
            bsh = sh  # batch size sliced from the shared Q/K/V shape
        else:
            # CHOICE: the 4th Shape(x) (batch size for the head reshapes) is emitted before the
            # three Tensordots, as TF evaluates shape_list(hidden_states) first.
            shp = g.op("Shape", [x], f"{A}/Shape")
            bsh = g.op("Cast", [shp], f"{A}/Shape_cast", to=6)
            q = self.dense(x, qs, lw["q"])
            k = self.dense(x, ks, lw["k"])
            v = self.dense(x, vs, lw["v"])
        sl = g.op("Slice", [bsh, g.i64(f"{A}/strided_slice/stack:0", [0]),
                            g.i64(f"{A}/strided_slice/stack_1:0", [1]),
                            g.i64(f"{A}/strided_slice/axes:0", [0]),
                            g.i64(f"{A}/strided_slice/stack_2:0", [1])],
                  f"{A}/strided_slice_cropping")
        bsq = g.op("Squeeze", [sl], f"{A}/strided_slice", axes=[0])

        def sp4(rname):
            bs = g.op("Unsqueeze", [bsq], f"{A}/{rname}/shape_unsqueeze", axes=[0])
            parts = [bs, self.piece(f"{A}/{rname}/shape/1", -1),
                     self.piece(f"{A}/{rname}/shape/2", N), self.piece(f"{A}/{rname}/shape/3", Hd)]
            return g.op("Concat", parts, f"{A}/{rname}/shape", axis=0)

        heads = []
        shared_sp4 = sp4("Reshape") if old else None  # 1.6.1: one Concat, cast three times
        for t, rname, tname, perm in ((q, "Reshape", "transpose", [0, 2, 1, 3]),
                                      (k, "Reshape_1", "transpose_1", [0, 2, 3, 1]),
                                      (v, "Reshape_2", "transpose_2", [0, 2, 1, 3])):
            c = shared_sp4 if old else sp4(rname)
            c = g.op("Cast", [c], f"{A}/{rname}_cast", to=7)
            r = g.op("Reshape", [t, c], f"{A}/{rname}")
            heads.append(g.op("Transpose", [r], f"{A}/{tname}", perm=perm))
        qt, kt, vt = heads
        sc = g.op("MatMul", [qt, kt], f"{A}/MatMul")
        if old:  # TF's grappler turned x / sqrt(Hd) into a multiplication by a constant
            ss = g.op("Mul", [g.f32(f"{A}/truediv/y:0", 1.0 / math.sqrt(Hd)), sc], f"{A}/truediv")
        else:
            sq = g.op("Sqrt", [g.f32(f"{A}/Cast:0", float(Hd))], f"{A}/Sqrt")
            ss = g.op("Div", [sc, sq], f"{A}/truediv")
        sm = g.op("Add", [ss, mask], f"{A}/add")
        p = g.op("Softmax", [sm], f"{A}/Softmax", axis=3 if old else -1)
        cx = g.op("MatMul", [p, vt], f"{A}/MatMul_1")
        ct = g.op("Transpose", [cx], f"{A}/transpose_3", perm=[0, 2, 1, 3])
        bs3 = g.op("Unsqueeze", [bsq], f"{A}/Reshape_3/shape_unsqueeze", axes=[0])
        c3 = g.op("Concat", [bs3, self.piece(f"{A}/Reshape_3/shape/1", -1),
                             self.piece(f"{A}/Reshape_3/shape/2", H)],
                  f"{A}/Reshape_3/shape", axis=0)
        c3 = g.op("Cast", [c3], f"{A}/Reshape_3_cast", to=7)
        o = g.op("Reshape", [ct, c3], f"{A}/Reshape_3")

        O = f"{L}/attention/output"
        if old:  # quirk: Shape of the merge Reshape, but the 2-D Reshape reads the Transpose
            ao = self.dense(ct, f"{O}/dense", lw["o"], shape_src=o)
            r1 = g.op("Add", [x, ao], f"{O}/add")
        else:
            ao = self.dense(o, f"{O}/dense", lw["o"])
            r1 = g.op("Add", [ao, x], f"{O}/add")
        y1 = self.ln(r1, f"{O}/LayerNorm", lw["ln1"])

        I = f"{L}/intermediate"
        f = self.dense(y1, f"{I}/dense", lw["i"])
        if old:
            t = g.op("Mul", [g.f32(f"{I}/truediv/y:0", 1.0 / math.sqrt(2.0)), f], f"{I}/truediv")
            e = g.op("Erf", [t], f"{I}/Erf")
            a = g.op("Add", [e, g.f32(f"{I}/add/y:0", 1.0)], f"{I}/add")
            h = g.op("Mul", [a, g.f32(f"{I}/mul/y:0", 0.5)], f"{I}/mul")
            gl = g.op("Mul", [h, f], f"{I}/mul_1")
        else:
            sq2 = g.op("Sqrt", [g.f32(f"{I}/Sqrt/x:0", 2.0)], f"{I}/Sqrt")
            t = g.op("Div", [f, sq2], f"{I}/truediv")
            e = g.op("Erf", [t], f"{I}/Erf")
            a = g.op("Add", [g.f32(f"{I}/add/x:0", 1.0), e], f"{I}/add")
            h = g.op("Mul", [g.f32(f"{I}/mul/x:0", 0.5), a], f"{I}/mul")
            gl = g.op("Mul", [f, h], f"{I}/mul_1")

        OU = f"{L}/output"
        d2 = self.dense(gl, f"{OU}/dense", lw["o2"])
        r2 = g.op("Add", [y1, d2] if old else [d2, y1], f"{OU}/add")
        return self.ln(r2, f"{OU}/LayerNorm", lw["ln2"])

    def ln(self, x, scope, gb):
        return tf_layer_norm(self.g, x, scope, gb[0], gb[1], self.spec["keras_version"], [2],
                             reduce_suffix="_reduce_min")

    def build(self):
        import onnx
        from onnx import helper, TensorProto
        g, s, w, old = self.g, self.spec, self.w, self.old
        S = s["seq"]
        E = f"{self.top}/bert/embeddings"
        word = g.f32(f"{E}/word_embeddings/weight:0", w["word"])
        we = g.op("Gather", [word, "input_ids"], f"{E}/Gather", axis=0)
        if old:  # position rows pre-sliced to [1, S, H] by constant folding
            pos = g.f32(f"{E}/position_embeddings/embedding_lookup/Identity:0", w["pos"][None, :S])
            e1 = g.op("Add", [we, pos], f"{E}/add")
        else:
            r = g.op("Range", [g.i32(f"{E}/range/start:0", 0), g.i32(f"{E}/range/limit:0", S),
                               g.i32(f"{E}/range/delta:0", 1)], f"{E}/range")
            u = g.op("Unsqueeze", [r], f"{E}/strided_slice_unsqueeze", axes=[0])
            ps = g.op("Slice", [u, g.i64(f"{E}/strided_slice/stack:0", [0]),
                                g.i64(f"{E}/strided_slice/stack_1:0", [MAX64]),
                                g.i64(f"{E}/strided_slice/axes:0", [1]),
                                g.i64(f"{E}/strided_slice/stack_2:0", [1])],
                      f"{E}/strided_slice_cropping")
            pos = g.f32(f"{E}/position_embeddings/embeddings:0", w["pos"])
            pe = g.op("Gather", [pos, ps], f"{E}/position_embeddings/embedding_lookup", axis=0)
            e1 = g.op("Add", [we, pe], f"{E}/add")
        typ = g.f32(f"{E}/token_type_embeddings/embeddings:0", w["type"])
        te = g.op("Gather", [typ, "token_type_ids"], f"{E}/token_type_embeddings/embedding_lookup",
                  axis=0)
        e = g.op("Add", [e1, te], f"{E}/add_1")
        x = self.ln(e, f"{E}/LayerNorm", w["emb_ln"])

        # mask (3.6), one value read by every layer's scores Add
        Bt = f"{self.top}/bert"
        u = g.op("Unsqueeze", ["attention_mask"], f"{Bt}/strided_slice_unsqueeze", axes=[1, 2])
        if old:
            starts, ends, axes, steps = [0] * 4, [MAX64] * 4, [0, 1, 2, 3], [1] * 4
        else:
            starts, ends, axes, steps = [0, 0], [MAX64, MAX64], [0, 3], [1, 1]
        sl = g.op("Slice", [u, g.i64(f"{Bt}/strided_slice/stack:0", starts),
                            g.i64(f"{Bt}/strided_slice/stack_1:0", ends),
                            g.i64(f"{Bt}/strided_slice/axes:0", axes),
                            g.i64(f"{Bt}/strided_slice/stack_2:0", steps)],
                  f"{Bt}/strided_slice_cropping")
        fm = g.op("Cast", [sl], f"{Bt}/Cast", to=1)
        sub = g.op("Sub", [g.f32(f"{Bt}/sub/x:0", 1.0), fm], f"{Bt}/sub")
        ten_k = g.f32(f"{Bt}/mul/y:0", -10000.0)
        mask = g.op("Mul", [ten_k, sub] if old else [sub, ten_k], f"{Bt}/mul")

        for i in range(s["layers"]):
            x = self.layer(x, i, mask)

        bdim = s["batch"] if s["static"] else ("N" if old else "batch_size")
        if s["kind"] == "keras_seq":
            P = f"{Bt}/pooler"
            sl = g.op("Slice", [x, g.i64(f"{P}/strided_slice/stack:0", [0, 0]),
                                g.i64(f"{P}/strided_slice/stack_1:0", [MAX64, 1]),
                                g.i64(f"{P}/strided_slice/axes:0", [0, 1]),
                                g.i64(f"{P}/strided_slice/stack_2:0", [1, 1])],
                      f"{P}/strided_slice_cropping")
            first = g.op("Squeeze", [sl], f"{P}/strided_slice", axes=[1])
            pm = g.op("MatMul", [first, g.f32(f"{P}/dense/kernel:0", w["pool"][0])],
                      f"{P}/dense/MatMul")
            pa = g.op("Add", [pm, g.f32(f"{P}/dense/bias:0", w["pool"][1])], f"{P}/dense/BiasAdd")
            pt = g.op("Tanh", [pa], f"{P}/dense/Tanh")
            C = f"{self.top}/classifier"
            cm = g.op("MatMul", [pt, g.f32(f"{C}/kernel:0", w["cls"][0])], f"{C}/MatMul")
            ca = g.op("Add", [cm, g.f32(f"{C}/bias:0", w["cls"][1])], f"{C}/BiasAdd")
            g.op("Identity", [ca], "output_1_identity", out_names=["output_1"])
            outputs = [helper.make_tensor_value_info("output_1", TensorProto.FLOAT, [bdim, 2])]
        else:
            Q = f"{self.top}/qa_outputs"
            logits = self.dense(x, Q, w["qa"])
            # CHOICE: at opset 10 Split/Squeeze take no negative axes, so 1.6.1 writes axis 2.
            axis = 2 if old else -1
            s0, s1 = g.op("Split", [logits], f"{self.top}/split", outputs=2, axis=axis)
            g.op("Squeeze", [s0], f"{self.top}/Squeeze", out_names=["output_1"], axes=[axis])
            g.op("Squeeze", [s1], f"{self.top}/Squeeze_1", out_names=["output_2"], axes=[axis])
            outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [bdim, S])
                       for n in ("output_1", "output_2")]

        nodes = g.nodes
        if not old:
            # 1.6.5 lists constant-only Sqrt nodes first (doc 3.1: "starts with 24 Sqrt nodes"
            # for 24 layers). CHOICE: the attention-scale Sqrt is the one hoisted, one per layer.
            first = [n for n in nodes if n.op_type == "Sqrt" and n.name.endswith("attention/self/Sqrt")]
            nodes = first + [n for n in nodes if n not in first]
        inputs = [helper.make_tensor_value_info(n, TensorProto.INT32, [bdim, S])
                  for n in ("attention_mask", "input_ids", "token_type_ids")]
        graph = helper.make_graph(nodes, self.top, inputs, outputs, initializer=g.inits)
        model = helper.make_model(graph, producer_name="keras2onnx",
                                  producer_version=s["keras_version"],
                                  opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 6
        model.doc_string = ""
        return model


# ----------------------------------------------------------------------------------------------
# tf2onnx 1.6, TF1 Google-BERT graph with a 2-D encoder (doc section 4)

class Tf2onnx:
    def __init__(self, spec, weights):
        self.spec, self.w = spec, weights
        self.g = Graph()
        self.counter = 0

    def uid(self, name):
        """tf2onnx appends '__<n>' to the names of nodes it creates."""
        self.counter += 1
        return f"{name}__{self.counter}"

    def shape_i32(self, x, name):
        g = self.g
        return g.op("Cast", [g.op("Shape", [x], name)], self.uid(name), to=6)

    def slice1(self, sh, lo, name):
        """sh[lo:lo+1] as a 4-input Slice with int64 starts/ends/axes (kept consistent: the
        original sample mixed int32/int64 in a Slice and did not load)."""
        g = self.g
        return g.op("Slice", [sh, g.i64(f"{name}/stack:0", [lo]), g.i64(f"{name}/stack_1:0", [lo + 1]),
                              g.i64(f"{name}/axes:0", [0])], name)

    def ln(self, x, scope, gb, axes):
        return tf_layer_norm(self.g, x, scope, gb[0], gb[1], "1.6.5", axes)

    def build(self):
        from onnx import helper, TensorProto
        g, s, w = self.g, self.spec, self.w
        H, N, L = s["hidden"], s["heads"], s["layers"]
        Hd = H // N
        IN = "input_ids_tensor:0"
        E = "bert/embeddings"

        # 4.2 embeddings: word + position
        ids = g.op("Cast", [IN], "bert/Cast", to=6)
        u = g.op("Unsqueeze", [ids], f"{E}/ExpandDims", axes=[2])
        fl = g.op("Reshape", [u, g.i64(f"{E}/Reshape/shape:0", [-1])], f"{E}/Reshape")
        gw = g.op("Gather", [g.f32(f"{E}/word_embeddings:0", w["word"]), fl], f"{E}/GatherV2",
                  axis=0)
        shu = self.shape_i32(u, f"{E}/Shape")
        b_ = self.slice1(shu, 0, f"{E}/strided_slice")
        s_ = self.slice1(shu, 1, f"{E}/strided_slice_1")
        c = g.op("Concat", [b_, s_, g.i32(f"{E}/Reshape_1/shape/2:0", [H])], f"{E}/Reshape_1/shape",
                 axis=0)
        w3 = g.op("Reshape", [gw, g.op("Cast", [c], self.uid(f"{E}/Reshape_1/shape"), to=7)],
                  f"{E}/Reshape_1")
        shw = self.shape_i32(w3, f"{E}/Shape_1")
        s2 = self.slice1(shw, 1, f"{E}/strided_slice_2")
        # CHOICE (doc 4.2): the slice size is Concat(S', {H}); modeling.py writes [S, -1], and
        # the -1 rewrite (Equal/Cast/Mul/Add) below gives the same rows either way.
        sz = g.op("Concat", [s2, g.i32(f"{E}/Slice/size/1:0", [H])], f"{E}/Slice/size", axis=0)
        eq = g.op("Equal", [g.i32(f"{E}/Slice__minus_one:0", [-1]), sz], self.uid(f"{E}/Slice"))
        ce = g.op("Cast", [eq], self.uid(f"{E}/Slice"), to=6)
        mm = g.op("Mul", [g.i32(f"{E}/Slice__max:0", [MAX32]), ce], self.uid(f"{E}/Slice"))
        a1 = g.op("Add", [sz, mm], self.uid(f"{E}/Slice"))
        begin = g.i32(f"{E}/Slice/begin:0", [0, 0])
        end = g.op("Add", [begin, a1], self.uid(f"{E}/Slice"))
        pos = g.f32(f"{E}/position_embeddings:0", w["pos"])
        ps = g.op("Slice", [pos, begin, end], f"{E}/Slice")
        c3 = g.op("Concat", [g.i32(f"{E}/Reshape_2/shape/0:0", [1]), s2,
                             g.i32(f"{E}/Reshape_2/shape/2:0", [H])], f"{E}/Reshape_2/shape", axis=0)
        p3 = g.op("Reshape", [ps, g.op("Cast", [c3], self.uid(f"{E}/Reshape_2/shape"), to=7)],
                  f"{E}/Reshape_2")
        e = g.op("Add", [w3, p3], f"{E}/add")
        ye = self.ln(e, f"{E}/LayerNorm", w["emb_ln"], [2])
        x = g.op("Reshape", [ye, g.i64("bert/encoder/Reshape/shape:0", [-1, H])],
                 "bert/encoder/Reshape")

        # Shared pieces (de-duplicated across layers; CHOICE: the surviving names are the last
        # layer's). B, S of the 3-D embedding output as scalars.
        EN = "bert/encoder"
        Ls = f"{EN}/layer_{L - 1}/attention/self"
        she = self.shape_i32(ye, f"{EN}/Shape")
        bq = g.op("Squeeze", [self.slice1(she, 0, f"{EN}/strided_slice_cropping")],
                  f"{EN}/strided_slice", axes=[0])
        sq = g.op("Squeeze", [self.slice1(she, 1, f"{EN}/strided_slice_1_cropping")],
                  f"{EN}/strided_slice_1", axes=[0])
        ub = g.op("Unsqueeze", [bq], self.uid(f"{Ls}/Reshape/shape"), axes=[0])
        us = g.op("Unsqueeze", [sq], self.uid(f"{Ls}/Reshape/shape"), axes=[0])
        c4 = g.op("Concat", [ub, us, g.i32(f"{Ls}/Reshape/shape/2:0", [N]),
                             g.i32(f"{Ls}/Reshape/shape/3:0", [Hd])], f"{Ls}/Reshape/shape", axis=0)
        sp4 = g.op("Cast", [c4], self.uid(f"{Ls}/Reshape/shape"), to=7)
        bs = g.op("Mul", [bq, sq], f"{Ls}/mul_1")
        cm = g.op("Concat", [g.op("Unsqueeze", [bs], self.uid(f"{Ls}/Reshape_3/shape"), axes=[0]),
                             g.i32(f"{Ls}/Reshape_3/shape/1:0", [H])], f"{Ls}/Reshape_3/shape",
                  axis=0)
        merge = g.op("Cast", [cm], self.uid(f"{Ls}/Reshape_3/shape"), to=7)

        # 4.3 mask from input_ids != 0. CHOICE: B0 from Shape(ids) (modeling.py's from_tensor)
        # and S0 from Shape(mask) (its to_mask), as create_attention_mask_from_input_mask reads.
        eq0 = g.op("Equal", [IN, g.i64("NotEqual/y:0", 0)], "NotEqual")
        nz = g.op("Not", [eq0], self.uid("NotEqual"))
        mi = g.op("Cast", [g.op("Cast", [nz], "ToInt64", to=7)], "bert/Cast_1", to=6)
        mf = g.op("Cast", [mi], f"{EN}/Cast", to=1)
        b0 = self.slice1(self.shape_i32(ids, f"{EN}/Shape_1"), 0, f"{EN}/strided_slice_2")
        s0 = self.slice1(self.shape_i32(mi, f"{EN}/Shape_2"), 1, f"{EN}/strided_slice_3")
        cr = g.op("Concat", [b0, g.i32(f"{EN}/Reshape_1/shape/1:0", [1]), s0],
                  f"{EN}/Reshape_1/shape", axis=0)
        mr = g.op("Reshape", [mf, g.op("Cast", [cr], self.uid(f"{EN}/Reshape_1/shape"), to=7)],
                  f"{EN}/Reshape_1")
        mu = g.op("Unsqueeze", [mr], f"{Ls}/ExpandDims", axes=[1])
        ms = g.op("Sub", [g.f32(f"{Ls}/sub/x:0", 1.0), mu], f"{Ls}/sub")
        mask = g.op("Mul", [ms, g.f32(f"{Ls}/mul/y:0", -10000.0)], f"{Ls}/mul")

        for i in range(L):
            x = self.layer(x, i, mask, sp4, merge)

        # final Reshape to [B, S, H] (modeling.py reshape_from_matrix); its Unsqueeze(B), Unsqueeze(S)
        # are identical to sp4's and de-duplicated with them.
        cf = g.op("Concat", [ub, us, g.i32(f"{EN}/Reshape_{L + 2}/shape/2:0", [H])],
                  f"{EN}/Reshape_{L + 2}/shape", axis=0)
        y3 = g.op("Reshape", [x, g.op("Cast", [cf], self.uid(f"{EN}/Reshape_{L + 2}/shape"), to=7)],
                  f"{EN}/Reshape_{L + 2}")

        # small classification head: first token -> pooler (MatMul, Add, Tanh) -> MatMul, Add ->
        # Identity -> graph output. CHOICE: the one Identity sits before the graph output, the only
        # place tf2onnx's optimizer keeps them.
        P = "bert/pooler"
        first = g.op("Slice", [y3, g.i64(f"{P}/strided_slice/stack:0", [0]),
                               g.i64(f"{P}/strided_slice/stack_1:0", [1]),
                               g.i64(f"{P}/strided_slice/axes:0", [1])], f"{P}/strided_slice")
        first = g.op("Squeeze", [first], f"{P}/Squeeze", axes=[1])
        pm = g.op("MatMul", [first, g.f32(f"{P}/dense/kernel:0", w["pool"][0])], f"{P}/dense/MatMul")
        pa = g.op("Add", [pm, g.f32(f"{P}/dense/bias:0", w["pool"][1])], f"{P}/dense/BiasAdd")
        pt = g.op("Tanh", [pa], f"{P}/dense/Tanh")
        cmm = g.op("MatMul", [pt, g.f32("output_weights:0", w["cls"][0])], "loss/MatMul")
        ca = g.op("Add", [cmm, g.f32("output_bias:0", w["cls"][1])], "loss/BiasAdd")
        g.op("Identity", [ca], "output_logits_tensor", out_names=["output_logits_tensor:0"])

        if s["static"]:
            in_dims, out_dims = [s["batch"], s["seq"]], [s["batch"], 2]
        else:
            in_dims, out_dims = ["unk__0", "unk__1"], ["unk__2", 2]
        graph = helper.make_graph(
            g.nodes, "tf2onnx", [helper.make_tensor_value_info(IN, TensorProto.INT64, in_dims)],
            [helper.make_tensor_value_info("output_logits_tensor:0", TensorProto.FLOAT, out_dims)],
            initializer=g.inits)
        model = helper.make_model(graph, producer_name="tf2onnx", producer_version="1.6.0",
                                  opset_imports=[helper.make_opsetid("", 11)])
        model.ir_version = 6
        return model

    def layer(self, x, i, mask, sp4, merge):
        g, lw, s = self.g, self.w["layers"][i], self.spec
        Hd = s["hidden"] // s["heads"]
        L = f"bert/encoder/layer_{i}"
        A = f"{L}/attention/self"

        def dense(inp, scope, wb):
            mm = g.op("MatMul", [inp, g.f32(f"{scope}/kernel:0", wb[0])], f"{scope}/MatMul")
            return g.op("Add", [mm, g.f32(f"{scope}/bias:0", wb[1])], f"{scope}/BiasAdd")

        q = dense(x, f"{A}/query", lw["q"])
        k = dense(x, f"{A}/key", lw["k"])
        v = dense(x, f"{A}/value", lw["v"])
        heads = []
        for t, rname, tname, perm in ((q, "Reshape", "transpose", [0, 2, 1, 3]),
                                      (k, "Reshape_1", "transpose_1", [0, 2, 3, 1]),
                                      (v, "Reshape_2", "transpose_2", [0, 2, 1, 3])):
            r = g.op("Reshape", [t, sp4], f"{A}/{rname}")
            heads.append(g.op("Transpose", [r], f"{A}/{tname}", perm=perm))
        qt, kt, vt = heads
        sc = g.op("MatMul", [qt, kt], f"{A}/MatMul")
        ss = g.op("Mul", [sc, g.f32(f"{A}/Mul/y:0", 1.0 / math.sqrt(Hd))], f"{A}/Mul")
        sm = g.op("Add", [ss, mask], f"{A}/add")
        p = g.op("Softmax", [sm], f"{A}/Softmax", axis=3)
        cx = g.op("MatMul", [p, vt], f"{A}/MatMul_1")
        ct = g.op("Transpose", [cx], f"{A}/transpose_3", perm=[0, 2, 1, 3])
        o2 = g.op("Reshape", [ct, merge], f"{A}/Reshape_3")
        O = f"{L}/attention/output"
        r1 = g.op("Add", [dense(o2, f"{O}/dense", lw["o"]), x], f"{O}/add")
        y1 = self.ln(r1, f"{O}/LayerNorm", lw["ln1"], [1])

        I = f"{L}/intermediate/dense"
        f = dense(y1, I, lw["i"])
        pw = g.op("Pow", [f, g.f32(f"{I}/Pow/y:0", 3.0)], f"{I}/Pow")
        c = g.op("Mul", [g.f32(f"{I}/mul/x:0", 0.044715), pw], f"{I}/mul")
        a = g.op("Add", [f, c], f"{I}/add")
        t = g.op("Mul", [g.f32(f"{I}/mul_1/x:0", math.sqrt(2.0 / math.pi)), a], f"{I}/mul_1")
        th = g.op("Tanh", [t], f"{I}/Tanh")
        a2 = g.op("Add", [g.f32(f"{I}/add_1/x:0", 1.0), th], f"{I}/add_1")
        h = g.op("Mul", [g.f32(f"{I}/mul_2/x:0", 0.5), a2], f"{I}/mul_2")
        gl = g.op("Mul", [f, h], f"{I}/mul_3")

        OU = f"{L}/output"
        r2 = g.op("Add", [dense(gl, f"{OU}/dense", lw["o2"]), y1], f"{OU}/add")
        return self.ln(r2, f"{OU}/LayerNorm", lw["ln2"], [1])


def build(spec, weights=None):
    """Returns the onnx ModelProto for spec (weights from make_weights unless given)."""
    weights = weights or make_weights(spec)
    cls = Tf2onnx if spec["kind"] == "tf2onnx16" else Keras
    return cls(spec, weights).build()


# ----------------------------------------------------------------------------------------------
# Checks

def describe(model, label):
    hist = collections.Counter(n.op_type for n in model.graph.node)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    print(f"{label}: {len(model.graph.node)} nodes, opset {opset}, IR {model.ir_version}",
          file=sys.stderr)
    for op, n in sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {op:<20} {n}", file=sys.stderr)


def expected_counts(spec):
    """Op counts the layout must have (exporter-layouts.md 3.1, 3.x, 4.x), for L layers."""
    L = spec["layers"]
    if spec["kind"] == "tf2onnx16":
        return {"Softmax": L, "Erf": 0, "Tanh": L + 1, "Pow": L, "Sqrt": 2 * L + 1,
                "Reciprocal": 2 * L + 1, "MatMul": 8 * L + 2, "Identity": 1, "Constant": 0,
                "Transpose": 4 * L, "Range": 0, "Not": 1}
    old = spec["keras_version"] == "1.6.1"
    qa = spec["kind"] == "keras_qa"
    return {"Softmax": L, "Erf": L, "Tanh": 0 if qa else 1,
            # LN Sqrt 2L+1; 1.6.5 adds the unfolded Sqrt(Hd) and Sqrt(2.0) of every layer
            "Sqrt": 2 * L + 1 + (0 if old else 2 * L), "Reciprocal": 2 * L + 1,
            "MatMul": 8 * L + (1 if qa else 2), "Constant": 0, "Transpose": 4 * L,
            "Range": 0 if old else 1, "Identity": 0 if qa else 1, "Split": 1 if qa else 0}


KERAS_LAYER_HIST = {  # doc 3.1, per layer
    "1.6.1": dict(total=131, Cast=18, Reshape=14, Unsqueeze=15, Concat=10, ReduceProd=8, Gather=8),
    "1.6.5": dict(total=158, Cast=23, Reshape=16, Unsqueeze=16, Concat=16, ReduceProd=12, Gather=12),
}


def check(spec, path, label, verbose):
    import onnx
    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        if "ir_version" not in str(e).lower() and "ir version" not in str(e).lower():
            raise
        print(f"warning: {label}: onnx.checker: {e}", file=sys.stderr)
    if verbose:
        describe(model, label)
    hist = collections.Counter(n.op_type for n in model.graph.node)
    wrong = {op: (hist.get(op, 0), n) for op, n in expected_counts(spec).items()
             if hist.get(op, 0) != n}
    if spec["kind"] != "tf2onnx16":
        want = KERAS_LAYER_HIST[spec["keras_version"]]
        for i in range(spec["layers"]):
            layer = [n for n in model.graph.node if f"/layer_._{i}/" in n.name]
            lh = collections.Counter(n.op_type for n in layer)
            for op, n in want.items():
                got = len(layer) if op == "total" else lh.get(op, 0)
                if got != n:
                    wrong[f"layer {i} {op}"] = (got, n)
    else:  # tf2onnx16: 59 nodes named layer_i/ per layer (the shared ones carry layer L-1's
        # names too: 11 more there)
        for i in range(spec["layers"]):
            got = sum(1 for n in model.graph.node if f"/layer_{i}/" in "/" + n.name)
            n = 59 + (11 if i == spec["layers"] - 1 else 0)
            if got != n:
                wrong[f"layer {i} total"] = (got, n)
    if wrong:
        raise SystemExit(f"{label}: layout differs from exporter-layouts.md (op: got, want): {wrong}")
    names = [i.name for i in model.graph.input]
    want_names = (["input_ids_tensor:0"] if spec["kind"] == "tf2onnx16"
                  else ["attention_mask", "input_ids", "token_type_ids"])
    if names != want_names:
        raise SystemExit(f"{label}: graph inputs {names}, expected {want_names}")
    produced = {o for n in model.graph.node for o in n.output}
    for n in model.graph.node:
        if n.op_type == "Constant":
            raise SystemExit(f"{label}: Constant node {n.name}")
    known = produced | {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer}
    missing = {x for n in model.graph.node for x in n.input if x and x not in known}
    if missing:
        raise SystemExit(f"{label}: dangling inputs {sorted(missing)[:5]}")


# ----------------------------------------------------------------------------------------------
# Driver (same conventions as gen_bert.py)

def generate(args):
    """Returns the absolute path of the model described by args, building it if needed."""
    spec = resolve(args)
    if args.output:
        path = Path(args.output).resolve()
    else:
        path = cache_path(spec, args.cache_dir or DEFAULT_CACHE).resolve()
        if path.exists():
            if args.verbose:
                import onnx
                describe(onnx.load(str(path)), f"{path.name} (cached)")
            return path
    import onnx
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        start = time.monotonic()
        onnx.save(build(spec), str(tmp))
        check(spec, tmp, path.name, args.verbose)
        os.replace(tmp, path)
        if args.verbose:
            print(f"{path.name}: {time.monotonic() - start:.2f} s", file=sys.stderr)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def main(argv=None):
    generator_cli.run(build_parser(), generate, argv)


if __name__ == "__main__":
    main()
