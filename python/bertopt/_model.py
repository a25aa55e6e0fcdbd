"""The optimized model: what optimize_model returns, shaped like ONNX Runtime's BertOnnxModel."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, Iterator

import onnx

from . import _core
from ._errors import BadInputError

# The keys of ORT's BertOnnxModel.get_fused_operator_statistics(), in its order.
FUSED_OPERATORS = (
    "EmbedLayerNormalization",
    "Attention",
    "MultiHeadAttention",
    "Gelu",
    "FastGelu",
    "BiasGelu",
    "GemmFastGelu",
    "LayerNormalization",
    "SimplifiedLayerNormalization",
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
    "RotaryEmbedding",
    "QOrderedAttention",
    "QOrderedGelu",
    "QOrderedLayerNormalization",
    "QOrderedMatMul",
)


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """`graph` and every subgraph of its nodes (If / Loop bodies), as ORT counts nodes."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _graphs(g)


class OptimizedModel:
    """A model ``optimize_model`` rewrote, with the methods scripts call on ONNX Runtime's
    ``BertOnnxModel``.

    Attributes:
        model: the optimized ``onnx.ModelProto`` (external data already read in); yours to change.
        report: what bertopt did, as ``bertopt optimize --json`` reports it: ``model_type`` (and
            ``model_type_evidence``), ``passes`` (per pass ``name``, ``candidates``, ``fused``,
            ``counters``, ``misses`` with the reason each candidate did not fuse, ``seconds``),
            ``fused_ops``, ``layers``, ``fully_optimized``, ``missing``, ``warnings``, ``target``,
            ``nodes_before``, ``nodes_after``, ``seconds``.
    """

    def __init__(self, model: onnx.ModelProto, report: dict[str, Any], input_path: str = ""):
        self.model = model
        self.report = report
        self._input_path = input_path

    def graph(self) -> onnx.GraphProto:
        return self.model.graph

    def nodes(self) -> list[onnx.NodeProto]:
        return [n for g in _graphs(self.model.graph) for n in g.node]

    def get_operator_statistics(self) -> dict[str, int]:
        """Node count per op type, over the graph and its subgraphs."""
        return dict(Counter(n.op_type for n in self.nodes()))

    def get_fused_operator_statistics(self) -> dict[str, int]:
        """Node count of each fused operator, with the keys ONNX Runtime's returns."""
        counts = Counter(n.op_type for n in self.nodes())
        return {op: counts.get(op, 0) for op in FUSED_OPERATORS}

    def is_fully_optimized(self, fused_op_count: dict[str, int] | None = None) -> bool:
        """bertopt's verdict (``report["fully_optimized"]``, reasons in ``report["missing"]``):
        for an L-layer encoder 1 EmbedLayerNormalization, L Attention, L Gelu-family ops, 2L
        layer norms, and no decomposed LayerNorm, GELU or attention math left. That implies ONNX
        Runtime's count rule; given ``fused_op_count``, ORT's count rule is applied to it
        instead (as ORT does)."""
        if fused_op_count is None:
            return bool(self.report["fully_optimized"])

        def count(op: str) -> int:
            return fused_op_count.get(op) or 0

        attention = count("Attention") + count("MultiHeadAttention") + count("QOrderedAttention")
        gelu = count("Gelu") + count("BiasGelu") + count("FastGelu")
        layer_norm = count("LayerNormalization") + count("SkipLayerNormalization")
        simplified = count("SimplifiedLayerNormalization") + count(
            "SkipSimplifiedLayerNormalization")
        return (count("EmbedLayerNormalization") > 0 and attention > 0 and attention == gelu
                and (layer_norm >= 2 * attention or simplified >= 2 * attention))

    def save_model_to_file(self, output_path: str | os.PathLike[str],
                           use_external_data_format: bool = False,
                           all_tensors_to_one_file: bool = True, size_threshold: int = 1024,
                           convert_attribute: bool = False, *, overwrite: bool = False) -> None:
        """Writes ``self.model`` atomically, as ``bertopt optimize`` does (deterministic bytes).

        ``use_external_data_format`` stores tensors of at least ``size_threshold`` bytes in
        ``<file name>.data`` beside it (models over 2 GB always are). The input model's file is
        never written over unless ``overwrite=True``. ``all_tensors_to_one_file=False`` and
        ``convert_attribute=True`` are not supported (BadInputError).
        """
        if not all_tensors_to_one_file:
            raise BadInputError("save_model_to_file: all_tensors_to_one_file=False is not "
                                "supported: bertopt writes one <file name>.data", "invalid argument")
        if convert_attribute:
            raise BadInputError("save_model_to_file: convert_attribute=True is not supported",
                                "invalid argument")
        _core.save(self.model.SerializeToString(), os.fspath(output_path),
                   use_external_data_format, int(size_threshold),
                   "" if overwrite else self._input_path)

    def convert_float_to_float16(self, use_symbolic_shape_infer: bool = True,
                                 keep_io_types: bool = True, op_block_list: list[str] | None = None,
                                 node_block_list: list[str] | None = None,
                                 force_fp16_initializers: bool = False, **kwargs: Any) -> None:
        """Converts ``self.model`` to float16, as ``bertopt optimize --float16 --gpu_only`` does
        (every op computes in float16, like ORT's method; pass ``gpu_only=False`` to keep the ops
        ORT's CPU provider has no float16 kernel for computing in float32 on float16 weights).

        ``keep_io_types`` keeps float32 graph inputs and outputs (Casts at the boundary);
        ``op_block_list`` / ``node_block_list`` add op types / node names kept in float32.
        ``use_symbolic_shape_infer`` and ``force_fp16_initializers`` are accepted for
        compatibility and change nothing. What changed is in ``self.report["float16"]``.
        """
        unknown = set(kwargs) - {"gpu_only"}
        if unknown:
            raise BadInputError("convert_float_to_float16: unsupported argument(s) "
                                + ", ".join(sorted(unknown)), "invalid argument")
        model_bytes, report = _core.float16(
            self.model.SerializeToString(), bool(keep_io_types), list(op_block_list or []),
            list(node_block_list or []), bool(kwargs.get("gpu_only", True)))
        self.model = onnx.ModelProto.FromString(model_bytes)
        self.report["float16"] = report.get("float16")

    def __repr__(self) -> str:
        verdict = "fully optimized" if self.report["fully_optimized"] else "not fully optimized"
        return (f"<bertopt.OptimizedModel {self.report['model_type']}, "
                f"{self.report['nodes_before']} -> {self.report['nodes_after']} nodes, {verdict}>")
