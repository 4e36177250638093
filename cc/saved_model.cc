#include "cc/saved_model.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>
#include <utility>

#include "tensorflow/c/tf_tstring.h"

namespace rules_keras {
namespace {

// Owns a TF_Status; Check throws its message as an Error.
class Status {
 public:
  Status() : status_(TF_NewStatus()) {}
  ~Status() { TF_DeleteStatus(status_); }
  Status(const Status&) = delete;
  Status& operator=(const Status&) = delete;
  TF_Status* get() { return status_; }
  void Check(const std::string& what) {
    if (TF_GetCode(status_) != TF_OK) {
      throw Error(what + ": " + TF_Message(status_));
    }
  }

 private:
  TF_Status* status_;
};

// Just enough of protobuf's wire format to read the SignatureDefs of a MetaGraphDef
// (the C API returns it serialized), so that a consumer needs no protobuf library.
class ProtoReader {
 public:
  ProtoReader(const void* data, size_t size)
      : at_(static_cast<const uint8_t*>(data)), end_(at_ + size) {}
  explicit ProtoReader(const std::string& bytes)
      : ProtoReader(bytes.data(), bytes.size()) {}

  // Moves to the next field; false at the end.
  bool Next() {
    if (at_ >= end_) return false;
    uint64_t key = Varint();
    field_ = static_cast<int>(key >> 3);
    wire_type_ = static_cast<int>(key & 7);
    return true;
  }
  int field() const { return field_; }

  uint64_t ReadVarint() { return Expect(0), Varint(); }
  std::string ReadBytes() {
    Expect(2);
    uint64_t size = Varint();
    if (size > static_cast<uint64_t>(end_ - at_)) throw Error("truncated MetaGraphDef");
    std::string bytes(reinterpret_cast<const char*>(at_), size);
    at_ += size;
    return bytes;
  }
  void Skip() {
    switch (wire_type_) {
      case 0: Varint(); break;
      case 1: Advance(8); break;
      case 2: Advance(Varint()); break;
      case 5: Advance(4); break;
      default: throw Error("unreadable MetaGraphDef (wire type " + std::to_string(wire_type_) + ")");
    }
  }

 private:
  uint64_t Varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at_ >= end_) throw Error("truncated MetaGraphDef");
      uint8_t byte = *at_++;
      value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return value;
    }
    throw Error("unreadable MetaGraphDef (varint)");
  }
  void Advance(uint64_t size) {
    if (size > static_cast<uint64_t>(end_ - at_)) throw Error("truncated MetaGraphDef");
    at_ += size;
  }
  void Expect(int wire_type) {
    if (wire_type_ != wire_type) throw Error("unreadable MetaGraphDef (field " + std::to_string(field_) + ")");
  }

  const uint8_t* at_;
  const uint8_t* end_;
  int field_ = 0;
  int wire_type_ = 0;
};

// A map<string, V> entry: key is field 1, the value's bytes field 2.
std::pair<std::string, std::string> ReadMapEntry(const std::string& bytes) {
  std::pair<std::string, std::string> entry;
  ProtoReader reader(bytes);
  while (reader.Next()) {
    if (reader.field() == 1) {
      entry.first = reader.ReadBytes();
    } else if (reader.field() == 2) {
      entry.second = reader.ReadBytes();
    } else {
      reader.Skip();
    }
  }
  return entry;
}

// TensorShapeProto: dim = 2 (each a Dim, size = 1), unknown_rank = 3.
void ReadShape(const std::string& bytes, TensorInfo* info) {
  ProtoReader reader(bytes);
  while (reader.Next()) {
    if (reader.field() == 2) {
      int64_t size = 0;
      std::string bytes = reader.ReadBytes();  // outlives the reader of it
      ProtoReader dim(bytes);
      while (dim.Next()) {
        if (dim.field() == 1) {
          size = static_cast<int64_t>(dim.ReadVarint());
        } else {
          dim.Skip();
        }
      }
      info->shape.push_back(size);
    } else if (reader.field() == 3) {
      info->unknown_rank = reader.ReadVarint() != 0;
    } else {
      reader.Skip();
    }
  }
}

