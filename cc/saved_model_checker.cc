// Runs an export's SignatureDefs through TensorFlow's C++ SavedModel loader (the C
// API's TF_LoadSessionFromSavedModel, which TF Serving's loader also calls), for
// keras_saved_model_test (rules/private/keras_saved_model_test_main.py).
//
// Usage: saved_model_checker EXPORT_DIR REQUEST_DIR [-]
//
// REQUEST_DIR/requests.txt holds one request a line, "NAME SIGNATURE_KEY run|train
// [FEEDS_FROM]", and NAME.feeds its inputs (a tensors file, cc/saved_model.h), or, with
// FEEDS_FROM, the outputs of the earlier request of that name are its inputs (eval_result
// fed what eval_state gave). "NAME - warmup" replays the export's warmup file as TF
// Serving does, each record on its signature: NAME_<i>.outputs for record i, and
// NAME.signatures the signature of each, a line each. With "-", the request lines come from stdin instead, read
// once the export is loaded: a caller starts the checker before its requests are ready.
// The checker writes signatures.txt (every SignatureDef key, a line each), NAME.outputs
// for each request and, for a train request, NAME.variables ("CHANGED TOTAL": how many
// of the model's variables the run changed). The export is loaded once and the requests
// run in order; a train request starts from the exported values (restored from the
// checkpoint, as the loader restores them) and they are put back after it. Exits 1 with
// one line on stderr when a request cannot run.
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

#include "cc/saved_model.h"

namespace {

int Check(const std::string& export_dir, const std::string& request_dir, bool from_stdin) {
  using rules_keras::SavedModel;
  std::ifstream requests_file;
  if (!from_stdin) {
    requests_file.open(request_dir + "/requests.txt");
    if (!requests_file) throw rules_keras::Error("cannot read " + request_dir + "/requests.txt");
  }
  std::istream& requests = from_stdin ? std::cin : requests_file;
  SavedModel served(export_dir);
  {
    std::ofstream keys(request_dir + "/signatures.txt");
    for (const auto& [key, signature] : served.signatures()) keys << key << "\n";
  }
  // Each request's outputs, kept while a later request may be fed them.
  std::map<std::string, rules_keras::NamedTensors> outputs;
  bool variables_moved = false;
  std::string line;
  while (std::getline(requests, line)) {
    std::istringstream fields(line);
    std::string name, key, kind, feeds_from;
    if (!(fields >> name >> key >> kind)) continue;
    if (kind == "warmup") {
      std::ofstream keys(request_dir + "/" + name + ".signatures");
      auto warmup = rules_keras::ReadWarmupRequests(export_dir);
      for (size_t i = 0; i < warmup.size(); ++i) {
        keys << warmup[i].signature_name << "\n";
        variables_moved = true;
        rules_keras::WriteTensorsFile(request_dir + "/" + name + "_" + std::to_string(i) + ".outputs",
                                      served.Run(warmup[i].signature_name, warmup[i].inputs));
      }
      continue;
    }
    fields >> feeds_from;
    rules_keras::NamedTensors read_feeds;
    const rules_keras::NamedTensors* feeds = &read_feeds;
    if (feeds_from.empty()) {
      read_feeds = rules_keras::ReadTensorsFile(request_dir + "/" + name + ".feeds");
    } else {
      auto found = outputs.find(feeds_from);
      if (found == outputs.end()) {
        throw rules_keras::Error("request '" + name + "' is fed the outputs of '" + feeds_from +
                                 "', which no earlier request gave");
      }
      feeds = &found->second;
    }
    std::string prefix = request_dir + "/" + name;
    rules_keras::NamedTensors result;
    if (kind == "train") {
      if (variables_moved) served.RestoreVariables();
      std::vector<uint64_t> before = served.VariableDigests();
      result = served.Run(key, *feeds);
      std::vector<uint64_t> after = served.VariableDigests();
      size_t changed = 0;
      for (size_t i = 0; i < before.size(); ++i) changed += before[i] != after[i];
      std::ofstream(prefix + ".variables") << changed << " " << before.size() << "\n";
      served.RestoreVariables();
    } else {
      // A signature other than train may still move state (a metric's variables).
      variables_moved = true;
      result = served.Run(key, *feeds);
    }
    rules_keras::WriteTensorsFile(prefix + ".outputs", result);
    outputs[name] = std::move(result);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool from_stdin = argc == 4 && std::string(argv[3]) == "-";
  if (argc != 3 && !from_stdin) {
    std::cerr << "usage: saved_model_checker EXPORT_DIR REQUEST_DIR [-]\n";
    return 2;
  }
  try {
    return Check(argv[1], argv[2], from_stdin);
  } catch (const rules_keras::Error& error) {
    std::cerr << "saved_model_checker: " << error.what() << "\n";
    return 1;
  }
}
