#!/usr/bin/python3
"""Export small random BERT-family models to ONNX with torch 1.13, for bertopt's end-to-end tests.

The modules below follow the Hugging Face layer structure and module names (BERT, DistilBERT,
RoBERTa) closely enough that torch.onnx.export emits the layouts described in
shared/docs/exporter-layouts.md, section 2. Every weight, bias and LayerNorm gamma/beta is random
so that a fusion which drops one of them changes the outputs.

Run with Debian's /usr/bin/python3 (python3-torch 1.13, python3-onnx 1.12). See README.md.
"""

import argparse
import collections
import contextlib
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import generator_cli

KINDS = ("bert_seq", "bert_qa", "bert_base_model", "distilbert", "roberta")
OPSETS = (10, 11, 12, 13, 14, 15, 16, 17)
SCRIPT = Path(__file__).resolve()
DEFAULT_CACHE = SCRIPT.parent / "cache"


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=KINDS, default="bert_seq")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, help="default 4*hidden")
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--max_position", type=int,
                   help="default 128; RoBERTa 512, and its table has 2 more rows (514)")
    p.add_argument("--type_vocab", type=int, help="default 2 (RoBERTa 1)")
    p.add_argument("--opset", type=int, choices=OPSETS, default=11)
    p.add_argument("--static", action="store_true", help="no dynamic axes; batch/seq baked in")
    p.add_argument("--batch", type=int, default=2, help="dummy input batch size")
    p.add_argument("--seq", type=int, default=16, help="dummy input sequence length")
    p.add_argument("--naming", choices=("hf", "google"), default="hf")
    p.add_argument("--position", choices=("arange", "buffer"), default="arange")
    p.add_argument("--mask_value", help="-10000 (default), min (float32 min), -inf, or a number; "
                   "DistilBERT's default is -inf")
    p.add_argument("--no_token_type", action="store_true")
    p.add_argument("--half", action="store_true",
                   help="model.half() before export: float16 weights, constants and math")
    p.add_argument("--weights", help="a .safetensors state dict with HF BERT names (e.g. MiniLM) "
                   "instead of random weights; sizes must match the options")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--functions", action="store_true",
                   help="export each encoder layer as an ONNX local function "
                        "(export_modules_as_functions; opset >= 15)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--cache_dir", help=f"default {DEFAULT_CACHE}")
    out.add_argument("--output", help="write exactly here (always regenerated)")
    p.add_argument("--batch_file", help="one set of options per line; prints one path per line")
    p.add_argument("--verbose", action="store_true", help="print a node-type histogram (stderr)")
    return p


def resolve(args):
    """Fills kind-dependent defaults and rejects impossible combinations; returns the model spec."""
    roberta = args.kind == "roberta"
    distil = args.kind == "distilbert"
    spec = dict(
        kind=args.kind, layers=args.layers, hidden=args.hidden, heads=args.heads,
        intermediate=args.intermediate or 4 * args.hidden, vocab=args.vocab,
        max_position=args.max_position or (512 if roberta else 128),
        type_vocab=0 if distil else (args.type_vocab or (1 if roberta else 2)),
        opset=args.opset, static=args.static, batch=args.batch, seq=args.seq, naming=args.naming,
        position=args.position,
        mask_value=canonical_mask_value(args.mask_value or ("-inf" if distil else "-10000")),
        token_type=not (args.no_token_type or distil), seed=args.seed, half=args.half,
        weights=file_digest(args.weights) if args.weights else None)
    if args.functions:  # only when asked, so every other model keeps its cache key
        spec["functions"] = True
        if args.opset < 15:
            raise SystemExit("--functions needs --opset >= 15 (local functions)")
    if args.hidden % args.heads:
        raise SystemExit(f"--hidden {args.hidden} is not a multiple of --heads {args.heads}")
    if roberta and args.opset < 11:
        raise SystemExit("roberta needs --opset >= 11: its position ids use CumSum (opset 11)")
    if roberta and args.position != "arange":
        raise SystemExit("roberta computes positions from input_ids; --position does not apply")
    if args.seq > spec["max_position"]:
        raise SystemExit(f"--seq {args.seq} exceeds --max_position {spec['max_position']}")
    if args.vocab <= 2:
        raise SystemExit("--vocab must be > 2 (dummy ids are drawn from [2, vocab))")
    return spec


