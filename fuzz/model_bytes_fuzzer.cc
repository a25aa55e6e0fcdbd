// libFuzzer target: any bytes as a model file, through load, every pass, int8 and the conversions,
// save and reload (pipeline.h). Seeded with real exports, so most mutations are small damage to a
// valid model: a length, a tag, a few bytes of a name or a weight.

#include <cstddef>
#include <cstdint>
#include <string>

#include "pipeline.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bertopt::fuzz::FuzzOne(std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
