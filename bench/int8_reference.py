"""ONNX Runtime's own dynamic quantizer on a model, for bench/int8_base.sh: the reference bertopt
quantize is measured against. Run with the onnxruntime of a virtual environment (not the system
Python), e.g. /work/venvs/ort/bin/python bench/int8_reference.py IN OUT [--per_channel].

Prints the op counts of the result, one line per op type, so the note can show what it quantized.
"""
import argparse
import collections
import time

import onnx
import onnxruntime
from onnxruntime.quantization import QuantType, quantize_dynamic


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--per_channel", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    # Shape inference cannot type the outputs of com.microsoft ops; everything here is float32.
    quantize_dynamic(args.input, args.output, weight_type=QuantType.QInt8,
                     per_channel=args.per_channel,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    seconds = time.perf_counter() - start
    counts = collections.Counter(n.op_type for n in onnx.load(args.output).graph.node)
    print(f"onnxruntime {onnxruntime.__version__} quantize_dynamic (QInt8, per_channel="
          f"{args.per_channel}): {seconds:.1f} s")
    for op, n in sorted(counts.items()):
        print(f"  {op:30} {n}")


if __name__ == "__main__":
    main()
