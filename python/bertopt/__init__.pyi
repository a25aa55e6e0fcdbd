# Type hints for bertopt (the implementation is python/bertopt/*.py over the C++ module _core).
import os
from enum import Enum
from typing import Any, Literal, Sequence

import onnx

__version__: str
MODEL_TYPES: tuple[str, ...]
FUSED_OPERATORS: tuple[str, ...]
HAS_ORT: bool

class Error(Exception):
    """Base of every bertopt error; ``str()`` is the CLI's message."""
    exit_code: int
    message: str
    status: str
    def __init__(self, message: str, status: str = ...) -> None: ...

class BadInputError(Error, ValueError):
    """Exit code 2: bad input (file, model, argument, option)."""

class FailedError(Error, RuntimeError):
    """Exit code 1: the work ran and failed."""

class BertoptWarning(UserWarning): ...

class AttentionMaskFormat:
    MaskIndexEnd: int
    MaskIndexEndAndStart: int
    AttentionMask: int
    NoMask: int

class AttentionOpType(Enum):
    Attention = "Attention"
    MultiHeadAttention = "MultiHeadAttention"
    GroupQueryAttention = "GroupQueryAttention"
    PagedAttention = "PagedAttention"

class FusionOptions:
    """ONNX Runtime's FusionOptions names; see bertopt.FusionOptions.__doc__."""
    model_type: str
    enable_gelu: bool
    enable_layer_norm: bool
    enable_attention: bool
    enable_rotary_embeddings: bool
    use_multi_head_attention: bool
    disable_multi_head_attention_bias: bool
    enable_skip_layer_norm: bool
    enable_embed_layer_norm: bool
    enable_bias_skip_layer_norm: bool
    enable_bias_gelu: bool
    enable_gelu_approximation: bool
    enable_qordered_matmul: bool
    enable_shape_inference: bool
    enable_gemm_fast_gelu: bool
    group_norm_channels_last: bool
    attention_mask_format: int
    attention_op_type: AttentionOpType | None
    def __init__(self, model_type: str = ...) -> None: ...
    def use_raw_attention_mask(self, use_raw_mask: bool = ...) -> None: ...
    def disable_attention_mask(self) -> None: ...
    def set_attention_op_type(self, attn_op_type: AttentionOpType) -> None: ...

class OptimizedModel:
    """What optimize_model returns: ``.model``, ``.report`` and ORT's BertOnnxModel methods."""
    model: onnx.ModelProto
    report: dict[str, Any]
    def __init__(self, model: onnx.ModelProto, report: dict[str, Any],
                 input_path: str = ...) -> None: ...
    def graph(self) -> onnx.GraphProto: ...
    def nodes(self) -> list[onnx.NodeProto]: ...
    def get_operator_statistics(self) -> dict[str, int]: ...
    def get_fused_operator_statistics(self) -> dict[str, int]: ...
    def is_fully_optimized(self, fused_op_count: dict[str, int] | None = ...) -> bool: ...
    def save_model_to_file(self, output_path: str | os.PathLike[str],
                           use_external_data_format: bool = ...,
                           all_tensors_to_one_file: bool = ..., size_threshold: int = ...,
                           convert_attribute: bool = ..., *, overwrite: bool = ...) -> None: ...
    def convert_float_to_float16(self, use_symbolic_shape_infer: bool = ...,
                                 keep_io_types: bool = ...,
                                 op_block_list: list[str] | None = ...,
                                 node_block_list: list[str] | None = ...,
                                 force_fp16_initializers: bool = ..., **kwargs: Any) -> None:
        """Converts ``model`` to float16 as ``bertopt optimize --float16 --gpu_only`` does (every op
        in float16; ``gpu_only=False`` keeps ops without an ORT CPU float16 kernel in float32)."""

def optimize_model(input: str | os.PathLike[str] | onnx.ModelProto,
                   model_type: Literal["bert", "bert_tf", "bert_keras"] = ...,
                   num_heads: int = ..., hidden_size: int = ...,
                   optimization_options: FusionOptions | Any | None = ...,
                   opt_level: int | None = ..., use_gpu: bool = ...,
                   only_onnxruntime: bool = ..., verbose: bool = ..., *,
                   provider: str | None = ...,
                   target_ort_version: str | None = ...) -> OptimizedModel: ...

def format_report(report: dict[str, Any], verbose: bool = ...) -> str: ...

def compare(baseline_model: str | os.PathLike[str],
            optimized_model: str | os.PathLike[str] | OptimizedModel | onnx.ModelProto,
            batch_size: int = ..., sequence_length: int = ..., samples: int = ...,
            seed: int = ..., rtol: float = ..., atol: float = ..., use_gpu: bool = ...,
            output_dir: str | os.PathLike[str] | None = ..., input_ids_name: str | None = ...,
            segment_ids_name: str | None = ..., input_mask_name: str | None = ...,
            verbose: bool = ..., write_test_data: bool = ...,
            check: bool = ...) -> dict[str, Any]: ...

def perf(model: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
         batch_size: int | Sequence[int] = ..., sequence_length: int | Sequence[int] = ...,
         samples: int = ..., test_times: int = ..., warmup: int = ...,
         intra_op_num_threads: int | Sequence[int] | None = ...,
         opt_level: Literal["disabled", "basic", "extended", "all"] = ...,
         inclusive: bool = ..., use_gpu: bool = ..., use_io_binding: bool = ..., seed: int = ...,
         input_ids_name: str | None = ..., segment_ids_name: str | None = ...,
         input_mask_name: str | None = ..., output: str | os.PathLike[str] | None = ...,
         plot: str | os.PathLike[str] | None = ...) -> dict[str, Any]: ...

def main(argv: Sequence[str] | None = ...) -> int: ...
