"""The TFLite converter's settings: one table for keras_tflite_model and its program.

The same format as export/settings.bzl (its docstring says what each key means), read
the same way by Starlark (keras_tflite_model.bzl beside it declares the attributes
and passes them) and by Python (export/lib/settings.py defines the converter's flags).
A name here is the keras_tflite_model attribute and the converter's flag (`--name`);
names are unique across both tables, so an error names either kind of setting.
`values`, where given, lists the values a string setting takes; `flag_by_rule` marks
the `saved_model` attribute, a target whose version folder the rule passes itself. The converter's other
flags (`--quiet`, `--target_label`, the persistent worker's) are the exporter's
program settings of export/settings.bzl.
"""

TFLITE_SETTINGS = [
    {
        "name": "saved_model",
        "type": "label",
        "default": None,
        "doc": "The SavedModel to convert: a keras_saved_model target (on the command " +
               "line, its version folder). Its `serving_default` signature is converted.",
        "set_by": "user",
        "flag_by_rule": True,
    },
    {
        "name": "optimization",
        "type": "string",
        "default": "none",
        "values": ["none", "dynamic_range", "float16"],
        "doc": "`none`: float32 weights and arithmetic, as the SavedModel; " +
               "`dynamic_range`: weights of 1024 elements or more stored as int8 and " +
               "activations quantized on the fly (about 4x smaller); `float16`: weights " +
               "stored as float16 (about 2x smaller), arithmetic in float32.",
        "set_by": "user",
    },
    {
        "name": "allow_select_tf_ops",
        "type": "bool",
        "default": False,
        "doc": "Let TensorFlow ops run where TFLite's builtin ops do not suffice " +
               "(SELECT_TF_OPS: the app must link TFLite's Flex delegate). Off: a model " +
               "that needs them fails to convert, naming the ops.",
        "set_by": "user",
    },
    {
        "name": "tflite_out",
        "type": "string",
        "default": None,
        "doc": "Path of the `.tflite` file to write.",
        "set_by": "rule",
    },
    {
        "name": "tflite_manifest_out",
        "type": "string",
        "default": None,
        "doc": "Path of a JSON file (sorted keys) describing the `.tflite` file: its " +
               "signature's inputs and outputs with dtype and shape, the ops it uses, " +
               "the TensorFlow ops among them and the optimization.",
        "set_by": "rule",
    },
]
