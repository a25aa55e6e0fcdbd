// bertopt._core: the C++ core as a Python module. Models cross as serialized ModelProto bytes (one
// parse each way, no files); errors cross as the bertopt.Error subclass for the CLI's exit code,
// carrying the CLI's message. The Python package (python/bertopt/__init__.py) builds the
// ONNX Runtime-compatible API on top of these few functions.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "bertopt/exit_codes.h"
#include "bertopt/io/model_io.h"
#include "bertopt/optimize.h"
#include "onnx/onnx_pb.h"
#include "passes/report_json.h"
#include "passes/targets.h"

#ifdef BERTOPT_HAVE_ORT
#include "commands.h"
#include "ort/compare.h"
#include "ort/version.h"
#include "perf/command.h"
#endif

namespace py = pybind11;

namespace bertopt::python {
namespace {

/// A failed Status on its way to Python, with the exit code the CLI gives it.
struct StatusError {
  Status status;
  int exit_code;
};

// What `bertopt optimize` exits with for a failed Status (tools/bertopt/optimize_cmd.cc).
[[noreturn]] void ThrowOptimizeError(Status status) {
  const int exit_code = status.code() == StatusCode::kInternal ? kExitFailed : kExitBadInput;
  throw StatusError{std::move(status), exit_code};
}

onnx::ModelProto ParseModel(const py::bytes& bytes) {
  char* data = nullptr;
  Py_ssize_t size = 0;
  if (PyBytes_AsStringAndSize(bytes.ptr(), &data, &size) != 0) throw py::error_already_set();
  onnx::ModelProto model;
  bool parsed = false;
  {
    py::gil_scoped_release release;
    parsed = model.ParseFromArray(data, static_cast<int>(size));
  }
  if (!parsed) ThrowOptimizeError(InvalidModel("<ModelProto>: not a valid serialized ONNX model"));
  return model;
}

py::bytes SerializeModel(const onnx::ModelProto& model) {
  std::string bytes;
  bool serialized = false;
  {
    py::gil_scoped_release release;
    serialized = model.SerializeToString(&bytes);
  }
  if (!serialized) {
    ThrowOptimizeError(InvalidModel(
        "the optimized model cannot be serialized in memory (over protobuf's 2 GB limit?)"));
  }
  return py::bytes(bytes);
}

// The report with the keys of `bertopt optimize --json` (less input and output, which a model in
// memory has not), as plain Python data.
py::object ReportDict(const OptimizeReport& r, const OptimizeOptions& o) {
  return py::module_::import("json").attr("loads")(OptimizeReportJson(r, o).dump());
}

// Loads `path` (external data read in, as the CLI does) or parses `model`, runs the pipeline and
// returns (optimized model bytes, report).
py::tuple Optimize(const std::string& path, const py::object& model_bytes,
                   const OptimizeOptions& options) {
  onnx::ModelProto model;
  std::string context = "<ModelProto>";
  if (!path.empty()) {
    context = path;
    StatusOr<onnx::ModelProto> loaded = [&] {
      py::gil_scoped_release release;
      return io::LoadModel(path);
    }();
    if (!loaded.ok()) ThrowOptimizeError(loaded.status());
    model = std::move(loaded).value();
  } else {
    model = ParseModel(model_bytes.cast<py::bytes>());
  }
  if (!options.target_ort_version.empty()) {
    if (auto target = passes::TargetFor(options.target_ort_version); !target.ok()) {
      ThrowOptimizeError(target.status());
    }
  }
  StatusOr<OptimizeReport> report = [&] {
    py::gil_scoped_release release;
    return bertopt::Optimize(model, options);
  }();
  if (!report.ok()) ThrowOptimizeError(std::move(report).status().WithContext(context));
  return py::make_tuple(SerializeModel(model), ReportDict(*report, options));
}

void Save(const py::bytes& model_bytes, const std::string& path, bool external_data,
          int64_t external_threshold_bytes, const std::string& protect) {
  const onnx::ModelProto model = ParseModel(model_bytes);
  io::SaveOptions save;
  save.external_data = external_data;
  save.external_threshold_bytes = external_threshold_bytes;
  save.protect = protect;
  Status s = [&] {
    py::gil_scoped_release release;
    return io::SaveModel(model, path, save);
  }();
  if (!s.ok()) ThrowOptimizeError(s);
}

#ifdef BERTOPT_HAVE_ORT

// CompareModels with `bertopt compare`'s options; returns (the --json text, the log it printed).
py::tuple Compare(const ort::CompareOptions& options) {
  std::ostringstream log;
  StatusOr<ort::CompareReport> report = [&] {
    py::gil_scoped_release release;
    return ort::CompareModels(options, log);
  }();
  // `bertopt compare` exits 2 for every error; a mismatch is a report, not an error.
  // Its message is the CLI's line, "<code>: <message>".
  if (!report.ok()) {
    throw StatusError{Status(report.status().code(), report.status().ToString()), kExitBadInput};
  }
  return py::make_tuple(ort::CompareReportToJson(options, *report).dump(2), log.str());
}

// RunPerfCommand with `argv` (which should hold --json): its stdout on success, or the error it
// printed, as the exception of its exit code.
std::string Perf(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  argv.reserve(args.size());
  for (const std::string& a : args) argv.push_back(a.c_str());
  char* out_text = nullptr;
  char* err_text = nullptr;
  size_t out_size = 0;
  size_t err_size = 0;
  std::FILE* out = open_memstream(&out_text, &out_size);
  std::FILE* err = open_memstream(&err_text, &err_size);
  int exit_code = 0;
  {
    py::gil_scoped_release release;
    exit_code = perf::RunPerfCommand(static_cast<int>(argv.size()), argv.data(), out, err);
  }
  std::fclose(out);
  std::fclose(err);
  std::string stdout_text(out_text, out_size);
  std::string stderr_text(err_text, err_size);
  std::free(out_text);
  std::free(err_text);
  if (exit_code != kExitOk) {
    // "<argv[0]>: <message>\n", as the CLI prints it.
    std::string message = stderr_text;
    const std::string prefix = args.front() + ": ";
    if (message.rfind(prefix, 0) == 0) message.erase(0, prefix.size());
    while (!message.empty() && message.back() == '\n') message.pop_back();
    throw StatusError{
        Status(exit_code == kExitBadInput ? StatusCode::kInvalidArgument : StatusCode::kRuntime,
               message),
        exit_code};
  }
  return stdout_text;
}

// `bertopt <command> <flags...>` in this process; returns its exit code. Output goes to the
// process's stdout / stderr, as from the binary.
int Cli(const std::vector<std::string>& args) {
  struct Command {
    const char* name;
    int (*main)(int, char**);
  };
  static constexpr Command kCommands[] = {
      {"optimize", cli::OptimizeMain}, {"compare", cli::CompareMain}, {"perf", cli::PerfMain}};
  auto usage = [](std::FILE* f) {
    std::fprintf(f,
                 "usage: python -m bertopt <command> [flags]   (<command> --help for flags)\n"
                 "commands: optimize, compare, perf (the flags of `bertopt <command>`)\n");
  };
  if (args.empty()) {
    usage(stderr);
    return kExitBadInput;
  }
  if (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    usage(stdout);
    std::fflush(stdout);
    return kExitOk;
  }
  int exit_code = -1;
  for (const Command& c : kCommands) {
    if (args[0] != c.name) continue;
    std::vector<std::string> owned{"bertopt " + args[0]};
    owned.insert(owned.end(), args.begin() + 1, args.end());
    std::vector<char*> argv;
    for (std::string& a : owned) argv.push_back(a.data());
    py::gil_scoped_release release;
    exit_code = c.main(static_cast<int>(argv.size()), argv.data());
  }
  if (exit_code < 0) {
    std::fprintf(stderr, "bertopt: unknown command '%s'\n", args[0].c_str());
    usage(stderr);
    exit_code = kExitBadInput;
  }
  std::cout.flush();
  std::fflush(stdout);
  std::fflush(stderr);
  return exit_code;
}

#endif  // BERTOPT_HAVE_ORT

}  // namespace
}  // namespace bertopt::python

