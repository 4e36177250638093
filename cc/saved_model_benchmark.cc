// Latency and throughput of an export's serving signature through TensorFlow's C++
// loader, per batch size: what `bazel run //pkg:<name>.benchmark` runs (made by the
// keras_saved_model macro). The session is TF Serving's with its default flags (a
// default ConfigProto: intra- and inter-op threads = all cores).
//
// Usage: saved_model_benchmark EXPORT_BASE [--batch_sizes=1,8,32] [--iterations=50]
//   [--warmup=5] [--signature=serving_default] [--unknown_dim=16] [--json_out=PATH]
//
// Inputs are made from the SignatureDef: the first unknown dim is the batch, others
// --unknown_dim; floats are seeded in [0, 1), integers 0, strings empty. Prints a table
// and writes the same numbers as JSON (default: <name>.benchmark.json in the folder
// `bazel run` was started from).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "cc/saved_model.h"
#include "tensorflow/c/tf_tstring.h"

namespace {

using rules_keras::Error;

struct Options {
  std::string export_base;
  std::vector<int64_t> batch_sizes = {1, 8, 32};
  int iterations = 50;
  int warmup = 5;
  std::string signature = "serving_default";
  int64_t unknown_dim = 16;
  std::string json_out;
};

int64_t PositiveNumber(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || value <= 0) throw Error(flag + " wants a positive number, not '" + text + "'");
  return value;
}

Options ParseFlags(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string flag = arg.substr(0, arg.find('='));
    std::string value = arg.find('=') == std::string::npos ? "" : arg.substr(arg.find('=') + 1);
    if (arg.rfind("--", 0) != 0) {
      options.export_base = arg;
    } else if (flag == "--batch_sizes") {
      options.batch_sizes.clear();
      std::stringstream list(value);
      for (std::string item; std::getline(list, item, ',');) options.batch_sizes.push_back(PositiveNumber(flag, item));
    } else if (flag == "--iterations") {
      options.iterations = static_cast<int>(PositiveNumber(flag, value));
    } else if (flag == "--warmup") {
      options.warmup = value == "0" ? 0 : static_cast<int>(PositiveNumber(flag, value));
    } else if (flag == "--signature") {
      options.signature = value;
    } else if (flag == "--unknown_dim") {
      options.unknown_dim = PositiveNumber(flag, value);
    } else if (flag == "--json_out") {
      options.json_out = value;
    } else {
      throw Error("unknown flag " + arg + " (flags: --batch_sizes, --iterations, --warmup, --signature, --unknown_dim, --json_out)");
    }
  }
  if (options.export_base.empty()) throw Error("usage: saved_model_benchmark EXPORT_BASE [flags]");
  if (options.json_out.empty()) {
    std::string base = options.export_base;
    while (!base.empty() && base.back() == '/') base.pop_back();
    const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
    options.json_out = std::string(cwd ? cwd : ".") + "/" + base.substr(base.rfind('/') + 1) + ".benchmark.json";
  }
  return options;
}

rules_keras::Tensor MakeInput(const std::string& name, const rules_keras::TensorInfo& info, int64_t batch,
                              int64_t unknown_dim, std::mt19937* random) {
  if (info.unknown_rank) throw Error("input '" + name + "' has no known rank: cannot make a batch for it");
  std::vector<int64_t> dims = info.shape;
  bool batched = false;
  int64_t elements = 1;
  for (int64_t& dim : dims) {
    if (dim < 0) dim = batched ? unknown_dim : batch, batched = true;
    elements *= dim;
  }
  if (info.dtype == TF_STRING) {
    rules_keras::Tensor tensor(TF_AllocateTensor(TF_STRING, dims.data(), static_cast<int>(dims.size()),
                                                 elements * sizeof(TF_TString)));
    auto* strings = static_cast<TF_TString*>(TF_TensorData(tensor.get()));
    for (int64_t i = 0; i < elements; ++i) TF_StringInit(&strings[i]);
    return tensor;
  }
  size_t bytes = elements * TF_DataTypeSize(info.dtype);
  std::vector<char> data(bytes, 0);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  if (info.dtype == TF_FLOAT) {
    auto* values = reinterpret_cast<float*>(data.data());
    for (int64_t i = 0; i < elements; ++i) values[i] = uniform(*random);
  }
  return rules_keras::NumericTensor(info.dtype, dims, data.data(), bytes);
}

