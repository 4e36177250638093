"""Public API of rules_keras: Keras models as TensorFlow SavedModel and TFLite build artifacts.

    load("@rules_keras//rules:defs.bzl", "keras_saved_model", "keras_saved_model_test")
    load("@rules_keras//rules:defs.bzl", "keras_model_eval_test")
    load("@rules_keras//rules:defs.bzl", "keras_tflite_model", "keras_tflite_model_test")
    load("@rules_keras//rules:defs.bzl", "keras_onnx_model", "keras_onnx_model_test")

Each symbol is documented where it is defined, under rules/private/ (the core) and
formats/<format>/ (each converted format), and in docs/rules.md.
"""

load("//formats/onnx:keras_onnx_model.bzl", _OnnxModelInfo = "OnnxModelInfo", _keras_onnx_model = "keras_onnx_model")
load("//formats/onnx:keras_onnx_model_test.bzl", _keras_onnx_model_test = "keras_onnx_model_test")
load("//formats/tflite:keras_tflite_model.bzl", _TfliteModelInfo = "TfliteModelInfo", _keras_tflite_model = "keras_tflite_model")
load("//formats/tflite:keras_tflite_model_test.bzl", _keras_tflite_model_test = "keras_tflite_model_test")
load("//rules/private:keras_model_eval_test.bzl", _keras_model_eval_test = "keras_model_eval_test")
load("//rules/private:keras_saved_model.bzl", _keras_saved_model = "keras_saved_model")
load("//rules/private:keras_saved_model_test.bzl", _keras_saved_model_test = "keras_saved_model_test")
load("//rules/private:providers.bzl", _SavedModelInfo = "SavedModelInfo")

keras_saved_model = _keras_saved_model
keras_model_eval_test = _keras_model_eval_test
keras_saved_model_test = _keras_saved_model_test
SavedModelInfo = _SavedModelInfo
keras_tflite_model = _keras_tflite_model
keras_tflite_model_test = _keras_tflite_model_test
TfliteModelInfo = _TfliteModelInfo
keras_onnx_model = _keras_onnx_model
keras_onnx_model_test = _keras_onnx_model_test
OnnxModelInfo = _OnnxModelInfo