// TensorInfo: name = 1 (a dense tensor; sparse and composite ones have no name),
// dtype = 2, tensor_shape = 3.
TensorInfo ReadTensorInfo(const std::string& bytes) {
  TensorInfo info;
  ProtoReader reader(bytes);
  while (reader.Next()) {
    if (reader.field() == 1) {
      info.tensor_name = reader.ReadBytes();
    } else if (reader.field() == 2) {
      info.dtype = static_cast<TF_DataType>(reader.ReadVarint());
    } else if (reader.field() == 3) {
      ReadShape(reader.ReadBytes(), &info);
    } else {
      reader.Skip();
    }
  }
  return info;
}

// SignatureDef: inputs = 1, outputs = 2, method_name = 3.
Signature ReadSignature(const std::string& bytes) {
  Signature signature;
  ProtoReader reader(bytes);
  while (reader.Next()) {
    if (reader.field() == 1 || reader.field() == 2) {
      auto [name, info] = ReadMapEntry(reader.ReadBytes());
      auto& side = reader.field() == 1 ? signature.inputs : signature.outputs;
      side[name] = ReadTensorInfo(info);
    } else if (reader.field() == 3) {
      signature.method_name = reader.ReadBytes();
    } else {
      reader.Skip();
    }
  }
  return signature;
}

// MetaGraphDef: saver_def = 3, signature_def = 5.
std::map<std::string, Signature> ReadSignatures(const void* data, size_t size) {
  std::map<std::string, Signature> signatures;
  ProtoReader reader(data, size);
  while (reader.Next()) {
    if (reader.field() == 5) {
      auto [key, bytes] = ReadMapEntry(reader.ReadBytes());
      if (key != kInitOpSignature) signatures[key] = ReadSignature(bytes);
    } else {
      reader.Skip();
    }
  }
  return signatures;
}

// SaverDef: filename_tensor_name = 1, restore_op_name = 3; empty when there is none.
std::pair<std::string, std::string> ReadSaver(const void* data, size_t size) {
  std::pair<std::string, std::string> saver;
  ProtoReader reader(data, size);
  while (reader.Next()) {
    if (reader.field() != 3) {
      reader.Skip();
      continue;
    }
    std::string bytes = reader.ReadBytes();  // outlives the reader of it
    ProtoReader saver_def(bytes);
    while (saver_def.Next()) {
      if (saver_def.field() == 1) {
        saver.first = saver_def.ReadBytes();
      } else if (saver_def.field() == 3) {
        saver.second = saver_def.ReadBytes();
      } else {
        saver_def.Skip();
      }
    }
  }
  return saver;
}

std::string Join(const std::map<std::string, TensorInfo>& tensors) {
  std::string names;
  for (const auto& [name, info] : tensors) names += (names.empty() ? "" : ", ") + name;
  return names;
}

// FNV-1a: stable across runs and machines, enough to see that a value changed.
uint64_t Digest(const void* data, size_t size, uint64_t hash = 1469598103934665603ULL) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) hash = (hash ^ bytes[i]) * 1099511628211ULL;
  return hash;
}

int64_t NumElements(const TF_Tensor* tensor) {
  int64_t count = 1;
  for (int i = 0; i < TF_NumDims(tensor); ++i) count *= TF_Dim(tensor, i);
  return count;
}

// TF Serving reads variables in groups of about this size (one run per variable
// re-prunes the whole graph each time; one run for all holds a second copy).
constexpr int64_t kReadGroupBytes = 64 << 20;

}  // namespace

