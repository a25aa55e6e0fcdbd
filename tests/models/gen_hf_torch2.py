#!/usr/bin/env python3
"""Export tiny random-weight Hugging Face `transformers` models with torch 2.x (both exporters).

Builds the models from the REAL transformers classes (configs made in code, no hub access),
exports them with the TorchScript exporter (`torch.onnx.export(..., dynamo=False)`) and the
dynamo exporter (`dynamo=True`, with `optimize=True` and `optimize=False`), then validates
every file with onnxruntime (all graph optimizations disabled) against the torch module.

    /work/venvs/torch2/bin/python tests/models/gen_hf_torch2.py                 # the whole matrix
    /work/venvs/torch2/bin/python tests/models/gen_hf_torch2.py --only bert_seq_sdpa_ts_op17
    /work/venvs/torch2/bin/python tests/models/gen_hf_torch2.py --list

Writes tests/models/torch2/<name>.onnx and tests/models/torch2/results.json (one record per
matrix entry: the file facts and the validation diff, or the export error). README.md in that
folder is written by hand from results.json. Needs: torch 2.x, transformers, onnxscript, onnx,
onnxruntime (versions in tests/models/torch2/README.md).
"""
import argparse
import json
import os
import sys
import tempfile
import traceback

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
from torch import nn

import onnx
import onnxruntime as ort
import transformers
from transformers import (
    AlbertConfig,
    AlbertForSequenceClassification,
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertModel,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
    XLMRobertaConfig,
    XLMRobertaModel,
)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "torch2")

# Sizes shared by every model. hidden 64 / 4 heads / 2 layers as the other test models;
# intermediate, vocab and max_position are shrunk to keep each file near 0.3 MB.
HIDDEN, LAYERS, HEADS, INTER, VOCAB, MAXPOS = 64, 2, 4, 128, 128, 64
ALBERT_EMB = 32          # ALBERT embedding_size != hidden_size: the embedding projection
EXPORT_BATCH, EXPORT_SEQ = 2, 16        # dummy inputs the exporter traces
EXPORT_LENGTHS = [16, 12]               # right-padded dummy mask (never all ones)
VALID_BATCH, VALID_SEQ = 3, 16          # validation inputs for dynamic models
VALID_LENGTHS = [16, 11, 5]
SEED = 0


# --------------------------------------------------------------------------------------------
# models


def common_bert_kwargs(attn):
    return dict(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=INTER, max_position_embeddings=MAXPOS, type_vocab_size=2,
        hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        attn_implementation=attn,
    )


class MeanPooling(nn.Module):
    """sentence-transformers style: BertModel, then the mask-weighted mean of the last hidden state."""

    def __init__(self, config):
        super().__init__()
        self.bert = BertModel(config, add_pooling_layer=False)

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * weights).sum(dim=1)
        count = torch.clamp(weights.sum(dim=1), min=1e-9)
        return summed / count


def build(kind, attn):
    """Return (module, input names, output names, pad_token_id, extra info)."""
    info = {}
    if kind in ("bert_seq", "bert_qa", "bert_meanpool"):
        cfg = BertConfig(**common_bert_kwargs(attn), pad_token_id=0)
        if kind == "bert_seq":
            m = BertForSequenceClassification(cfg)
            outs = ["logits"]
        elif kind == "bert_qa":
            m = BertForQuestionAnswering(cfg)
            outs = ["start_logits", "end_logits"]
        else:
            m = MeanPooling(cfg)
            outs = ["sentence_embedding"]
        ins = ["input_ids", "attention_mask", "token_type_ids"]
        pad = 0
    elif kind == "distilbert":
        cfg = DistilBertConfig(
            vocab_size=VOCAB, dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=INTER,
            max_position_embeddings=MAXPOS, activation="gelu", dropout=0.0, attention_dropout=0.0,
            seq_classif_dropout=0.0, pad_token_id=0, attn_implementation=attn)
        m = DistilBertForSequenceClassification(cfg)
        ins, outs, pad = ["input_ids", "attention_mask"], ["logits"], 0
    elif kind in ("roberta", "xlmr"):
        kw = common_bert_kwargs(attn)
        # RoBERTa: positions start at padding_idx + 1, so the table has max_position + 2 rows.
        kw.update(max_position_embeddings=MAXPOS + 2, type_vocab_size=1, layer_norm_eps=1e-5,
                  pad_token_id=1, bos_token_id=0, eos_token_id=2)
        if kind == "roberta":
            m = RobertaForSequenceClassification(RobertaConfig(**kw))
            outs = ["logits"]
        else:
            m = XLMRobertaModel(XLMRobertaConfig(**kw))
            outs = ["last_hidden_state", "pooler_output"]
        ins, pad = ["input_ids", "attention_mask", "token_type_ids"], 1
    elif kind == "albert":
        kw = common_bert_kwargs(attn)
        kw.update(embedding_size=ALBERT_EMB, num_hidden_groups=1, inner_group_num=1,
                  classifier_dropout_prob=0.0, pad_token_id=0, hidden_act="gelu_new")
        m = AlbertForSequenceClassification(AlbertConfig(**kw))
        info["hidden_act"] = "gelu_new (ALBERT's default, tanh form)"
        ins, outs, pad = ["input_ids", "attention_mask", "token_type_ids"], ["logits"], 0
    elif kind == "electra":
        kw = common_bert_kwargs(attn)
        kw.update(embedding_size=HIDDEN, summary_last_dropout=0.0, classifier_dropout=None, pad_token_id=0)
        m = ElectraForSequenceClassification(ElectraConfig(**kw))
        ins, outs, pad = ["input_ids", "attention_mask", "token_type_ids"], ["logits"], 0
    else:
        raise ValueError(kind)
    got = getattr(m, "config", None) or m.bert.config
    info["attn_implementation"] = got._attn_implementation
    if got._attn_implementation != attn:
        raise RuntimeError(f"asked for attn {attn}, model has {got._attn_implementation}")
    randomize(m)
    m.eval()
    return m, ins, outs, pad, info


