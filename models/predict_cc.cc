// Prints the example export's predictions for one image, from C++: the C++ twin of
// predict.py. `bazel run //models:predict_cc -- --seed=3` finds the SavedModel in its
// runfiles (Bazel's C++ runfiles library), loads it with TensorFlow's C API as TF
// Serving does, and prints the same JSON line as `bazel run //models:predict --
// --seed=3`. A missing export folder, signature or input exits 1 with one line.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "cc/saved_model.h"
#include "models/seeded_image.h"
#include "tools/cpp/runfiles/runfiles.h"

namespace {

using bazel::tools::cpp::runfiles::Runfiles;

// The export as the runfiles library names it: this repository's name, then the path.
constexpr char kExport[] = "rules_keras/models/my_export";

struct Options {
  uint32_t seed = 0;
  std::string export_dir;  // default: kExport in the runfiles
  std::string signature = "serving_default";
  std::string input = "image";
  std::string output = "probs";
};

Options ParseFlags(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const std::string& flag) -> const char* {
      return arg.rfind(flag + "=", 0) == 0 ? argv[i] + flag.size() + 1 : nullptr;
    };
    if (const char* v = value("--seed")) {
      options.seed = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    } else if (const char* v = value("--export_dir")) {
      options.export_dir = v;
    } else if (const char* v = value("--signature")) {
      options.signature = v;
    } else if (const char* v = value("--input")) {
      options.input = v;
    } else if (const char* v = value("--output")) {
      options.output = v;
    } else {
      throw rules_keras::Error("unknown flag " + arg + " (flags: --seed, --export_dir, --signature, --input, --output)");
    }
  }
  return options;
}

std::string FindExport(const char* argv0) {
  std::string error;
  std::unique_ptr<Runfiles> runfiles(Runfiles::Create(argv0, &error));
  if (runfiles == nullptr) throw rules_keras::Error("cannot find the runfiles: " + error);
  return runfiles->Rlocation(kExport);
}

int Predict(const Options& options, const char* argv0) {
  std::string base = options.export_dir.empty() ? FindExport(argv0) : options.export_dir;
  rules_keras::SavedModel model(rules_keras::FindVersionFolder(base));
  const rules_keras::Signature& signature = model.signature(options.signature);
  if (!signature.outputs.count(options.output)) {
    throw rules_keras::Error("signature '" + options.signature + "' has no output '" + options.output + "'");
  }
  std::vector<float> image = models::SeededImage(options.seed, 28 * 28);
  rules_keras::NamedTensors feeds;
  feeds[options.input] = rules_keras::NumericTensor(TF_FLOAT, {1, 28, 28, 1}, image.data(),
                                                    image.size() * sizeof(float));
  rules_keras::NamedTensors outputs = model.Run(options.signature, feeds);
  const TF_Tensor* probs = outputs.at(options.output).get();
  const auto* values = static_cast<const float*>(TF_TensorData(probs));
  int64_t classes = TF_Dim(probs, TF_NumDims(probs) - 1);
  int64_t best = 0;
  std::string printed;
  for (int64_t i = 0; i < classes; ++i) {
    if (values[i] > values[best]) best = i;
    char number[32];
    std::snprintf(number, sizeof(number), "%.6f", values[i]);
    printed += (i ? ", " : "") + std::string(number);
  }
  std::printf("{\"class\": %lld, \"probs\": [%s]}\n", static_cast<long long>(best), printed.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // TensorFlow's informational logs (the loader's progress) stay quiet, as in
  // predict.py; TF_CPP_MIN_LOG_LEVEL=0 shows them. TensorFlow reads the variable as
  // its library loads, before main: the program runs itself again with it set.
  if (std::getenv("TF_CPP_MIN_LOG_LEVEL") == nullptr) {
    setenv("TF_CPP_MIN_LOG_LEVEL", "2", /*overwrite=*/1);
    execv("/proc/self/exe", argv);
  }
  try {
    return Predict(ParseFlags(argc, argv), argv[0]);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "predict_cc: %s\n", error.what());
    return 1;
  }
}
