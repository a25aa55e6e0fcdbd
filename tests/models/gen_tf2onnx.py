#!/usr/bin/env python3
"""Export small random Keras BERT models to ONNX with tf2onnx, for bertopt's fusion tests.

The model follows the layer structure of Hugging Face's TFBert (word/position/token-type
embeddings read with tf.gather, Keras Dense and LayerNormalization layers, heads split by
reshape + transpose, additive -10000 mask), with random seeded weights. It is saved as a
TensorFlow SavedModel and converted with `python -m tf2onnx.convert --saved-model` (the
command-line path most users take); `--method keras` uses tf2onnx.convert.from_keras instead.

Run with the venv that has tensorflow-cpu + tf2onnx (see tf2onnx/README.md):
    /work/venvs/tf/bin/python tests/models/gen_tf2onnx.py --all            # the committed set
    /work/venvs/tf/bin/python tests/models/gen_tf2onnx.py --kind qa --gelu tanh --opset 17 \
        --static --output /tmp/x.onnx
"""

import argparse
import contextlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "tf2onnx"

# (kind, gelu, opset, static, keras) of the committed set
MATRIX = ([(k, g, o, s, "keras3") for k in ("seq",) for g in ("erf", "tanh") for o in (13, 17)
           for s in (False, True)]
          + [("qa", "erf", 13, False, "keras3"), ("qa", "tanh", 17, True, "keras3"),
             ("seq", "erf", 13, False, "tf_keras"), ("seq", "tanh", 17, True, "tf_keras")])