SavedModel::SavedModel(const std::string& export_dir, const std::string& config)
    : export_dir_(export_dir) {
  Status status;
  TF_SessionOptions* options = TF_NewSessionOptions();
  if (!config.empty()) {
    TF_SetConfig(options, config.data(), config.size(), status.get());
    status.Check("invalid session config");
  }
  TF_Buffer* meta_graph = TF_NewBuffer();
  graph_ = TF_NewGraph();
  const char* tags[] = {"serve"};
  session_ = TF_LoadSessionFromSavedModel(options, nullptr, export_dir.c_str(), tags, 1,
                                          graph_, meta_graph, status.get());
  TF_DeleteSessionOptions(options);
  if (TF_GetCode(status.get()) != TF_OK) {
    TF_DeleteBuffer(meta_graph);
    TF_DeleteGraph(graph_);
    graph_ = nullptr;
    status.Check("cannot load the SavedModel " + export_dir + " with tags {serve}");
  }
  signatures_ = ReadSignatures(meta_graph->data, meta_graph->length);
  std::tie(restore_filename_tensor_, restore_op_) = ReadSaver(meta_graph->data, meta_graph->length);
  TF_DeleteBuffer(meta_graph);
}

SavedModel::~SavedModel() {
  if (session_ != nullptr) {
    Status status;
    TF_CloseSession(session_, status.get());
    TF_DeleteSession(session_, status.get());
  }
  if (graph_ != nullptr) TF_DeleteGraph(graph_);
}

const Signature& SavedModel::signature(const std::string& key) const {
  auto found = signatures_.find(key);
  if (found == signatures_.end()) {
    std::string keys;
    for (const auto& [name, signature] : signatures_) keys += (keys.empty() ? "" : ", ") + name;
    throw Error("the SavedModel " + export_dir_ + " has no signature '" + key + "'; it has: " + keys);
  }
  return found->second;
}

TF_Output SavedModel::Find(const std::string& tensor_name, const std::string& what) const {
  size_t colon = tensor_name.rfind(':');
  std::string op_name = tensor_name.substr(0, colon);
  int index = colon == std::string::npos ? 0 : std::stoi(tensor_name.substr(colon + 1));
  TF_Operation* op = TF_GraphOperationByName(graph_, op_name.c_str());
  if (tensor_name.empty() || op == nullptr || index >= TF_OperationNumOutputs(op)) {
    throw Error(what + " names the tensor '" + tensor_name + "', which the graph of " +
                export_dir_ + " does not have");
  }
  return TF_Output{op, index};
}

NamedTensors SavedModel::Run(const std::string& key, const NamedTensors& feeds) {
  const Signature& sig = signature(key);
  std::vector<TF_Output> inputs;
  std::vector<TF_Tensor*> input_values;
  for (const auto& [name, tensor] : feeds) {
    auto found = sig.inputs.find(name);
    if (found == sig.inputs.end()) {
      throw Error("signature '" + key + "' has no input '" + name + "'; its inputs are: " + Join(sig.inputs));
    }
    inputs.push_back(Find(found->second.tensor_name, "input '" + name + "' of signature '" + key + "'"));
    input_values.push_back(tensor.get());
  }
  for (const auto& [name, info] : sig.inputs) {
    if (!feeds.count(name)) throw Error("signature '" + key + "' needs the input '" + name + "', which is not given");
  }
  std::vector<std::string> output_names;
  std::vector<TF_Output> outputs;
  for (const auto& [name, info] : sig.outputs) {
    output_names.push_back(name);
    outputs.push_back(Find(info.tensor_name, "output '" + name + "' of signature '" + key + "'"));
  }
  std::vector<TF_Tensor*> output_values(outputs.size(), nullptr);
  Status status;
  TF_SessionRun(session_, nullptr, inputs.data(), input_values.data(), static_cast<int>(inputs.size()),
                outputs.data(), output_values.data(), static_cast<int>(outputs.size()), nullptr, 0,
                nullptr, status.get());
  status.Check("running signature '" + key + "' of " + export_dir_);
  NamedTensors result;
  for (size_t i = 0; i < outputs.size(); ++i) result[output_names[i]] = Tensor(output_values[i]);
  return result;
}