PYBIND11_MODULE(_core, m) {
  using namespace bertopt;
  using bertopt::python::StatusError;
  m.doc() = "bertopt's C++ core; use the bertopt package, not this module";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      py::object errors = py::module_::import("bertopt._errors");
      py::object exc = errors.attr("_from_status")(e.exit_code, StatusCodeName(e.status.code()),
                                                   e.status.message());
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
    }
  });

  m.def(
      "optimize",
      [](const std::string& path, const py::object& model, const std::string& model_type,
         int num_heads, int hidden_size, bool use_raw_attention_mask, bool disable_attention,
         bool disable_skip_layer_norm, bool disable_embed_layer_norm, bool disable_bias_gelu,
         bool disable_gelu, bool disable_layer_norm, const std::string& target_ort_version) {
        OptimizeOptions o;
        o.pass.model_type = model_type;
        o.pass.num_heads = num_heads;
        o.pass.hidden_size = hidden_size;
        o.pass.use_raw_attention_mask = use_raw_attention_mask;
        o.disable_attention = disable_attention;
        o.disable_skip_layer_norm = disable_skip_layer_norm;
        o.disable_embed_layer_norm = disable_embed_layer_norm;
        o.disable_bias_gelu = disable_bias_gelu;
        o.disable_gelu = disable_gelu;
        o.disable_layer_norm = disable_layer_norm;
        o.target_ort_version = target_ort_version;
        return python::Optimize(path, model, o);
      },
      py::arg("path"), py::arg("model"), py::arg("model_type"), py::arg("num_heads"),
      py::arg("hidden_size"), py::arg("use_raw_attention_mask"), py::arg("disable_attention"),
      py::arg("disable_skip_layer_norm"), py::arg("disable_embed_layer_norm"),
      py::arg("disable_bias_gelu"), py::arg("disable_gelu"), py::arg("disable_layer_norm"),
      py::arg("target_ort_version"),
      "Optimizes the model at `path` (or the serialized `model` when path is empty); returns "
      "(optimized model bytes, report dict).");
  m.def(
      "float16",
      [](const py::bytes& model, bool keep_io_types, const std::vector<std::string>& op_block_list,
         const std::vector<std::string>& node_block_list, bool gpu_only) {
        // `optimize --float16` on an already optimized model: the passes find nothing left to
        // fuse (a second optimize is the identity), then the float16 conversion runs as there.
        OptimizeOptions o;
        o.target_ort_version = "";
        o.float16 = true;
        o.gpu_only = gpu_only;
        o.float16_options.keep_io_types = keep_io_types;
        o.float16_options.op_block_list = op_block_list;
        o.float16_options.node_block_list = node_block_list;
        return python::Optimize("", model, o);
      },
      py::arg("model"), py::arg("keep_io_types"), py::arg("op_block_list"),
      py::arg("node_block_list"), py::arg("gpu_only"),
      "Converts the serialized (optimized) model to float16 as `bertopt optimize --float16`; "
      "returns (model bytes, report dict).");
  m.def("save", &python::Save, py::arg("model"), py::arg("path"), py::arg("external_data"),
        py::arg("external_threshold_bytes"), py::arg("protect"),
        "Writes serialized model bytes to `path` atomically, as `bertopt optimize` does, "
        "refusing to write over `protect` (the input model) unless it is empty.");
  m.def("reported_op_types", &ReportedOpTypes, "The op types the optimize report counts.");