def randomize(model):
    """Weights that make every parameter matter (HF's N(0, 0.02) init leaves attention ~uniform)."""
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for _, mod in model.named_modules():
            if isinstance(mod, nn.Linear):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) / mod.in_features ** 0.5)
                if mod.bias is not None:
                    mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)
            elif isinstance(mod, nn.Embedding):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * 0.02)
            elif isinstance(mod, nn.LayerNorm):
                mod.weight.copy_(1 + torch.randn(mod.weight.shape, generator=g) * 0.1)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)


class Wrapper(nn.Module):
    """Positional inputs with the HF names, tuple of plain tensors out (what users' scripts do)."""

    def __init__(self, model, ins, outs):
        super().__init__()
        self.model, self.ins, self.outs = model, ins, outs

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kw = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kw["token_type_ids"] = token_type_ids
        r = self.model(**kw)
        if isinstance(r, torch.Tensor):
            return r
        return tuple(r[k] for k in self.outs)


def make_inputs(ins, batch, seq, lengths, pad, seed, type_vocab=2):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (batch, seq), generator=g, dtype=torch.int64)
    mask = torch.zeros(batch, seq, dtype=torch.int64)
    tt = torch.zeros(batch, seq, dtype=torch.int64)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
        ids[b, n:] = pad
        if type_vocab > 1:
            tt[b, n // 2:n] = 1      # second segment in the valid part
    d = {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}
    return [d[k] for k in ins]


# --------------------------------------------------------------------------------------------
# the matrix: name -> (kind, attn, exporter, opset, optimize, static)

def matrix():
    rows = []

    def add(kind, attn, exp, opset, optimize=None, static=False, keep_metadata=False):
        name = f"{kind}_{attn}_{exp}_op{opset}"
        if exp == "dynamo":
            name += "_opt" if optimize else "_noopt"
        if static:
            name += "_static"
        rows.append(dict(name=name, kind=kind, attn=attn, exporter=exp, opset=opset,
                         optimize=optimize, static=static, keep_metadata=keep_metadata))

    # BERT: every attention implementation x exporter x opset (x optimize for dynamo)
    for attn in ("eager", "sdpa"):
        for op in (14, 17):
            add("bert_seq", attn, "ts", op)
        for op in (18, 20):
            for opt in ((True,) if op == 18 else (True, False)):
                # sdpa + dynamo + opset 20 + optimize is what a plain torch.onnx.export(model, args)
                # of a transformers 5 model gives; that one keeps the exporter's node metadata.
                add("bert_seq", attn, "dynamo", op, opt, keep_metadata=(attn, op, opt) == ("sdpa", 20, True))
    add("bert_seq", "sdpa", "ts", 17, static=True)
    add("bert_seq", "sdpa", "dynamo", 20, True, static=True)
    # the other classes
    add("bert_qa", "sdpa", "ts", 17)
    add("bert_qa", "sdpa", "dynamo", 20, True)
    add("bert_meanpool", "sdpa", "ts", 17)
    add("bert_meanpool", "sdpa", "dynamo", 20, True)
    add("distilbert", "eager", "ts", 14)
    add("distilbert", "sdpa", "ts", 17)
    add("distilbert", "sdpa", "dynamo", 20, True)
    add("distilbert", "sdpa", "dynamo", 18, False)
    add("roberta", "sdpa", "ts", 17)
    add("roberta", "sdpa", "dynamo", 20, True)
    add("xlmr", "eager", "ts", 14)
    add("xlmr", "sdpa", "dynamo", 18, True)
    add("albert", "eager", "ts", 17)
    add("albert", "sdpa", "ts", 17)
    add("albert", "sdpa", "dynamo", 20, True)
    add("albert", "sdpa", "dynamo", 20, False)
    add("electra", "sdpa", "ts", 17)
    add("electra", "eager", "dynamo", 20, True)
    return rows


# --------------------------------------------------------------------------------------------
# export and validation


def export(row, wrapper, ins, outs, example, path):
    if row["exporter"] == "ts":
        dyn = None
        if not row["static"]:
            dyn = {k: {0: "batch", 1: "sequence"} for k in ins}
            for o in outs:
                dyn[o] = {0: "batch"} if o in ("logits", "pooler_output", "sentence_embedding") \
                    else {0: "batch", 1: "sequence"}
        torch.onnx.export(wrapper, tuple(example), path, dynamo=False, opset_version=row["opset"],
                          input_names=ins, output_names=outs, dynamic_axes=dyn,
                          do_constant_folding=True)
    else:
        ds = None
        if not row["static"]:
            batch = torch.export.Dim("batch", min=1, max=1024)
            seq = torch.export.Dim("sequence", min=2, max=MAXPOS)
            ds = {k: {0: batch, 1: seq} for k in ins}
        prog = torch.onnx.export(wrapper, tuple(example), None, dynamo=True, opset_version=row["opset"],
                                 input_names=ins, output_names=outs, dynamic_shapes=ds,
                                 optimize=row["optimize"], external_data=False)
        prog.save(path, external_data=False)
        if not row["keep_metadata"]:
            strip_node_metadata(path)


def strip_node_metadata(path):
    """Drop the dynamo exporter's per-node metadata_props (namespace, class hierarchy, fx node text,
    stack traces with this machine's paths): ~20 KB per layer of text that ORT ignores. Nodes,
    edges, names, initializers and every other field stay as exported."""
    m = onnx.load(path)
    graphs = [m.graph]
    while graphs:
        g = graphs.pop()
        for n in g.node:
            del n.metadata_props[:]
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    graphs.append(a.g)
                graphs.extend(a.graphs)
    for f in m.functions:
        for n in f.node:
            del n.metadata_props[:]
    onnx.save(m, path)


def ir_facts(path):
    m = onnx.load(path)
    opsets = {o.domain or "ai.onnx": o.version for o in m.opset_import}
    facts = dict(
        ir_version=m.ir_version,
        opset_imports=opsets,
        functions=[f"{f.domain}::{f.name}" for f in m.functions],
        nodes=len(m.graph.node),
        initializers=len(m.graph.initializer),
        constant_nodes=sum(1 for n in m.graph.node if n.op_type == "Constant"),
        inputs={i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in m.graph.input},
        outputs={o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in m.graph.output},
        external_data=any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer),
        bytes=os.path.getsize(path),
    )
    # onnx 1.12 knows IR version <= 8 and ai.onnx opset <= 17
    facts["newer_than_onnx_1_12"] = bool(m.ir_version > 8 or opsets.get("ai.onnx", 0) > 17)
    try:
        onnx.checker.check_model(m, full_check=True)
        facts["checker"] = "ok"
    except Exception as e:  # noqa: BLE001
        facts["checker"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return facts


def validate(path, wrapper, ins, static, pad, tv):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    if static:
        feeds = make_inputs(ins, EXPORT_BATCH, EXPORT_SEQ, [16, 9], pad, seed=1, type_vocab=tv)
    else:
        feeds = make_inputs(ins, VALID_BATCH, VALID_SEQ, VALID_LENGTHS, pad, seed=1, type_vocab=tv)
    with torch.no_grad():
        ref = wrapper(*feeds)
    if isinstance(ref, torch.Tensor):
        ref = (ref,)
    got = sess.run(None, {k: v.numpy() for k, v in zip(ins, feeds)})
    diffs = [float(np.max(np.abs(a.numpy() - b))) for a, b in zip(ref, got)]
    shapes = [list(b.shape) for b in got]
    # also a second dynamic shape, to catch shapes frozen at export
    if not static:
        feeds2 = make_inputs(ins, 1, 7, [7], pad, seed=2, type_vocab=tv)
        with torch.no_grad():
            ref2 = wrapper(*feeds2)
        if isinstance(ref2, torch.Tensor):
            ref2 = (ref2,)
        got2 = sess.run(None, {k: v.numpy() for k, v in zip(ins, feeds2)})
        diffs += [float(np.max(np.abs(a.numpy() - b))) for a, b in zip(ref2, got2)]
    return max(diffs), shapes


def run_row(row):
    torch.manual_seed(SEED)
    model, ins, outs, pad, info = build(row["kind"], row["attn"])
    wrapper = Wrapper(model, ins, outs).eval()
    tv = 1 if row["kind"] in ("roberta", "xlmr") else 2
    example = make_inputs(ins, EXPORT_BATCH, EXPORT_SEQ, EXPORT_LENGTHS, pad, seed=0, type_vocab=tv)
    path = os.path.join(OUT_DIR, row["name"] + ".onnx")
    rec = dict(row, **info)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=OUT_DIR)
    os.close(fd)
    try:
        export(row, wrapper, ins, outs, example, tmp)
    except Exception as e:  # noqa: BLE001
        msg = "".join(traceback.format_exception_only(type(e), e)).strip()
        rec["error"] = msg[:3000]
        for p in (tmp, tmp + ".data"):
            if os.path.exists(p):
                os.remove(p)
        return rec
    if os.path.exists(tmp + ".data"):
        os.remove(tmp + ".data")
        rec["error"] = "exporter wrote external data"
        os.remove(tmp)
        return rec
    os.replace(tmp, path)
    rec.update(ir_facts(path))
    try:
        rec["max_abs_diff"], rec["output_shapes"] = validate(path, wrapper, ins, row["static"], pad, tv)
    except Exception as e:  # noqa: BLE001
        rec["validation_error"] = "".join(traceback.format_exception_only(type(e), e)).strip()[:2000]
    return rec