std::vector<uint64_t> SavedModel::VariableDigests() {
  Status status;
  if (!variable_reads_added_) {
    std::vector<TF_Operation*> handles;
    size_t position = 0;
    while (TF_Operation* op = TF_GraphNextOperation(graph_, &position)) {
      if (std::strcmp(TF_OperationOpType(op), "VarHandleOp") == 0) handles.push_back(op);
    }
    variable_reads_.emplace_back();
    int64_t group_bytes = 0;
    for (size_t i = 0; i < handles.size(); ++i) {
      TF_DataType dtype;
      TF_OperationGetAttrType(handles[i], "dtype", &dtype, status.get());
      status.Check("reading a variable's dtype");
      TF_AttrMetadata shape_info = TF_OperationGetAttrMetadata(handles[i], "shape", status.get());
      status.Check("reading a variable's shape");
      int64_t bytes = kReadGroupBytes;
      if (shape_info.total_size >= 0) {
        std::vector<int64_t> dims(shape_info.total_size);
        TF_OperationGetAttrShape(handles[i], "shape", dims.data(), static_cast<int>(dims.size()), status.get());
        status.Check("reading a variable's shape");
        bytes = TF_DataTypeSize(dtype);
        for (int64_t dim : dims) bytes *= dim < 0 ? kReadGroupBytes : dim;
      }
      if (!variable_reads_.back().empty() && group_bytes + bytes > kReadGroupBytes) {
        variable_reads_.emplace_back();
        group_bytes = 0;
      }
      std::string name = "rules_keras_read_variable_" + std::to_string(i);
      TF_OperationDescription* read = TF_NewOperation(graph_, "ReadVariableOp", name.c_str());
      TF_AddInput(read, TF_Output{handles[i], 0});
      TF_SetAttrType(read, "dtype", dtype);
      TF_Operation* op = TF_FinishOperation(read, status.get());
      status.Check("adding a read of a variable");
      variable_reads_.back().push_back(TF_Output{op, 0});
      group_bytes += bytes;
    }
    variable_reads_added_ = true;
  }
  std::vector<uint64_t> digests;
  for (const auto& group : variable_reads_) {
    if (group.empty()) continue;
    std::vector<TF_Tensor*> values(group.size(), nullptr);
    TF_SessionRun(session_, nullptr, nullptr, nullptr, 0, group.data(), values.data(),
                  static_cast<int>(group.size()), nullptr, 0, nullptr, status.get());
    status.Check("reading the variables of " + export_dir_);
    for (TF_Tensor* value : values) {
      Tensor owned(value);
      if (TF_TensorType(value) == TF_STRING) {
        const auto* strings = static_cast<const TF_TString*>(TF_TensorData(value));
        uint64_t hash = Digest(nullptr, 0);
        for (int64_t i = 0; i < NumElements(value); ++i) {
          hash = Digest(TF_StringGetDataPointer(&strings[i]), TF_StringGetSize(&strings[i]), hash);
        }
        digests.push_back(hash);
      } else {
        digests.push_back(Digest(TF_TensorData(value), TF_TensorByteSize(value)));
      }
    }
  }
  return digests;
}

void SavedModel::RestoreVariables() {
  if (restore_op_.empty()) return;  // no variables to restore
  TF_Operation* restore = TF_GraphOperationByName(graph_, restore_op_.c_str());
  if (restore == nullptr) throw Error("the SaverDef of " + export_dir_ + " names the restore op '" + restore_op_ + "', which its graph does not have");
  TF_Output filename = Find(restore_filename_tensor_, "the SaverDef's filename tensor");
  // The checkpoint prefix TensorFlow's loader restores from.
  std::string prefix = (std::filesystem::path(export_dir_) / "variables" / "variables").string();
  Tensor value(TF_AllocateTensor(TF_STRING, nullptr, 0, sizeof(TF_TString)));
  auto* string = static_cast<TF_TString*>(TF_TensorData(value.get()));
  TF_StringInit(string);
  TF_StringCopy(string, prefix.data(), prefix.size());
  TF_Tensor* feed = value.get();
  Status status;
  TF_SessionRun(session_, nullptr, &filename, &feed, 1, nullptr, nullptr, 0, &restore, 1, nullptr,
                status.get());
  status.Check("restoring the variables of " + export_dir_);
}