#ifdef BERTOPT_HAVE_ORT
  m.attr("has_ort") = true;
  m.def("ort_version", &ort::RuntimeVersion, "The linked ONNX Runtime's version.");
  m.def(
      "compare",
      [](const std::string& baseline, const std::string& optimized, int batch_size,
         int sequence_length, int samples, uint64_t seed, double rtol, double atol, bool use_gpu,
         const std::string& output_dir, const std::string& input_ids_name,
         const std::string& segment_ids_name, const std::string& input_mask_name, bool verbose,
         bool write_test_data) {
        ort::CompareOptions o;
        o.baseline_model = baseline;
        o.optimized_model = optimized;
        o.batch_size = batch_size;
        o.sequence_length = sequence_length;
        o.samples = samples;
        o.seed = seed;
        o.rtol = rtol;
        o.atol = atol;
        o.use_gpu = use_gpu;
        o.output_dir = output_dir;
        o.input_ids_name = input_ids_name;
        o.segment_ids_name = segment_ids_name;
        o.input_mask_name = input_mask_name;
        o.verbose = verbose;
        o.write_test_data = write_test_data;
        return python::Compare(o);
      },
      py::arg("baseline_model"), py::arg("optimized_model"), py::arg("batch_size"),
      py::arg("sequence_length"), py::arg("samples"), py::arg("seed"), py::arg("rtol"),
      py::arg("atol"), py::arg("use_gpu"), py::arg("output_dir"), py::arg("input_ids_name"),
      py::arg("segment_ids_name"), py::arg("input_mask_name"), py::arg("verbose"),
      py::arg("write_test_data"), "Returns (`bertopt compare --json` text, log).");
  m.def("perf", &python::Perf, py::arg("argv"),
        "Runs `bertopt perf` with argv (argv[0] the display name); returns its stdout.");
  m.def("cli", &python::Cli, py::arg("args"),
        "Runs `bertopt <args...>` in this process and returns its exit code.");
#else
  m.attr("has_ort") = false;
#endif
}
