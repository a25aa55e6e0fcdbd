// io_floor: load a model and save it again with bertopt's own I/O, nothing else. Its wall time and
// peak RSS are the floor that `bertopt optimize` is measured against in bench/optimize_speed.sh:
// whatever optimize costs above this is the passes (and shape inference), not reading and writing.
//   io_floor <input.onnx> <output.onnx>
#include <cstdio>

#include "bertopt/io/model_io.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <input.onnx> <output.onnx>\n", argv[0]);
    return 2;
  }
  auto model = bertopt::io::LoadModel(argv[1]);
  if (!model.ok()) {
    std::fprintf(stderr, "io_floor: %s\n", model.status().message().c_str());
    return 1;
  }
  // Same save options as `bertopt optimize` without flags: inline unless over 2 GB.
  bertopt::io::SaveOptions save;
  save.protect = argv[1];
  const bertopt::Status saved = bertopt::io::SaveModel(*model, argv[2], save);
  if (!saved.ok()) {
    std::fprintf(stderr, "io_floor: %s\n", saved.message().c_str());
    return 1;
  }
  return 0;
}