Tensor NumericTensor(TF_DataType dtype, const std::vector<int64_t>& dims, const void* data,
                     size_t bytes) {
  Tensor tensor(TF_AllocateTensor(dtype, dims.data(), static_cast<int>(dims.size()), bytes));
  if (!tensor || TF_TensorByteSize(tensor.get()) != bytes) {
    throw Error("cannot make a tensor of dtype " + std::to_string(dtype) + " from " + std::to_string(bytes) + " bytes");
  }
  if (bytes > 0) std::memcpy(TF_TensorData(tensor.get()), data, bytes);
  return tensor;
}

namespace {

template <typename T>
T ReadValue(std::istream& in, const std::string& path) {
  T value;
  if (!in.read(reinterpret_cast<char*>(&value), sizeof(value))) throw Error("truncated tensors file " + path);
  return value;
}

std::string ReadString(std::istream& in, size_t size, const std::string& path) {
  std::string bytes(size, '\0');
  if (size > 0 && !in.read(bytes.data(), static_cast<std::streamsize>(size))) {
    throw Error("truncated tensors file " + path);
  }
  return bytes;
}

template <typename T>
void WriteValue(std::ostream& out, T value) {
  out.write(reinterpret_cast<const char*>(&value), sizeof(value));
}

}  // namespace

NamedTensors ReadTensorsFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path);
  NamedTensors tensors;
  uint32_t count = ReadValue<uint32_t>(in, path);
  for (uint32_t t = 0; t < count; ++t) {
    std::string name = ReadString(in, ReadValue<uint32_t>(in, path), path);
    auto dtype = static_cast<TF_DataType>(ReadValue<uint32_t>(in, path));
    std::vector<int64_t> dims(ReadValue<uint32_t>(in, path));
    int64_t elements = 1;
    for (int64_t& dim : dims) elements *= dim = ReadValue<int64_t>(in, path);
    if (dtype == TF_STRING) {
      Tensor tensor(TF_AllocateTensor(TF_STRING, dims.data(), static_cast<int>(dims.size()),
                                      elements * sizeof(TF_TString)));
      auto* strings = static_cast<TF_TString*>(TF_TensorData(tensor.get()));
      for (int64_t i = 0; i < elements; ++i) {
        std::string value = ReadString(in, ReadValue<uint64_t>(in, path), path);
        TF_StringInit(&strings[i]);
        TF_StringCopy(&strings[i], value.data(), value.size());
      }
      tensors[name] = std::move(tensor);
    } else {
      std::string bytes = ReadString(in, elements * TF_DataTypeSize(dtype), path);
      tensors[name] = NumericTensor(dtype, dims, bytes.data(), bytes.size());
    }
  }
  return tensors;
}

void WriteTensorsFile(const std::string& path, const NamedTensors& tensors) {
  std::ofstream out(path, std::ios::binary);
  WriteValue<uint32_t>(out, static_cast<uint32_t>(tensors.size()));
  for (const auto& [name, tensor] : tensors) {
    WriteValue<uint32_t>(out, static_cast<uint32_t>(name.size()));
    out.write(name.data(), static_cast<std::streamsize>(name.size()));
    TF_DataType dtype = TF_TensorType(tensor.get());
    WriteValue<uint32_t>(out, dtype);
    WriteValue<uint32_t>(out, static_cast<uint32_t>(TF_NumDims(tensor.get())));
    for (int i = 0; i < TF_NumDims(tensor.get()); ++i) WriteValue<int64_t>(out, TF_Dim(tensor.get(), i));
    if (dtype == TF_STRING) {
      const auto* strings = static_cast<const TF_TString*>(TF_TensorData(tensor.get()));
      for (int64_t i = 0; i < NumElements(tensor.get()); ++i) {
        WriteValue<uint64_t>(out, TF_StringGetSize(&strings[i]));
        out.write(TF_StringGetDataPointer(&strings[i]), static_cast<std::streamsize>(TF_StringGetSize(&strings[i])));
      }
    } else {
      out.write(static_cast<const char*>(TF_TensorData(tensor.get())),
                static_cast<std::streamsize>(TF_TensorByteSize(tensor.get())));
    }
  }
  if (!out.flush()) throw Error("cannot write " + path);
}

