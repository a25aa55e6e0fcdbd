"""FusionOptions with ONNX Runtime's attribute names, and how they map onto bertopt's passes."""

from __future__ import annotations

from enum import Enum
from typing import Any

from ._errors import BadInputError


class AttentionMaskFormat:
    """How the Attention op is fed the mask (the values ONNX Runtime uses)."""

    MaskIndexEnd = 0  # 1-D valid length per row (right padding); bertopt's default for "bert"
    MaskIndexEndAndStart = 1
    AttentionMask = 2  # the raw (batch, sequence) mask, exact for any padding
    NoMask = 3


class AttentionOpType(Enum):
    Attention = "Attention"
    MultiHeadAttention = "MultiHeadAttention"
    GroupQueryAttention = "GroupQueryAttention"
    PagedAttention = "PagedAttention"

    def __str__(self) -> str:
        return self.value


# Attributes that switch a bertopt pass off when False: attribute -> OptimizeOptions field.
_SWITCHES = {
    "enable_attention": "disable_attention",
    "enable_skip_layer_norm": "disable_skip_layer_norm",
    "enable_embed_layer_norm": "disable_embed_layer_norm",
    "enable_bias_gelu": "disable_bias_gelu",
    "enable_gelu": "disable_gelu",
    "enable_layer_norm": "disable_layer_norm",
}

# ONNX Runtime attributes bertopt does not act on, with ORT's default, the values bertopt can
# honour (doing nothing does what they ask), and why the others cannot be.
_FIXED: dict[str, tuple[Any, tuple[Any, ...], str]] = {
    "enable_rotary_embeddings": (True, (True, False), "BERT has no rotary embeddings"),
    "use_multi_head_attention": (
        False, (False,), "bertopt fuses attention into Attention, never MultiHeadAttention"),
    "disable_multi_head_attention_bias": (
        False, (True, False), "bertopt emits no MultiHeadAttention"),
    "enable_bias_skip_layer_norm": (
        True, (True,), "bertopt always folds the dense bias into SkipLayerNormalization"),
    "enable_gelu_approximation": (
        False, (False,), "bertopt never replaces an exact Gelu by the tanh approximation"),
    "enable_qordered_matmul": (True, (True, False), "bertopt emits no quantized ops"),
    "enable_shape_inference": (
        True, (True, False), "bertopt proves shapes itself and does not run ORT's inference"),
    "enable_gemm_fast_gelu": (False, (False,), "bertopt does not fuse GemmFastGelu"),
    "group_norm_channels_last": (True, (True, False), "BERT has no GroupNorm"),
}

_MASK_FORMATS = {
    AttentionMaskFormat.MaskIndexEnd: False,  # value -> use_raw_attention_mask
    AttentionMaskFormat.AttentionMask: True,
}

_KNOWN = set(_SWITCHES) | set(_FIXED) | {"model_type", "attention_mask_format", "attention_op_type"}


class FusionOptions:
    """Which fusions ``optimize_model`` runs, with the attribute names of ONNX Runtime's
    ``onnxruntime.transformers.fusion_options.FusionOptions``.

    Acted on: ``enable_attention``, ``enable_skip_layer_norm``, ``enable_embed_layer_norm``,
    ``enable_bias_gelu``, ``enable_gelu``, ``enable_layer_norm`` (False leaves that fusion out)
    and the attention mask format (``use_raw_attention_mask()``). ORT's other attributes exist
    with ORT's defaults; setting one to a value bertopt cannot honour (``use_multi_head_attention
    = True``, ``enable_gelu_approximation = True``, ...) makes ``optimize_model`` raise
    ``BadInputError`` naming it. Assigning a name ORT does not have raises ``AttributeError``.
    """

    def __init__(self, model_type: str = "bert") -> None:
        object.__setattr__(self, "model_type", model_type)
        for name in _SWITCHES:
            setattr(self, name, True)
        for name, (default, _, _) in _FIXED.items():
            setattr(self, name, default)
        # As ORT: the 1-D mask index for "bert", the raw mask for the TensorFlow types.
        self.attention_mask_format = (
            AttentionMaskFormat.MaskIndexEnd if model_type == "bert"
            else AttentionMaskFormat.AttentionMask)
        self.attention_op_type = None

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _KNOWN:
            raise AttributeError(
                f"FusionOptions has no option '{name}' (known: {', '.join(sorted(_KNOWN))})")
        object.__setattr__(self, name, value)

    def use_raw_attention_mask(self, use_raw_mask: bool = True) -> None:
        """Feed Attention the raw (batch, sequence) mask (any padding) instead of the 1-D mask
        index (right padding only)."""
        self.attention_mask_format = (
            AttentionMaskFormat.AttentionMask if use_raw_mask else AttentionMaskFormat.MaskIndexEnd)

    def disable_attention_mask(self) -> None:
        """ORT's attention without a mask; bertopt does not support it (optimize_model says so)."""
        self.attention_mask_format = AttentionMaskFormat.NoMask

    def set_attention_op_type(self, attn_op_type: AttentionOpType) -> None:
        self.attention_op_type = attn_op_type

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in sorted(vars(self).items()))
        return f"FusionOptions({items})"


def _resolve(options: Any, model_type: str) -> dict[str, Any]:
    """The _core.optimize keyword arguments for `options` (bertopt's or ORT's FusionOptions, or
    None for the defaults of `model_type`). Raises BadInputError naming every option bertopt
    cannot honour; options it does not know (a newer ORT's) are returned under "_unknown"."""
    if options is None:
        options = FusionOptions(model_type)
    values = dict(vars(options))
    args: dict[str, Any] = {}
    problems: list[str] = []
    for name, field in _SWITCHES.items():
        args[field] = not bool(values.pop(name, True))
    for name, (default, allowed, why) in _FIXED.items():
        value = values.pop(name, default)
        if value not in allowed:
            problems.append(f"{name}={value!r} is not supported: {why}")
    mask = values.pop("attention_mask_format", AttentionMaskFormat.MaskIndexEnd)
    if mask in _MASK_FORMATS:
        args["use_raw_attention_mask"] = _MASK_FORMATS[mask]
    else:
        problems.append(
            f"attention_mask_format={mask!r} is not supported: bertopt feeds Attention the 1-D "
            f"mask index (MaskIndexEnd) or the raw mask (AttentionMask)")
    op_type = values.pop("attention_op_type", None)
    if op_type is not None and str(getattr(op_type, "value", op_type)) != "Attention":
        problems.append(f"attention_op_type={op_type!s} is not supported: bertopt emits Attention")
    values.pop("model_type", None)
    if problems:
        raise BadInputError("optimization_options: " + "; ".join(problems), "invalid argument")
    args["_unknown"] = sorted(values)
    return args