def file_digest(path):
    """The SHA-256 of a weights file: the cache key covers its content, not its location."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_safetensors(path):
    """name -> numpy array. The format is an 8-byte little-endian header size, a JSON header of
    {name: {dtype, shape, data_offsets}}, then the raw little-endian data: no package needed."""
    import numpy as np
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}
    data = Path(path).read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        buf = data[8 + size + begin:8 + size + end]
        tensors[name] = np.frombuffer(buf, dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return tensors


def load_weights(model, path):
    """Copies a safetensors state dict into `model`; every parameter must be there, same shape."""
    import torch
    tensors = read_safetensors(path)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name not in tensors:
                raise SystemExit(f"--weights {path}: no tensor '{name}'")
            value = torch.from_numpy(tensors[name].copy())
            if tuple(value.shape) != tuple(param.shape):
                raise SystemExit(f"--weights {path}: '{name}' has shape {tuple(value.shape)}, "
                                 f"the model {tuple(param.shape)}")
            param.copy_(value)


def canonical_mask_value(text):
    """One spelling per value, so -10000 and -1e4 hash (and cache) alike."""
    return "min" if text == "min" else repr(mask_multiplier(text))


def mask_multiplier(text, half=False):
    if text == "min":  # torch.finfo(dtype).min, what HF 4.x uses
        return -65504.0 if half else -3.4028234663852886e38
    try:
        return float(text)
    except ValueError:
        raise SystemExit(f"--mask_value {text!r}: expected -10000, min, -inf or a number")


def cache_path(spec, cache_dir):
    source = hashlib.sha256(SCRIPT.read_bytes()).hexdigest()
    key = json.dumps({"spec": spec, "generator": source}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    suffix = ("_static" if spec["static"] else "") + ("_half" if spec["half"] else "") + \
        ("_functions" if spec.get("functions") else "")
    return Path(cache_dir) / f"{spec['kind']}_op{spec['opset']}{suffix}_{digest}.onnx"


# ----------------------------------------------------------------------------------------------
# Models. Imported lazily so that `--help` and cache hits do not pay for `import torch`.

def define_models():
    import torch
    from torch import nn

    def gelu(x):
        # The erf formula as HF writes it; nn.functional.gelu exports another node order.
        return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))

    class Embeddings(nn.Module):
        """word + position (+ token type), then LayerNorm. BERT, RoBERTa and DistilBERT."""

        def __init__(self, c, positions, eps):
            super().__init__()
            self.positions = positions  # "arange", "buffer" or "roberta"
            self.padding_idx = 1
            rows = c["max_position"] + (2 if positions == "roberta" else 0)
            self.word_embeddings = nn.Embedding(c["vocab"], c["hidden"])
            self.position_embeddings = nn.Embedding(rows, c["hidden"])
            if c["type_vocab"]:
                self.token_type_embeddings = nn.Embedding(c["type_vocab"], c["hidden"])
            self.LayerNorm = nn.LayerNorm(c["hidden"], eps=eps)
            if positions == "buffer":
                self.register_buffer("position_ids", torch.arange(rows).expand((1, -1)))

        def position_ids_for(self, input_ids):
            seq_length = input_ids.size(1)
            if self.positions == "buffer":  # P4
                return self.position_ids[:, :seq_length]
            if self.positions == "roberta":  # P7: padding tokens keep position padding_idx
                mask = input_ids.ne(self.padding_idx).int()
                incremental = torch.cumsum(mask, dim=1).type_as(mask) * mask
                return incremental.long() + self.padding_idx
            ids = torch.arange(seq_length, dtype=torch.long, device=input_ids.device)  # P1/P2
            return ids.unsqueeze(0).expand_as(input_ids)

        def forward(self, input_ids, token_type_ids=None):
            words = self.word_embeddings(input_ids)
            positions = self.position_embeddings(self.position_ids_for(input_ids))
            embeddings = words + positions
            if hasattr(self, "token_type_embeddings"):
                if token_type_ids is None:
                    token_type_ids = torch.zeros_like(input_ids)
                embeddings = embeddings + self.token_type_embeddings(token_type_ids)
            return self.LayerNorm(embeddings)

    class SelfAttention(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.num_attention_heads = c["heads"]
            self.attention_head_size = c["hidden"] // c["heads"]
            self.all_head_size = c["hidden"]
            self.query = nn.Linear(c["hidden"], c["hidden"])
            self.key = nn.Linear(c["hidden"], c["hidden"])
            self.value = nn.Linear(c["hidden"], c["hidden"])

        def transpose_for_scores(self, x):
            new_shape = x.size()[:-1] + (self.num_attention_heads, self.attention_head_size)
            return x.view(*new_shape).permute(0, 2, 1, 3)

        def forward(self, hidden_states, attention_mask):
            q = self.transpose_for_scores(self.query(hidden_states))
            k = self.transpose_for_scores(self.key(hidden_states))
            v = self.transpose_for_scores(self.value(hidden_states))
            scores = torch.matmul(q, k.transpose(-1, -2))
            scores = scores / math.sqrt(self.attention_head_size)
            scores = scores + attention_mask
            probs = nn.functional.softmax(scores, dim=-1)
            context = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
            new_shape = context.size()[:-2] + (self.all_head_size,)
            return context.view(*new_shape)

    class DenseResidualNorm(nn.Module):
        """HF's BertSelfOutput / BertOutput: LayerNorm(dense(x) + residual)."""

        def __init__(self, n_in, n_out, eps):
            super().__init__()
            self.dense = nn.Linear(n_in, n_out)
            self.LayerNorm = nn.LayerNorm(n_out, eps=eps)

        def forward(self, hidden_states, input_tensor):
            return self.LayerNorm(self.dense(hidden_states) + input_tensor)

    class Attention(nn.Module):
        def __init__(self, c, eps):
            super().__init__()
            self.self = SelfAttention(c)
            self.output = DenseResidualNorm(c["hidden"], c["hidden"], eps)

        def forward(self, x, mask):
            return self.output(self.self(x, mask), x)

    class Intermediate(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.dense = nn.Linear(c["hidden"], c["intermediate"])

        def forward(self, x):
            return gelu(self.dense(x))

    class Layer(nn.Module):
        def __init__(self, c, eps):
            super().__init__()
            self.attention = Attention(c, eps)
            self.intermediate = Intermediate(c)
            self.output = DenseResidualNorm(c["intermediate"], c["hidden"], eps)

        def forward(self, x, mask):
            y1 = self.attention(x, mask)
            return self.output(self.intermediate(y1), y1)

    class Encoder(nn.Module):
        def __init__(self, c, eps):
            super().__init__()
            self.layer = nn.ModuleList(Layer(c, eps) for _ in range(c["layers"]))

        def forward(self, x, mask):
            for layer in self.layer:
                x = layer(x, mask)
            return x

    class Pooler(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.dense = nn.Linear(c["hidden"], c["hidden"])

        def forward(self, hidden_states):
            return torch.tanh(self.dense(hidden_states[:, 0]))

    class BertModel(nn.Module):
        """BERT (and, with pooler=False, eps 1e-5 and CumSum positions, RoBERTa)."""

        def __init__(self, c, eps=1e-12, positions=None, pooler=True):
            super().__init__()
            self.mask_value = mask_multiplier(c["mask_value"], c.get("half", False))
            self.embeddings = Embeddings(c, positions or c["position"], eps)
            self.encoder = Encoder(c, eps)
            if pooler:
                self.pooler = Pooler(c)

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            extended = attention_mask.unsqueeze(1).unsqueeze(2)
            extended = extended.to(dtype=self.embeddings.word_embeddings.weight.dtype)
            extended = (1.0 - extended) * self.mask_value
            sequence_output = self.encoder(self.embeddings(input_ids, token_type_ids), extended)
            pooled = self.pooler(sequence_output) if hasattr(self, "pooler") else None
            return sequence_output, pooled

    class BertForSequenceClassification(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.bert = BertModel(c)
            self.classifier = nn.Linear(c["hidden"], 2)

        def forward(self, *inputs):
            return self.classifier(self.bert(*inputs)[1])

    class BertForQuestionAnswering(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.bert = BertModel(c, pooler=False)
            self.qa_outputs = nn.Linear(c["hidden"], 2)

        def forward(self, *inputs):
            logits = self.qa_outputs(self.bert(*inputs)[0])
            start_logits, end_logits = logits.split(1, dim=-1)
            return start_logits.squeeze(-1), end_logits.squeeze(-1)

    class RobertaClassificationHead(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.dense = nn.Linear(c["hidden"], c["hidden"])
            self.out_proj = nn.Linear(c["hidden"], 2)

        def forward(self, features):
            return self.out_proj(torch.tanh(self.dense(features[:, 0, :])))

    class RobertaForSequenceClassification(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.roberta = BertModel(c, eps=1e-5, positions="roberta", pooler=False)
            self.classifier = RobertaClassificationHead(c)

        def forward(self, *inputs):
            return self.classifier(self.roberta(*inputs)[0])

    class MultiHeadSelfAttention(nn.Module):
        """DistilBERT: scale on Q before Q·Kᵀ, mask applied with masked_fill (Equal/Where)."""

        def __init__(self, c):
            super().__init__()
            self.n_heads = c["heads"]
            self.dim = c["hidden"]
            self.mask_value = mask_multiplier(c["mask_value"], c.get("half", False))
            self.q_lin = nn.Linear(self.dim, self.dim)
            self.k_lin = nn.Linear(self.dim, self.dim)
            self.v_lin = nn.Linear(self.dim, self.dim)
            self.out_lin = nn.Linear(self.dim, self.dim)

        def forward(self, query, key, value, mask):
            bs, q_length, dim = query.size()
            k_length = key.size(1)
            dim_per_head = self.dim // self.n_heads
            mask_reshp = (bs, 1, 1, k_length)

            def shape(x):
                return x.view(bs, -1, self.n_heads, dim_per_head).transpose(1, 2)

            def unshape(x):
                return x.transpose(1, 2).contiguous().view(bs, -1, self.n_heads * dim_per_head)

            q = shape(self.q_lin(query))
            k = shape(self.k_lin(key))
            v = shape(self.v_lin(value))
            q = q / math.sqrt(dim_per_head)
            scores = torch.matmul(q, k.transpose(2, 3))
            mask = (mask == 0).view(mask_reshp).expand_as(scores)
            scores = scores.masked_fill(mask, self.mask_value)
            weights = nn.functional.softmax(scores, dim=-1)
            return self.out_lin(unshape(torch.matmul(weights, v)))

    class FFN(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.lin1 = nn.Linear(c["hidden"], c["intermediate"])
            self.lin2 = nn.Linear(c["intermediate"], c["hidden"])

        def forward(self, x):
            return self.lin2(gelu(self.lin1(x)))

    class TransformerBlock(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.attention = MultiHeadSelfAttention(c)
            self.sa_layer_norm = nn.LayerNorm(c["hidden"], eps=1e-12)
            self.ffn = FFN(c)
            self.output_layer_norm = nn.LayerNorm(c["hidden"], eps=1e-12)

        def forward(self, x, attn_mask):
            sa_output = self.sa_layer_norm(self.attention(x, x, x, attn_mask) + x)
            return self.output_layer_norm(self.ffn(sa_output) + sa_output)

    class Transformer(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.layer = nn.ModuleList(TransformerBlock(c) for _ in range(c["layers"]))

        def forward(self, x, attn_mask):
            for layer in self.layer:
                x = layer(x, attn_mask)
            return x

    class DistilBertModel(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.embeddings = Embeddings(c, c["position"], 1e-12)
            self.transformer = Transformer(c)

        def forward(self, input_ids, attention_mask):
            return self.transformer(self.embeddings(input_ids), attention_mask)

    class DistilBertForSequenceClassification(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.distilbert = DistilBertModel(c)
            self.pre_classifier = nn.Linear(c["hidden"], c["hidden"])
            self.classifier = nn.Linear(c["hidden"], 2)

        def forward(self, input_ids, attention_mask):
            hidden = self.distilbert(input_ids, attention_mask)[:, 0]
            return self.classifier(nn.functional.relu(self.pre_classifier(hidden)))

    return {
        "bert_seq": BertForSequenceClassification,
        "bert_qa": BertForQuestionAnswering,
        "bert_base_model": lambda c: BertModel(c),
        "distilbert": DistilBertForSequenceClassification,
        "roberta": RobertaForSequenceClassification,
    }


_MODELS = None


def randomize(model, seed):
    """Random values for everything, scaled so that every part of the graph matters numerically.

    Linear weights ~ N(0, 1/in_features), so activations stay O(1) through the layers: attention
    scores are far from uniform (a wrong scale, mask or head split shows) and GELU inputs reach
    its curved part (erf vs tanh shows). HF's N(0, 0.02) would leave scores near 0, where softmax
    hides most mistakes. Embedding tables ~ N(0, 0.02) as in HF; LayerNorm gamma ~ 1 + N(0, 0.1);
    beta and every bias ~ N(0, 0.1).
    """
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=g)
            if "LayerNorm" in name or "layer_norm" in name:
                param.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * noise)
            elif name.endswith("bias"):
                param.copy_(0.1 * noise)
            elif "embeddings" in name:
                param.copy_(0.02 * noise)
            else:  # Linear weight [out, in]
                param.copy_(noise / math.sqrt(param.shape[1]))


def io_names(spec):
    ids, mask, types = (("input_ids", "attention_mask", "token_type_ids") if spec["naming"] == "hf"
                        else ("input_ids", "input_mask", "segment_ids"))
    inputs = [ids, mask] + ([types] if spec["token_type"] else [])
    outputs = {"bert_qa": ["start_logits", "end_logits"],
               "bert_base_model": ["last_hidden_state", "pooler_output"]}
    return inputs, outputs.get(spec["kind"], ["logits"])


def dummy_inputs(spec):
    import torch
    g = torch.Generator().manual_seed(spec["seed"] + 1)
    shape = (spec["batch"], spec["seq"])
    ids = torch.randint(2, spec["vocab"], shape, generator=g)  # never 0 or RoBERTa's padding id 1
    args = [ids, torch.ones(shape, dtype=torch.long)]
    if spec["token_type"]:
        args.append(torch.zeros(shape, dtype=torch.long))
    return tuple(args)


@contextlib.contextmanager
def float16_cpu_kernels():
    """Lets a model.half() run on CPU long enough to be traced.

    torch 1.13 has no CPU float16 kernels for matmul, layer_norm, softmax, erf, tanh, relu or
    sqrt, and torch.onnx.export must run the model to trace it. These stand-ins (numpy, in
    float32, rounded back to the input's dtype) are registered for the CPU dispatch key during the
    export only. The tracer records the aten op before its kernel runs, so the graph is exactly
    what a GPU export of the half model records; only the traced values come from numpy.
    """
    import numpy as np
    import torch

    def arr(t):
        return t.detach().float().numpy()

    def like(a, t):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(t.dtype)

    def layer_norm(x, shape, weight, bias, eps):
        a = arr(x)
        axes = tuple(range(a.ndim - len(shape), a.ndim))
        mean = a.mean(axis=axes, keepdims=True)
        rstd = 1.0 / np.sqrt(a.var(axis=axes, keepdims=True) + eps)
        y = (a - mean) * rstd
        y = y * arr(weight) if weight is not None else y
        y = y + arr(bias) if bias is not None else y
        return like(y, x), like(mean, x).float(), like(rstd, x).float()

    def softmax(x, dim, half_to_float):
        a = arr(x)
        e = np.exp(a - a.max(axis=dim, keepdims=True))
        return like(e / e.sum(axis=dim, keepdims=True), x)

    erf = np.vectorize(math.erf, otypes=[np.float32])
    kernels = {
        "addmm": lambda c, a, b, beta=1, alpha=1: like(beta * arr(c) + alpha * (arr(a) @ arr(b)), a),
        "mm": lambda a, b: like(arr(a) @ arr(b), a),
        "bmm": lambda a, b: like(np.matmul(arr(a), arr(b)), a),
        "native_layer_norm": layer_norm,
        "_softmax": softmax,
        "erf": lambda x: like(erf(arr(x)), x),
        "tanh": lambda x: like(np.tanh(arr(x)), x),
        "relu": lambda x: like(np.maximum(arr(x), 0), x),
        "sqrt": lambda x: like(np.sqrt(arr(x)), x),
    }
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "overriding a previously registered kernel"
        lib = torch.library.Library("aten", "IMPL")
        for name, fn in kernels.items():
            lib.impl(name, fn, "CPU")
    try:
        yield
    finally:
        del lib  # the registrations go with the library object


@contextlib.contextmanager
def stdout_to_stderr():
    """torch prints export diagnostics from C++; keep stdout for the model paths only."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def export(spec, path, weights=None):
    import torch
    global _MODELS
    if _MODELS is None:
        _MODELS = define_models()
    torch.manual_seed(spec["seed"])
    model = _MODELS[spec["kind"]](spec).eval()
    if weights:
        load_weights(model, weights)
    else:
        randomize(model, spec["seed"])
    if spec["half"]:
        model = model.half()
    inputs, outputs = io_names(spec)
    axes = None if spec["static"] else {n: {0: "batch_size", 1: "seq_len"} for n in inputs}
    if axes is not None:
        for name in outputs:  # every output has the batch axis; all but logits/pooler the seq axis
            axes[name] = {0: "batch_size"} if name in ("logits", "pooler_output") else \
                {0: "batch_size", 1: "seq_len"}
    kernels = float16_cpu_kernels() if spec["half"] else contextlib.nullcontext()
    # The encoder layer classes (BERT / RoBERTa "Layer", DistilBERT "TransformerBlock").
    functions = {type(m) for m in model.modules()
                 if type(m).__name__ in ("Layer", "TransformerBlock")} \
        if spec.get("functions") else False
    with torch.no_grad(), stdout_to_stderr(), kernels:
        torch.onnx.export(model, dummy_inputs(spec), str(path), opset_version=spec["opset"],
                          do_constant_folding=True, input_names=inputs, output_names=outputs,
                          dynamic_axes=axes, export_modules_as_functions=functions)


def describe(model, label):
    """Node count and op-type histogram, to compare with exporter-layouts.md 2.1 by eye."""
    hist = collections.Counter(n.op_type for n in model.graph.node)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    print(f"{label}: {len(model.graph.node)} nodes, opset {opset}, IR {model.ir_version}",
          file=sys.stderr)
    for op, n in sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {op:<20} {n}", file=sys.stderr)


def check(spec, path, label, verbose):
    """onnx.checker plus cheap structural checks against exporter-layouts.md section 2."""
    import onnx
    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        if "ir_version" not in str(e).lower() and "ir version" not in str(e).lower():
            raise
        print(f"warning: {label}: onnx.checker: {e}", file=sys.stderr)
    # Local functions (--functions): their bodies count once per call.
    calls = collections.Counter(n.op_type for n in model.graph.node)
    hist = collections.Counter(calls)
    for f in model.functions:
        for n in f.node:
            hist[n.op_type] += calls[f.name]
    if verbose:
        describe(model, label)
    layers, roberta = spec["layers"], spec["kind"] == "roberta"
    layer_norms = 2 * layers + 1
    want = {"Softmax": layers, "Erf": layers,
            "MatMul": 8 * layers + (spec["kind"] == "bert_qa"),
            "LayerNormalization" if spec["opset"] >= 17 else "Sqrt": layer_norms}
    if roberta:
        want["CumSum"] = 1
    elif spec["position"] == "buffer":
        want["Slice"] = 0 if spec["static"] else 1  # static: folded to a constant [1,S]
    elif not spec["static"] or spec["opset"] == 10:
        want["NonZero" if spec["opset"] == 10 else "Range"] = 1
    if spec["kind"] == "distilbert":
        want.update(Equal=1, Where=layers)
    wrong = {op: (hist.get(op, 0), n) for op, n in want.items() if hist.get(op, 0) != n}
    if wrong:
        raise SystemExit(f"{label}: layout differs from exporter-layouts.md "
                         f"(op: got, want): {wrong}")
    names = [i.name for i in model.graph.input]
    if names != io_names(spec)[0]:
        raise SystemExit(f"{label}: graph inputs {names}, expected {io_names(spec)[0]}")


def generate(args):
    """Returns the absolute path of the model described by args, exporting it if needed."""
    spec = resolve(args)
    if args.output:
        path = Path(args.output).resolve()
    else:
        path = cache_path(spec, args.cache_dir or DEFAULT_CACHE).resolve()
        if path.exists():
            if args.verbose:
                import onnx
                describe(onnx.load(str(path), load_external_data=False), f"{path.name} (cached)")
            return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a cached model is for everyone
    try:
        start = time.monotonic()
        export(spec, tmp, args.weights)
        check(spec, tmp, path.name, args.verbose)
        os.replace(tmp, path)
        if args.verbose:
            print(f"{path.name}: {time.monotonic() - start:.1f} s", file=sys.stderr)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def main(argv=None):
    generator_cli.run(build_parser(), generate, argv)


if __name__ == "__main__":
    main()