def export_bert_base(path):
    """BertConfig's defaults are BERT-base (12 layers, hidden 768, 12 heads, vocab 30522); random
    weights: the latency does not depend on them."""
    cfg = BertConfig(attn_implementation="sdpa", hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    torch.manual_seed(SEED)
    model = BertForSequenceClassification(cfg).eval()
    ins, outs = ["input_ids", "attention_mask", "token_type_ids"], ["logits"]
    wrapper = Wrapper(model, ins, outs).eval()
    example = make_inputs(ins, EXPORT_BATCH, EXPORT_SEQ, EXPORT_LENGTHS, 0, SEED)
    batch = torch.export.Dim("batch", min=1, max=1024)
    seq = torch.export.Dim("sequence", min=2, max=cfg.max_position_embeddings)
    prog = torch.onnx.export(wrapper, tuple(example), None, dynamo=True, opset_version=20,
                             input_names=ins, output_names=outs,
                             dynamic_shapes={k: {0: batch, 1: seq} for k in ins}, optimize=True,
                             external_data=False)
    prog.save(path, external_data=False)
    strip_node_metadata(path)
    print(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="names of matrix rows to run (default: all)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--bert_base", metavar="PATH",
                    help="instead: export a BERT-base-sized BertForSequenceClassification (sdpa, "
                         "dynamo, opset 20, dynamic batch and sequence) to PATH, for bench/")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.bert_base:
        export_bert_base(a.bert_base)
        return
    rows = matrix()
    if a.list:
        for r in rows:
            print(r["name"])
        return
    if a.only:
        rows = [r for r in rows if r["name"] in a.only]
    os.makedirs(OUT_DIR, exist_ok=True)
    res_path = os.path.join(OUT_DIR, "results.json")
    results = {}
    if os.path.exists(res_path):
        with open(res_path) as f:
            results = {r["name"]: r for r in json.load(f)["models"]}
    for r in rows:
        print(f"== {r['name']}", file=sys.stderr, flush=True)
        rec = run_row(r)
        results[r["name"]] = rec
        if "error" in rec:
            print(f"   EXPORT FAILED: {rec['error'].splitlines()[0][:300]}", file=sys.stderr, flush=True)
        else:
            print(f"   ir {rec['ir_version']} opsets {rec['opset_imports']} funcs {len(rec['functions'])} "
                  f"bytes {rec['bytes']} diff {rec.get('max_abs_diff', rec.get('validation_error'))}",
                  file=sys.stderr, flush=True)
    order = [r["name"] for r in matrix()]
    env = dict(python=sys.version.split()[0], torch=torch.__version__, transformers=transformers.__version__,
               onnx=onnx.__version__, onnxruntime=ort.__version__)
    try:
        import onnxscript
        env["onnxscript"] = onnxscript.__version__
    except ImportError:
        pass
    with open(res_path, "w") as f:
        json.dump(dict(env=env, models=[results[n] for n in order if n in results]), f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
