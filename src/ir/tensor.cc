#include "bertopt/ir/tensor.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>

namespace bertopt::ir {
namespace {

using onnx::TensorProto;

// The live MappedRegions by id. Process-wide because a mark must be readable from the TensorProto
// alone: the decoders are called with nothing else by every pass. Ids are never reused, so a mark
// that outlives its region finds nothing rather than another file's bytes.
struct RegionTable {
  std::mutex mutex;
  std::map<uint64_t, const MappedRegion*> regions;
  uint64_t next_id = 1;
};

RegionTable& Regions() {
  static RegionTable table;  // NOLINT: see RegionTable
  return table;
}

std::optional<uint64_t> ParseU64(const std::string& text) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

void AddEntry(TensorProto* t, const std::string& key, const std::string& value) {
  onnx::StringStringEntryProto* entry = t->add_external_data();
  entry->set_key(key);
  entry->set_value(value);
}

// raw_data, or the bytes a mark points at; nullopt when the tensor has neither.
std::optional<std::string_view> RawPayload(const TensorProto& t) {
  if (t.has_raw_data()) return std::string_view(t.raw_data());
  if (auto mapped = FindMappedPayload(t)) return mapped->bytes;
  return std::nullopt;
}

template <typename T>
std::vector<T> ReadRaw(std::string_view raw) {
  std::vector<T> out(raw.size() / sizeof(T));
  // An empty vector's data() may be null, and memcpy from or to null is undefined even for 0 bytes.
  if (!out.empty()) std::memcpy(out.data(), raw.data(), out.size() * sizeof(T));
  return out;
}

template <typename T>
std::string ToRaw(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// External data that cannot be read from here: a file reference, or a mark whose region is gone.
bool IsExternal(const TensorProto& t) {
  return t.data_location() == TensorProto::EXTERNAL && !FindMappedPayload(t);
}

}  // namespace

MappedRegion::MappedRegion(std::string_view bytes, int fd) : bytes_(bytes), fd_(fd) {
  RegionTable& table = Regions();
  std::lock_guard<std::mutex> lock(table.mutex);
  id_ = table.next_id++;
  table.regions.emplace(id_, this);
}

MappedRegion::~MappedRegion() {
  RegionTable& table = Regions();
  std::lock_guard<std::mutex> lock(table.mutex);
  table.regions.erase(id_);
}

bool HasMappedMark(const TensorProto& t) {
  if (t.data_location() != TensorProto::EXTERNAL) return false;
  for (const auto& entry : t.external_data()) {
    if (entry.key() == kMappedRegionKey) return true;
  }
  return false;
}

std::optional<MappedPayload> FindMappedPayload(const TensorProto& t) {
  if (t.data_location() != TensorProto::EXTERNAL) return std::nullopt;
  std::optional<uint64_t> id;
  std::optional<uint64_t> offset;
  std::optional<uint64_t> length;
  for (const auto& entry : t.external_data()) {
    if (entry.key() == kMappedRegionKey) {
      id = ParseU64(entry.value());
    } else if (entry.key() == "offset") {
      offset = ParseU64(entry.value());
    } else if (entry.key() == "length") {
      length = ParseU64(entry.value());
    }
  }
  if (!id || !offset || !length) return std::nullopt;
  RegionTable& table = Regions();
  std::lock_guard<std::mutex> lock(table.mutex);
  auto it = table.regions.find(*id);
  if (it == table.regions.end()) return std::nullopt;
  const MappedRegion& region = *it->second;
  // A mark made by hand (not by MarkMapped) must not read outside the region.
  if (*offset > region.bytes().size() || *length > region.bytes().size() - *offset) {
    return std::nullopt;
  }
  return MappedPayload{region.bytes().substr(*offset, *length), region.fd(),
                       static_cast<int64_t>(*offset)};
}

void MarkMapped(TensorProto* t, const MappedRegion& region, int64_t offset, int64_t length,
                const std::string& location) {
  t->clear_raw_data();
  t->clear_external_data();
  t->set_data_location(TensorProto::EXTERNAL);
  AddEntry(t, "location", location);
  AddEntry(t, "offset", std::to_string(offset));
  AddEntry(t, "length", std::to_string(length));
  AddEntry(t, std::string(kMappedRegionKey), std::to_string(region.id()));
}

void ClearMappedMark(TensorProto* t) {
  if (!HasMappedMark(*t)) return;
  t->clear_external_data();
  t->clear_data_location();
}

bool MaterializeMapped(TensorProto* t) {
  std::optional<MappedPayload> mapped = FindMappedPayload(*t);
  if (!mapped) return false;
  std::string bytes(mapped->bytes);
  ClearMappedMark(t);
  t->set_raw_data(std::move(bytes));
  return true;
}

int64_t NumElements(const TensorProto& tensor) {
  int64_t n = 1;
  for (int64_t d : tensor.dims()) n *= d;
  return n;
}

int ElementSize(int32_t data_type) {
  switch (data_type) {
    case TensorProto::FLOAT:
    case TensorProto::INT32:
    case TensorProto::UINT32:
      return 4;
    case TensorProto::DOUBLE:
    case TensorProto::INT64:
    case TensorProto::UINT64:
      return 8;
    case TensorProto::FLOAT16:
    case TensorProto::BFLOAT16:
    case TensorProto::INT16:
    case TensorProto::UINT16:
      return 2;
    case TensorProto::INT8:
    case TensorProto::UINT8:
    case TensorProto::BOOL:
      return 1;
    default:
      return 0;
  }
}

std::optional<std::vector<double>> DecodeAsDoubles(const TensorProto& t) {
  if (IsExternal(t)) return std::nullopt;
  const int64_t n = NumElements(t);
  std::vector<double> out;
  const std::optional<std::string_view> raw = RawPayload(t);
  if (raw && static_cast<int64_t>(raw->size()) != n * ElementSize(t.data_type())) {
    return std::nullopt;
  }
  switch (t.data_type()) {
    case TensorProto::FLOAT:
      if (raw) {
        for (float v : ReadRaw<float>(*raw)) out.push_back(v);
      } else {
        out.assign(t.float_data().begin(), t.float_data().end());
      }
      break;
    case TensorProto::DOUBLE:
      if (raw) {
        out = ReadRaw<double>(*raw);
      } else {
        out.assign(t.double_data().begin(), t.double_data().end());
      }
      break;
    case TensorProto::FLOAT16:
      if (raw) {
        for (uint16_t v : ReadRaw<uint16_t>(*raw)) out.push_back(HalfToFloat(v));
      } else {
        for (int32_t v : t.int32_data()) out.push_back(HalfToFloat(static_cast<uint16_t>(v)));
      }
      break;
    default: {
      auto ints = DecodeAsInts(t);
      if (!ints) return std::nullopt;
      out.assign(ints->begin(), ints->end());
    }
  }
  if (static_cast<int64_t>(out.size()) != n) return std::nullopt;
  return out;
}

std::optional<std::vector<int64_t>> DecodeAsInts(const TensorProto& t) {
  if (IsExternal(t)) return std::nullopt;
  const int64_t n = NumElements(t);
  const std::optional<std::string_view> raw = RawPayload(t);
  if (raw && static_cast<int64_t>(raw->size()) != n * ElementSize(t.data_type())) {
    return std::nullopt;
  }
  std::vector<int64_t> out;
  switch (t.data_type()) {
    case TensorProto::INT64:
      if (raw) {
        out = ReadRaw<int64_t>(*raw);
      } else {
        out.assign(t.int64_data().begin(), t.int64_data().end());
      }
      break;
    case TensorProto::INT32:
      if (raw) {
        for (int32_t v : ReadRaw<int32_t>(*raw)) out.push_back(v);
      } else {
        out.assign(t.int32_data().begin(), t.int32_data().end());
      }
      break;
    case TensorProto::UINT64:
      if (raw) {
        for (uint64_t v : ReadRaw<uint64_t>(*raw)) out.push_back(static_cast<int64_t>(v));
      } else {
        for (uint64_t v : t.uint64_data()) out.push_back(static_cast<int64_t>(v));
      }
      break;
    case TensorProto::INT8:
    case TensorProto::UINT8:
    case TensorProto::BOOL:
    case TensorProto::INT16:
    case TensorProto::UINT16:
    case TensorProto::UINT32:
      if (raw) {
        const std::string_view r = *raw;
        const int size = ElementSize(t.data_type());
        for (int64_t i = 0; i < n; ++i) {
          const char* p = r.data() + i * size;
          switch (t.data_type()) {
            case TensorProto::INT8:
              out.push_back(static_cast<int8_t>(*p));
              break;
            case TensorProto::INT16: {
              int16_t v;
              std::memcpy(&v, p, 2);
              out.push_back(v);
              break;
            }
            case TensorProto::UINT16: {
              uint16_t v;
              std::memcpy(&v, p, 2);
              out.push_back(v);
              break;
            }
            case TensorProto::UINT32: {
              uint32_t v;
              std::memcpy(&v, p, 4);
              out.push_back(v);
              break;
            }
            default:
              out.push_back(static_cast<uint8_t>(*p));
          }
        }
      } else if (t.data_type() == TensorProto::UINT32) {
        out.assign(t.uint64_data().begin(), t.uint64_data().end());
      } else {
        out.assign(t.int32_data().begin(), t.int32_data().end());
      }
      break;
    default:
      return std::nullopt;
  }
  if (static_cast<int64_t>(out.size()) != n) return std::nullopt;
  return out;
}

std::optional<std::vector<float>> DecodeFloats(const TensorProto& t) {
  if (t.data_type() != TensorProto::FLOAT || IsExternal(t)) return std::nullopt;
  std::vector<float> out;
  if (const std::optional<std::string_view> raw = RawPayload(t)) {
    out = ReadRaw<float>(*raw);
  } else {
    out.assign(t.float_data().begin(), t.float_data().end());
  }
  if (static_cast<int64_t>(out.size()) != NumElements(t)) return std::nullopt;
  return out;
}

std::optional<std::string> PayloadBytes(const TensorProto& t) {
  const int size = ElementSize(t.data_type());
  if (IsExternal(t) || size == 0) return std::nullopt;
  const int64_t n = NumElements(t);
  std::string bytes;
  if (const std::optional<std::string_view> raw = RawPayload(t)) {
    bytes = *raw;
  } else {
    switch (t.data_type()) {
      case TensorProto::FLOAT:
        bytes = ToRaw(std::vector<float>(t.float_data().begin(), t.float_data().end()));
        break;
      case TensorProto::DOUBLE:
        bytes = ToRaw(std::vector<double>(t.double_data().begin(), t.double_data().end()));
        break;
      case TensorProto::INT64:
        bytes = ToRaw(std::vector<int64_t>(t.int64_data().begin(), t.int64_data().end()));
        break;
      case TensorProto::INT32:
        bytes = ToRaw(std::vector<int32_t>(t.int32_data().begin(), t.int32_data().end()));
        break;
      case TensorProto::FLOAT16:
      case TensorProto::BFLOAT16:
      case TensorProto::INT16:
      case TensorProto::UINT16: {
        std::vector<uint16_t> v;
        for (int32_t x : t.int32_data()) v.push_back(static_cast<uint16_t>(x));
        bytes = ToRaw(v);
        break;
      }
      default: {
        auto ints = DecodeAsInts(t);
        if (!ints || size != 1) return std::nullopt;
        for (int64_t x : *ints) bytes.push_back(static_cast<char>(x));
      }
    }
  }
  if (static_cast<int64_t>(bytes.size()) != n * size) return std::nullopt;
  return bytes;
}

std::optional<std::string_view> PayloadView(const TensorProto& t) {
  const int size = ElementSize(t.data_type());
  const std::optional<std::string_view> raw = RawPayload(t);
  if (size == 0 || !raw || static_cast<int64_t>(raw->size()) != NumElements(t) * size) {
    return std::nullopt;
  }
  return raw;
}

uint16_t FloatToHalf(float value) {
  const uint32_t f = std::bit_cast<uint32_t>(value);
  const uint32_t sign = (f >> 16) & 0x8000u;
  const uint32_t abs = f & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or nan
    return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds past max half
  if (abs < 0x38800000u) {  // result is subnormal (or zero) in half precision
    // Scale into the subnormal range with a float add, which rounds to nearest even for us.
    const float magnitude = std::bit_cast<float>(abs) + 0.5f;
    return static_cast<uint16_t>(sign | (std::bit_cast<uint32_t>(magnitude) - 0x3f000000u));
  }
  // Normal: rebias the exponent and round the mantissa to nearest even.
  const uint32_t odd = (abs >> 13) & 1u;
  const uint32_t rounded = abs + 0xc8000fffu + odd;  // -(127-15)<<23 plus rounding bias
  return static_cast<uint16_t>(sign | (rounded >> 13));
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24
    const float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
}

onnx::TensorProto MakeFloatTensor(const std::string& name, const std::vector<int64_t>& dims,
                                  const std::vector<float>& values) {
  TensorProto t;
  t.set_name(name);
  t.set_data_type(TensorProto::FLOAT);
  for (int64_t d : dims) t.add_dims(d);
  t.set_raw_data(ToRaw(values));
  return t;
}

onnx::TensorProto MakeInt64Tensor(const std::string& name, const std::vector<int64_t>& dims,
                                  const std::vector<int64_t>& values) {
  TensorProto t;
  t.set_name(name);
  t.set_data_type(TensorProto::INT64);
  for (int64_t d : dims) t.add_dims(d);
  t.set_raw_data(ToRaw(values));
  return t;
}

onnx::TensorProto MakeInt32Tensor(const std::string& name, const std::vector<int64_t>& dims,
                                  const std::vector<int32_t>& values) {
  TensorProto t;
  t.set_name(name);
  t.set_data_type(TensorProto::INT32);
  for (int64_t d : dims) t.add_dims(d);
  t.set_raw_data(ToRaw(values));
  return t;
}

}  // namespace bertopt::ir
