// io_floor: load a model and save it again with bertopt's own I/O, nothing else, the way
// `bertopt optimize` does (the input mapped, unchanged weights copied file to file). Its wall time
// and peak RSS sit between the I/O floor (cp + sync of the file) and `bertopt optimize` in
// bench/optimize_speed.sh: what optimize costs above it is the passes, not reading and writing.
//   io_floor <input.onnx> <output.onnx>
#include <cstdio>

#include "bertopt/io/model_io.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <input.onnx> <output.onnx>\n", argv[0]);
    return 2;
  }
  auto model = bertopt::io::LoadModelMapped(argv[1]);
  if (!model.ok()) {
    std::fprintf(stderr, "io_floor: %s\n", model.status().message().c_str());
    return 1;
  }
  // Same save options as `bertopt optimize` without flags: inline unless over 2 GB.
  bertopt::io::SaveOptions save;
  save.protect = argv[1];
  const bertopt::Status saved = bertopt::io::SaveModel(model->model(), argv[2], save);
  if (!saved.ok()) {
    std::fprintf(stderr, "io_floor: %s\n", saved.message().c_str());
    return 1;
  }
  return 0;
}