namespace {

// The string field `field` of a message, "" if it is not set.
std::string ReadStringField(const std::string& message, int field) {
  std::string value;
  ProtoReader reader(message);
  while (reader.Next()) {
    if (reader.field() == field) {
      value = reader.ReadBytes();
    } else {
      reader.Skip();
    }
  }
  return value;
}

Tensor TensorFromProto(const std::string& proto, const std::string& what) {
  // TF_TensorFromProto replaces the dtype, shape and values of a tensor it is given.
  Tensor tensor(TF_AllocateTensor(TF_FLOAT, nullptr, 0, sizeof(float)));
  TF_Buffer* buffer = TF_NewBufferFromString(proto.data(), proto.size());
  Status status;
  TF_TensorFromProto(buffer, tensor.get(), status.get());
  TF_DeleteBuffer(buffer);
  status.Check("unreadable TensorProto in " + what);
  return tensor;
}

// PredictionLog: predict_log = 6 (PredictLog: request = 1). PredictRequest: model_spec
// = 1 (ModelSpec: signature_name = 3, serving_default when empty), inputs = 2.
WarmupRequest ReadPredictLog(const std::string& record, const std::string& what) {
  std::string predict_log = ReadStringField(record, 6);
  if (predict_log.empty()) throw Error(what + " is not a predict log");
  std::string request = ReadStringField(predict_log, 1);
  WarmupRequest warmup;
  ProtoReader reader(request);
  while (reader.Next()) {
    if (reader.field() == 1) {
      warmup.signature_name = ReadStringField(reader.ReadBytes(), 3);
    } else if (reader.field() == 2) {
      auto [name, proto] = ReadMapEntry(reader.ReadBytes());
      warmup.inputs[name] = TensorFromProto(proto, what + ", input '" + name + "'");
    } else {
      reader.Skip();
    }
  }
  if (warmup.signature_name.empty()) warmup.signature_name = "serving_default";
  return warmup;
}

}  // namespace

std::vector<WarmupRequest> ReadWarmupRequests(const std::string& export_dir) {
  namespace fs = std::filesystem;
  std::string path = (fs::path(export_dir) / "assets.extra" / "tf_serving_warmup_requests").string();
  std::vector<WarmupRequest> requests;
  std::error_code error;
  if (!fs::exists(path, error)) return requests;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path);
  // A TFRecord: the record's length (little-endian uint64) and its CRC (4 bytes), the
  // record, its CRC (4 bytes).
  uint64_t length;
  while (in.read(reinterpret_cast<char*>(&length), sizeof(length))) {
    std::string what = path + ": record " + std::to_string(requests.size());
    in.ignore(4);
    std::string record = ReadString(in, length, path);
    in.ignore(4);
    if (!in) throw Error("truncated " + what);
    requests.push_back(ReadPredictLog(record, what));
  }
  return requests;
}

std::string FindVersionFolder(const std::string& export_base) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::is_directory(export_base, error)) throw Error("no export folder at " + export_base);
  std::string best;
  long long best_version = -1;
  for (const auto& entry : fs::directory_iterator(export_base, error)) {
    std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (!fs::exists(entry.path() / "saved_model.pb", error)) continue;
    long long version = std::stoll(name);
    if (version > best_version) best_version = version, best = entry.path().string();
  }
  if (best.empty()) throw Error("no SavedModel version folder (<number>/saved_model.pb) in " + export_base);
  return best;
}

}  // namespace rules_keras
