// A SavedModel loaded through TensorFlow's C API the way TF Serving loads it (the
// MetaGraph tagged "serve", variables restored, init op run), with its SignatureDefs,
// run by their tensor names; and the tensors file format in which rules_keras's tests
// exchange inputs and outputs with C++ programs.
#ifndef RULES_KERAS_CC_SAVED_MODEL_H_
#define RULES_KERAS_CC_SAVED_MODEL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tensorflow/c/c_api.h"

namespace rules_keras {

// A failure to report to the user as one line (what is missing or wrong, and where).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One input or output of a SignatureDef: the graph tensor ("op:index") and its dtype.
struct TensorInfo {
  std::string tensor_name;
  TF_DataType dtype = TF_FLOAT;
  // Its dims, -1 where any size goes; unknown_rank when not even the rank is known.
  std::vector<int64_t> shape;
  bool unknown_rank = false;
};

struct Signature {
  std::string method_name;
  std::map<std::string, TensorInfo> inputs;
  std::map<std::string, TensorInfo> outputs;
};

// A TF_Tensor owned by its holder.
struct TensorDeleter {
  void operator()(TF_Tensor* tensor) const { TF_DeleteTensor(tensor); }
};
using Tensor = std::unique_ptr<TF_Tensor, TensorDeleter>;
using NamedTensors = std::map<std::string, Tensor>;

// The SignatureDef TensorFlow adds to hold the init op; no client runs it.
inline constexpr char kInitOpSignature[] = "__saved_model_init_op";

class SavedModel {
 public:
  // Loads the version folder `export_dir` (holding saved_model.pb) with tags {serve}.
  // `config` is a serialized ConfigProto for the session ("" for the defaults).
  explicit SavedModel(const std::string& export_dir, const std::string& config = "");
  ~SavedModel();
  SavedModel(const SavedModel&) = delete;
  SavedModel& operator=(const SavedModel&) = delete;

  // Every SignatureDef but the init op's, by key.
  const std::map<std::string, Signature>& signatures() const { return signatures_; }

  // The SignatureDef `key`; throws Error naming the ones there are if it is missing.
  const Signature& signature(const std::string& key) const;

  // Runs the SignatureDef `key` as TF Serving does: feeds its input tensors by name,
  // fetches every output. `feeds` must name exactly the signature's inputs.
  NamedTensors Run(const std::string& key, const NamedTensors& feeds);

  // A digest of each variable's value (every VarHandleOp of the graph, read by handle).
  std::vector<uint64_t> VariableDigests();

  // Puts the exported values back into every variable, as loading did: runs the
  // MetaGraph's restore op on the export's checkpoint (variables/variables).
  void RestoreVariables();

 private:
  TF_Output Find(const std::string& tensor_name, const std::string& what) const;

  std::string export_dir_;
  TF_Graph* graph_ = nullptr;
  TF_Session* session_ = nullptr;
  std::map<std::string, Signature> signatures_;
  // The SaverDef's filename tensor and restore op ("" when the graph has no saver).
  std::string restore_filename_tensor_;
  std::string restore_op_;
  std::vector<std::vector<TF_Output>> variable_reads_;
  bool variable_reads_added_ = false;
};

// The tensors file: a count, then per tensor its name, TF_DataType, shape and values
// (raw little-endian for numbers; a length and the bytes for each string). Written and
// read by rules/private/tensors_file.py too.
NamedTensors ReadTensorsFile(const std::string& path);
void WriteTensorsFile(const std::string& path, const NamedTensors& tensors);

// A tensor of `dtype` and `dims` with its values copied from `data` (not TF_STRING).
Tensor NumericTensor(TF_DataType dtype, const std::vector<int64_t>& dims,
                     const void* data, size_t bytes);

// A request of an export's warmup file (assets.extra/tf_serving_warmup_requests, a
// TFRecord file of PredictionLogs): the SignatureDef it runs and its inputs, as TF
// Serving replays it after loading the export.
struct WarmupRequest {
  std::string signature_name;
  NamedTensors inputs;
};

// The warmup file's requests in `export_dir`, in order (none without the file). Throws
// Error for a record that is not a predict log. The records' CRCs are not checked.
std::vector<WarmupRequest> ReadWarmupRequests(const std::string& export_dir);

// The version folder under an export folder (`<name>/<version>/saved_model.pb`):
// the highest numbered one. Throws Error if there is none.
std::string FindVersionFolder(const std::string& export_base);

}  // namespace rules_keras

#endif  // RULES_KERAS_CC_SAVED_MODEL_H_
