#!/usr/bin/python3
"""A BERT over protobuf's 2 GB limit, for `make test-large`: gen_bert.py's export with its word
embedding table widened to --vocab rows and stored as external data.

Exporting such a model with torch would hold the 2.2 GB table several times over; the graph does
not depend on the number of rows (a Gather reads the table), so a small export is widened here
instead: the other weights stay inline in the .onnx, the table goes to `<name>.onnx.data`, filled
with seeded random values a chunk at a time (memory stays at one chunk).

Run with Debian's /usr/bin/python3 (python3-torch 1.13, python3-onnx 1.12). The model is cached
under tests/models/cache/large_vocab_<hash>/; the last line of stdout is its path.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx

SCRIPT = Path(__file__).resolve()
CHUNK_ROWS = 1 << 16


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vocab", type=int, default=720000,
                   help="word embedding rows (default 720000: 720000 x 768 x 4 B = 2.21 GB)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--opset", type=int, default=14)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache_dir", default=str(SCRIPT.parent / "cache"))
    args = p.parse_args(argv)

    base_args = ["--kind", "bert_seq", "--layers", str(args.layers), "--hidden", str(args.hidden),
                 "--heads", str(args.heads), "--vocab", "1000", "--opset", str(args.opset),
                 "--seed", str(args.seed)]
    key = hashlib.sha256()
    for source in (SCRIPT, SCRIPT.parent / "gen_bert.py"):
        key.update(source.read_bytes())
    key.update(repr((base_args, args.vocab)).encode())
    folder = Path(args.cache_dir) / f"large_vocab_{key.hexdigest()[:12]}"
    model_path = folder / "model.onnx"
    if model_path.exists():
        print(model_path)
        return

    small = subprocess.run([sys.executable, str(SCRIPT.parent / "gen_bert.py"), *base_args],
                           check=True, stdout=subprocess.PIPE, text=True).stdout.split()[-1]
    model = onnx.load(small)
    tables = [t for t in model.graph.initializer
              if list(t.dims) == [1000, args.hidden] and t.data_type == onnx.TensorProto.FLOAT]
    if len(tables) != 1:
        raise SystemExit(f"{small}: expected one [1000, {args.hidden}] word embedding table, "
                         f"found {[t.name for t in tables]}")
    table = tables[0]

    tmp = Path(str(folder) + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rng = np.random.default_rng(args.seed)
    row_bytes = args.hidden * 4
    with open(tmp / "model.onnx.data", "wb") as data:
        for start in range(0, args.vocab, CHUNK_ROWS):
            rows = min(CHUNK_ROWS, args.vocab - start)
            chunk = rng.standard_normal((rows, args.hidden), dtype=np.float32) * np.float32(0.02)
            data.write(chunk.astype("<f4").tobytes())
        data.flush()
        os.fsync(data.fileno())
    del table.dims[:]
    table.dims.extend([args.vocab, args.hidden])
    table.ClearField("raw_data")
    table.ClearField("float_data")
    table.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", "model.onnx.data"), ("offset", "0"),
                 ("length", str(args.vocab * row_bytes))):
        entry = table.external_data.add()
        entry.key, entry.value = k, v
    with open(tmp / "model.onnx", "wb") as f:
        f.write(model.SerializeToString())
    os.replace(tmp, folder)
    print(model_path)


if __name__ == "__main__":
    main()