// The value below which `fraction` of the sorted values fall (nearest rank).
double Percentile(const std::vector<double>& sorted, double fraction) {
  size_t rank = static_cast<size_t>(std::ceil(fraction * sorted.size()));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

std::string JsonString(const std::string& text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return quoted + "\"";
}

struct Result {
  int64_t batch_size;
  int iterations;
  double p50_ms, p90_ms, p99_ms, mean_ms, examples_per_s;
};

int Benchmark(const Options& options) {
  std::string version = rules_keras::FindVersionFolder(options.export_base);
  auto load_start = std::chrono::steady_clock::now();
  rules_keras::SavedModel model(version);
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  const rules_keras::Signature& signature = model.signature(options.signature);
  std::mt19937 random(0);
  std::vector<Result> results;
  for (int64_t batch : options.batch_sizes) {
    rules_keras::NamedTensors feeds;
    for (const auto& [name, info] : signature.inputs) {
      feeds[name] = MakeInput(name, info, batch, options.unknown_dim, &random);
    }
    for (int i = 0; i < options.warmup; ++i) model.Run(options.signature, feeds);
    std::vector<double> latencies_ms;
    for (int i = 0; i < options.iterations; ++i) {
      auto start = std::chrono::steady_clock::now();
      model.Run(options.signature, feeds);
      latencies_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    double total_ms = 0;
    for (double ms : latencies_ms) total_ms += ms;
    std::sort(latencies_ms.begin(), latencies_ms.end());
    results.push_back(Result{batch, options.iterations, Percentile(latencies_ms, 0.5), Percentile(latencies_ms, 0.9),
                             Percentile(latencies_ms, 0.99), total_ms / options.iterations,
                             batch * options.iterations / (total_ms / 1000.0)});
  }

  std::printf("%s, signature %s, loaded in %.3f s (TF Serving's default session options)\n", version.c_str(),
              options.signature.c_str(), load_s);
  std::printf("%10s %10s %10s %10s %10s %10s %14s\n", "batch", "runs", "p50_ms", "p90_ms", "p99_ms", "mean_ms",
              "examples/s");
  for (const Result& r : results) {
    std::printf("%10lld %10d %10.3f %10.3f %10.3f %10.3f %14.1f\n", static_cast<long long>(r.batch_size),
                r.iterations, r.p50_ms, r.p90_ms, r.p99_ms, r.mean_ms, r.examples_per_s);
  }
  std::ofstream json(options.json_out);
  json << "{\n  \"export\": " << JsonString(version) << ",\n  \"signature\": " << JsonString(options.signature)
       << ",\n  \"load_s\": " << load_s << ",\n  \"warmup_runs\": " << options.warmup << ",\n  \"results\": [";
  for (size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    json << (i ? "," : "") << "\n    {\"batch_size\": " << r.batch_size << ", \"iterations\": " << r.iterations
         << ", \"p50_ms\": " << r.p50_ms << ", \"p90_ms\": " << r.p90_ms << ", \"p99_ms\": " << r.p99_ms
         << ", \"mean_ms\": " << r.mean_ms << ", \"examples_per_s\": " << r.examples_per_s << "}";
  }
  json << "\n  ]\n}\n";
  if (!json.flush()) throw Error("cannot write " + options.json_out);
  std::printf("wrote %s\n", options.json_out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // TensorFlow reads TF_CPP_MIN_LOG_LEVEL as its library loads: run again with it set,
  // so that its informational logs do not bury the table.
  if (std::getenv("TF_CPP_MIN_LOG_LEVEL") == nullptr) {
    setenv("TF_CPP_MIN_LOG_LEVEL", "2", /*overwrite=*/1);
    execv("/proc/self/exe", argv);
  }
  try {
    return Benchmark(ParseFlags(argc, argv));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "saved_model_benchmark: %s\n", error.what());
    return 1;
  }
}
