"""The ONNX converter's settings: one table for keras_onnx_model and its program.

The same format as export/settings.bzl (its docstring says what each key means), read
the same way by Starlark (keras_onnx_model.bzl beside it) and by Python
(export/lib/settings.py defines the converter's flags). A name here is the
keras_onnx_model attribute and the converter's flag (`--name`); names are unique across
every table (keras_tflite_model has the `saved_model`), so the export to convert is
`export`. The converter's other flags (`--quiet`, `--target_label`, the persistent
worker's) are the exporter's program settings of export/settings.bzl.

ONNX_OPTIONAL_FEATURES: the PyPI packages keras_onnx_model and its test need beyond the
core, each a row of export/lib/packages.py's OPTIONAL_FEATURES (an OptionalFeature's
fields) by the name the code asks for it with (`packages.import_module("onnx",
"tf2onnx")`). A keras_onnx_model target asks for them by existing: nothing turns them
off (`off_value` None).
"""

ONNX_SETTINGS = [
    {
        "name": "export",
        "type": "label",
        "default": None,
        "doc": "The SavedModel to convert: a keras_saved_model target (on the command " +
               "line, its version folder). Its `serving_default` signature is converted.",
        "set_by": "user",
        "flag_by_rule": True,
    },
    {
        "name": "opset",
        "type": "int",
        "default": 17,
        "doc": "The ONNX opset the model is written for: 13 to 18, the opsets tf2onnx " +
               "1.17 writes. 17, the default, is the first with LayerNormalization " +
               "(a transformer's layer norms stay one op) and runs on onnxruntime 1.14 " +
               "(2023) or later; a lower one for an older runtime.",
        "set_by": "user",
    },
    {
        "name": "onnx_out",
        "type": "string",
        "default": None,
        "doc": "Path of the `.onnx` file to write.",
        "set_by": "rule",
    },
    {
        "name": "onnx_manifest_out",
        "type": "string",
        "default": None,
        "doc": "Path of a JSON file (sorted keys) describing the `.onnx` file: the " +
               "graph's inputs and outputs with dtype and shape, the ops it uses, its " +
               "opset and size.",
        "set_by": "rule",
    },
]

ONNX_OPTIONAL_FEATURES = {
    "onnx": {
        "what": "converting a SavedModel to ONNX",
        "setting": "export",
        "package": "tf2onnx",
        "module": "tf2onnx",
        "off_value": None,
    },
    "onnx_runtime": {
        "what": "running an ONNX model (keras_onnx_model_test)",
        "setting": "export",
        "package": "onnxruntime",
        "module": "onnxruntime",
        "off_value": None,
    },
}
