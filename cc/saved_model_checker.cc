// Runs an export's SignatureDefs through TensorFlow's C++ SavedModel loader (the C
// API's TF_LoadSessionFromSavedModel, which TF Serving's loader also calls), for
// keras_saved_model_test (rules/private/keras_saved_model_test_main.py).
//
// Usage: saved_model_checker EXPORT_DIR REQUEST_DIR
//
// REQUEST_DIR/requests.txt holds one request a line, "NAME SIGNATURE_KEY run|train",
// and NAME.feeds its inputs (a tensors file, cc/saved_model.h). The checker writes
// signatures.txt (every SignatureDef key, a line each), NAME.outputs for each request
// and, for a train request, NAME.variables ("CHANGED TOTAL": how many of the model's
// variables the run changed). run requests go through one loaded session in order;
// each train request gets a freshly loaded session, so it starts from the exported
// values. Exits 1 with one line on stderr when a request cannot run.
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "cc/saved_model.h"

namespace {

int Check(const std::string& export_dir, const std::string& request_dir) {
  using rules_keras::SavedModel;
  std::ifstream requests(request_dir + "/requests.txt");
  if (!requests) throw rules_keras::Error("cannot read " + request_dir + "/requests.txt");
  auto served = std::make_unique<SavedModel>(export_dir);
  {
    std::ofstream keys(request_dir + "/signatures.txt");
    for (const auto& [key, signature] : served->signatures()) keys << key << "\n";
  }
  std::string line;
  while (std::getline(requests, line)) {
    std::istringstream fields(line);
    std::string name, key, kind;
    if (!(fields >> name >> key >> kind)) continue;
    auto feeds = rules_keras::ReadTensorsFile(request_dir + "/" + name + ".feeds");
    std::string prefix = request_dir + "/" + name;
    if (kind == "train") {
      SavedModel fresh(export_dir);
      std::vector<uint64_t> before = fresh.VariableDigests();
      rules_keras::WriteTensorsFile(prefix + ".outputs", fresh.Run(key, feeds));
      std::vector<uint64_t> after = fresh.VariableDigests();
      size_t changed = 0;
      for (size_t i = 0; i < before.size(); ++i) changed += before[i] != after[i];
      std::ofstream(prefix + ".variables") << changed << " " << before.size() << "\n";
    } else {
      rules_keras::WriteTensorsFile(prefix + ".outputs", served->Run(key, feeds));
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: saved_model_checker EXPORT_DIR REQUEST_DIR\n";
    return 2;
  }
  try {
    return Check(argv[1], argv[2]);
  } catch (const rules_keras::Error& error) {
    std::cerr << "saved_model_checker: " << error.what() << "\n";
    return 1;
  }
}