def file_name(kind, gelu, opset, static, keras="keras3"):
    pre = "tf2onnx_tfkeras" if keras == "tf_keras" else "tf2onnx"
    return f"{pre}_{kind}_{gelu}_op{opset}_{'static' if static else 'dynamic'}.onnx"


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=("seq", "qa"), default="seq")
    p.add_argument("--gelu", choices=("erf", "tanh"), default="erf")
    p.add_argument("--opset", type=int, default=13)
    p.add_argument("--static", action="store_true", help="input shape [batch, seq] fixed")
    p.add_argument("--batch", type=int, default=2, help="static batch")
    p.add_argument("--seq", type=int, default=16, help="static sequence length")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=256)
    p.add_argument("--vocab", type=int, default=256, help="256 keeps every file under 600 kB")
    p.add_argument("--max_position", type=int, default=128)
    p.add_argument("--type_vocab", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", choices=("saved_model", "keras"), default="saved_model")
    p.add_argument("--keras", choices=("keras3", "tf_keras"), default="keras3",
                   help="keras3: TensorFlow's default tf.keras (Keras 3); tf_keras: Keras 2 "
                   "(package tf-keras, what Hugging Face's TF models run on)")
    p.add_argument("--output", help="output .onnx path (single model)")
    p.add_argument("--all", action="store_true",
                   help=f"write the committed set into {OUT_DIR} "
                   "(ignores kind/gelu/opset/static/keras)")
    p.add_argument("--no_validate", action="store_true")
    p.add_argument("--validate_only", action="store_true",
                   help="rebuild the (seeded) Keras model and compare it with the existing "
                   ".onnx file(s) without converting again")
    return p


# --------------------------------------------------------------------------------------------
# model

def make_model(args, tf, keras):
    H, N, L = args.hidden, args.heads, args.layers
    Hd = H // N
    assert H % N == 0

    def gelu(x):
        if args.gelu == "erf":
            return 0.5 * x * (1.0 + tf.math.erf(x / math.sqrt(2.0)))
        c = math.sqrt(2.0 / math.pi)
        return 0.5 * x * (1.0 + tf.math.tanh(c * (x + 0.044715 * tf.math.pow(x, 3))))

    class Layer(keras.layers.Layer):
        def __init__(self, i, **kw):
            super().__init__(name=f"layer_{i}", **kw)
            self.query = keras.layers.Dense(H, name="query")
            self.key = keras.layers.Dense(H, name="key")
            self.value = keras.layers.Dense(H, name="value")
            self.attn_out = keras.layers.Dense(H, name="attention_output_dense")
            self.attn_ln = keras.layers.LayerNormalization(epsilon=1e-12,
                                                           name="attention_output_LayerNorm")
            self.inter = keras.layers.Dense(args.intermediate, name="intermediate_dense")
            self.out = keras.layers.Dense(H, name="output_dense")
            self.out_ln = keras.layers.LayerNormalization(epsilon=1e-12, name="output_LayerNorm")

        def split(self, x, b):
            x = tf.reshape(x, (b, -1, N, Hd))
            return tf.transpose(x, perm=[0, 2, 1, 3])

        def call(self, h, ext_mask):
            b = tf.shape(h)[0]
            q = self.split(self.query(h), b)
            k = self.split(self.key(h), b)
            v = self.split(self.value(h), b)
            scores = tf.matmul(q, k, transpose_b=True)
            scores = tf.divide(scores, tf.cast(math.sqrt(Hd), scores.dtype))
            scores = tf.add(scores, ext_mask)
            probs = tf.nn.softmax(scores, axis=-1)
            ctx = tf.matmul(probs, v)
            ctx = tf.transpose(ctx, perm=[0, 2, 1, 3])
            ctx = tf.reshape(ctx, (b, -1, H))
            a = self.attn_ln(self.attn_out(ctx) + h)
            i = gelu(self.inter(a))
            return self.out_ln(self.out(i) + a)

    class Bert(keras.Model):
        def __init__(self, **kw):
            super().__init__(name="bert", **kw)
            self.word = self.add_weight(name="word_embeddings", shape=(args.vocab, H))
            self.pos = self.add_weight(name="position_embeddings",
                                       shape=(args.max_position, H))
            self.typ = self.add_weight(name="token_type_embeddings",
                                       shape=(args.type_vocab, H))
            self.emb_ln = keras.layers.LayerNormalization(epsilon=1e-12,
                                                          name="embeddings_LayerNorm")
            self.enc = [Layer(i) for i in range(L)]
            if args.kind == "seq":
                self.pooler = keras.layers.Dense(H, activation="tanh", name="pooler")
                self.classifier = keras.layers.Dense(2, name="classifier")
            else:
                self.qa = keras.layers.Dense(2, name="qa_outputs")

        def call(self, inputs):
            ids = inputs["input_ids"]
            mask = inputs["attention_mask"]
            tt = inputs["token_type_ids"]
            seq = tf.shape(ids)[1]
            pos_ids = tf.expand_dims(tf.range(start=0, limit=seq), axis=0)
            e = (tf.gather(self.word, ids) + tf.gather(self.pos, pos_ids)
                 + tf.gather(self.typ, tt))
            h = self.emb_ln(e)
            m = tf.cast(mask[:, None, None, :], h.dtype)
            ext = (1.0 - m) * -10000.0
            for layer in self.enc:
                h = layer(h, ext)
            if args.kind == "seq":
                logits = self.classifier(self.pooler(h[:, 0]))
                return {"logits": logits}
            lg = self.qa(h)
            start, end = tf.split(lg, 2, axis=-1)
            return {"start_logits": tf.squeeze(start, axis=-1),
                    "end_logits": tf.squeeze(end, axis=-1)}

    model = Bert()
    b, s = (args.batch, args.seq) if args.static else (None, None)
    spec = {n: tf.TensorSpec([b, s], tf.int32, name=n)
            for n in ("input_ids", "attention_mask", "token_type_ids")}
    # build with a dummy call, then set seeded random weights
    model({n: tf.ones([1, 4], tf.int32) for n in spec})
    import numpy as np
    rng = np.random.RandomState(args.seed)
    for w in model.weights:
        path = w.path if hasattr(w, "path") else w.name
        shape = tuple(w.shape)
        if "embeddings" in path and "LayerNorm" not in path:
            val = rng.normal(0, 0.02, shape)
        elif path.endswith("kernel") or path.endswith("kernel:0"):
            val = rng.normal(0, 1.0 / math.sqrt(shape[0]), shape)
        elif path.endswith("gamma") or path.endswith("gamma:0"):
            val = 1.0 + rng.normal(0, 0.1, shape)
        else:  # beta, bias
            val = rng.normal(0, 0.1, shape)
        w.assign(val.astype("float32"))
    return model, spec


# --------------------------------------------------------------------------------------------
# conversion

def convert(args, tf, keras, model, spec, out_path):
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if args.method == "keras":
        import tf2onnx
        sig = [spec]
        tf2onnx.convert.from_keras(model, input_signature=sig, opset=args.opset,
                                   output_path=str(out_path))
        return
    tmp = tempfile.mkdtemp(prefix="gen_tf2onnx_")
    try:
        # Keras 3's export path (what model.export() uses), with the three inputs as
        # separate named arguments so the SavedModel signature has input_ids, ... as inputs
        def serve(input_ids, attention_mask, token_type_ids):
            return model({"input_ids": input_ids, "attention_mask": attention_mask,
                          "token_type_ids": token_type_ids})

        sm = os.path.join(tmp, "saved_model")
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(name="serve", fn=serve, input_signature=list(spec.values()))
        with contextlib.redirect_stdout(sys.stderr):  # tf_keras prints the signature
            try:
                archive.write_out(sm, verbose=False)
            except TypeError:  # tf_keras has no verbose argument
                archive.write_out(sm)
        cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", sm,
               "--opset", str(args.opset), "--output", str(out_path)]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stdout)
            raise SystemExit(f"tf2onnx.convert failed ({r.returncode})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def make_inputs(rng, B, S, vocab):
    """Random ids, right-padded masks of different lengths, second segment of type 1."""
    import numpy as np
    ids = rng.randint(2, vocab, (B, S)).astype(np.int32)
    lens = [S, S - 5, S // 2 + 1][:B] + [S - 3] * max(0, B - 3)
    mask = np.zeros((B, S), np.int32)
    tt = np.zeros((B, S), np.int32)
    for i, n in enumerate(lens):
        mask[i, :n] = 1
        tt[i, n // 2:n] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}


def validate(args, tf, model, onnx_path):
    """ORT (all graph optimizations off) vs TF on random right-padded inputs.

    Returns [(B, S, {output: max abs diff}, {output: max |TF output|},
              {output: max change of the TF output when the mask is set to all ones})].
    Dynamic models are checked at (3, 16) and (2, 9), static ones at their own shape.
    """
    import numpy as np
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    rng = np.random.RandomState(1234)
    shapes = [(args.batch, args.seq)] if args.static else [(3, 16), (2, 9)]
    results = []
    for B, S in shapes:
        feeds = make_inputs(rng, B, S, args.vocab)

        def tf_run(f):
            out = model({k: tf.constant(v) for k, v in f.items()})
            return {k: v.numpy() for k, v in out.items()}

        ref = tf_run(feeds)
        unmasked = tf_run(dict(feeds, attention_mask=np.ones_like(feeds["attention_mask"])))
        outs = sess.run(None, {i.name: feeds[i.name.split(":")[0]] for i in sess.get_inputs()})
        diffs = {n.split(":")[0]: float(np.max(np.abs(o - ref[n.split(":")[0]])))
                 for n, o in zip(names, outs)}
        mags = {k: float(np.max(np.abs(v))) for k, v in ref.items()}
        mask_eff = {k: float(np.max(np.abs(v - unmasked[k]))) for k, v in ref.items()}
        results.append((B, S, diffs, mags, mask_eff))
    return results


def main(argv=None):
    args = build_parser().parse_args(argv)
    import tensorflow as tf
    import importlib
    jobs = []
    if args.all:
        for kind, gelu, opset, static, ker in MATRIX:
            a = argparse.Namespace(**vars(args))
            a.kind, a.gelu, a.opset, a.static, a.keras = kind, gelu, opset, static, ker
            jobs.append((a, OUT_DIR / file_name(kind, gelu, opset, static, ker)))
    else:
        out = args.output or (OUT_DIR / file_name(args.kind, args.gelu, args.opset,
                                                  args.static, args.keras))
        jobs.append((args, Path(out)))
    for a, out in jobs:
        keras = importlib.import_module("tf_keras" if a.keras == "tf_keras" else "keras")
        keras.backend.clear_session()
        model, spec = make_model(a, tf, keras)
        if not a.validate_only:
            convert(a, tf, keras, model, spec, out)
        line = f"{out.name}\t{out.stat().st_size} bytes"
        if not a.no_validate:
            for B, S, diffs, mags, eff in validate(a, tf, model, out):
                line += f"\tB,S={B},{S}: " + ", ".join(
                    f"{k} maxabsdiff={diffs[k]:.3g} (max|ref|={mags[k]:.3g}, "
                    f"mask effect={eff[k]:.3g})" for k in sorted(diffs))
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
