"""The export's settings: one table for the rule, the exporter and the Python request.

Each setting has one name. It is the keras_saved_model attribute (for settings a user
sets), the exporter's flag (`--name`) and the field of `export.lib.api.ExportRequest`.
Starlark loads SETTINGS to declare the rule's attributes and pass them to the exporter
(rules/private/keras_saved_model.bzl); Python reads this file as a literal to define
the absl flags and ExportRequest (export/lib/settings.py). So it holds only literals.

Keys of each entry:
  name: the setting's one name.
  type: "string", "label" (a file; a path on the command line), "bool", "int", "float",
    "string_list" (a comma-separated flag), "string_dict" (a repeatable `--name=KEY=VALUE`
    flag), "path_list" (a repeatable `--name=PATH` flag).
  default: the value when unset (None: not set).
  doc: what it means, for the attribute's doc, the flag's help and the field.
  set_by: who sets it:
    "user": an attribute of keras_saved_model, a flag, a field of ExportRequest;
    "rule": a flag and a field that keras_saved_model fills itself;
    "program": a flag of the exporter program only (how it runs, not what it exports);
    "library": a field of ExportRequest only.
  allow_files: for "label" settings, the file extensions the attribute takes.
  flag_type: the flag's type where it differs from `type` (the exporter's version also
    takes `timestamp`, which the rule passes for its `stamp`); the request's field then
    takes either.
  flag_by_rule: True for a setting a user sets whose flag the rule passes itself,
    not as the attribute's value (the version: the rule's `stamp` may replace it).

Besides the table, the facts of the SavedModel that Starlark and Python both need.
"""

# The exporter's modes, in its order, and the signature each one writes
# (serving_default is the serving signature of every format: TFLite converts it;
# export/lib/signatures.py's SIGNATURE_KEYS, which surface_test pins to it).
SIGNATURE_OF_MODE = {"serve": "serving_default", "eval": "eval", "train": "train"}

# The signatures `eval` adds after the modes' own, to evaluate a data set batch by batch
# (export/lib/evaluation.py's DATA_SET_KEYS; surface_test pins the two).
DATA_SET_SIGNATURES = ["eval_state", "eval_result"]

# TF Serving reads at most this many warmup records (the `warmup_requests` limit).
MAX_WARMUP_REQUESTS = 1000

SETTINGS = [
    {
        "name": "builder",
        "type": "string",
        "default": None,
        "doc": "`\"package.module:function\"`: a function taking no arguments and " +
               "returning a keras.Model, compiled or not (compile it with a loss and an " +
               "optimizer to get the eval and train signatures). Exactly one of " +
               "`builder` and `src`.",
        "set_by": "user",
    },
    {
        "name": "src",
        "type": "label",
        "default": None,
        "doc": "A `.keras` model file written by model.save() (legacy `.h5` on a best " +
               "effort basis). Exactly one of `builder` and `src`.",
        "set_by": "user",
        "allow_files": [".keras", ".h5"],
    },
    {
        "name": "weights",
        "type": "label",
        "default": None,
        "doc": "A `.weights.h5` file (model.save_weights()) loaded into the model once " +
               "it is built; its layers and shapes must match.",
        "set_by": "user",
        "allow_files": [".h5"],
    },
    {
        "name": "custom_objects",
        "type": "string_dict",
        "default": {},
        "doc": "Name to `\"package.module:symbol\"` for the classes and functions the " +
               "model's config names but Keras does not know (unregistered custom " +
               "layers, losses, metrics). The name is the class name (`MyLayer`) or the " +
               "registered name (`my_package>MyLayer`).",
        "set_by": "user",
    },
    {
        "name": "modes",
        "type": "string_list",
        "default": [],
        "doc": "Among `serve`, `eval` (needs a compiled loss, a compute_loss or a " +
               "test_step of the model's own; also writes `eval_state` and " +
               "`eval_result`, to evaluate a data set batch by batch) and `train` (needs an optimizer, and a " +
               "compiled loss, a compute_loss or a train_step of the model's own); " +
               "`serve` is always written. Empty: every mode the model supports; a mode " +
               "the model cannot do is an error.",
        "set_by": "user",
    },
    {
        "name": "label_specs",
        "type": "string_dict",
        "default": {},
        "doc": "Output name to `\"SHAPE:DTYPE\"` (e.g. `\"None,10:float32\"`, " +
               "`\"None:int64\"`; SHAPE is comma-separated dims, None for unknown ones) of " +
               "the `<output>_target` input of the eval and train signatures. Unset " +
               "outputs: sparse losses take int64 class ids shaped like the output " +
               "without its last dimension, other losses labels shaped and typed like " +
               "the output; without a compiled loss, the first of those forms (or the " +
               "inputs alone, as fit(x)) the model's own step runs on. Each label also " +
               "takes its shape with a trailing 1 more or less where Keras gives the " +
               "same numbers for both (docs/rules.md, Labels).",
        "set_by": "user",
    },
    {
        "name": "input_specs",
        "type": "string_dict",
        "default": {},
        "doc": "Input name to `\"SHAPE:DTYPE\"`, spelled as in `label_specs` (e.g. " +
               "`\"None:string\"`), for inputs the exporter cannot know: a subclassed " +
               "model records the shapes it was called on, not their dtypes, so its " +
               "inputs are taken as float32 of those shapes unless declared here. The " +
               "names are those of the serving signature: `input_1` for a call() " +
               "taking one tensor, the keys of a dict, `input_1`, `input_2`... of a " +
               "list, and the parameter names of a call() taking several tensors " +
               "(`call(self, x, y)`: `x` and `y`). Used by every signature, the eval " +
               "and train probes and verify; a declared shape must agree with the " +
               "recorded one (None matches any size).",
        "set_by": "user",
    },
    {
        "name": "as_text",
        "type": "bool",
        "default": False,
        "doc": "Write `saved_model.pbtxt` (text proto) instead of `saved_model.pb`.",
        "set_by": "user",
    },
    {
        "name": "version",
        "type": "int",
        "flag_type": "string",
        "default": 1,
        "doc": "The version folder under the output folder, 0 or more (TF Serving " +
               "orders versions numerically). The exporter also takes `timestamp`: the " +
               "seconds since the epoch, from workspace_status_file when given, else " +
               "from the clock (the rule's `stamp`).",
        "set_by": "user",
        "flag_by_rule": True,
    },
    {
        "name": "seed",
        "type": "int",
        "default": 0,
        "doc": "Random seed set with keras.utils.set_random_seed before the model is " +
               "built (weight initialisation); also seeds the verification inputs and " +
               "the warmup requests.",
        "set_by": "user",
    },
    {
        "name": "allow_unsafe_deserialization",
        "type": "bool",
        "default": False,
        "doc": "Load a `src` holding Python code (Lambda layers), which runs when the " +
               "file is loaded; such files are refused otherwise.",
        "set_by": "user",
    },
    {
        "name": "verify",
        "type": "bool",
        "default": True,
        "doc": "Reload the written SavedModel and compare its serving outputs with the " +
               "Keras model's on seeded inputs (string inputs get tokens of the model's " +
               "own vocabularies, unknown dimensions the first of 32, 16, 8, 4, 2, 1 the " +
               "model accepts); fail beyond 1e-5 absolute + 1e-5 relative.",
        "set_by": "user",
    },
    {
        "name": "warmup_requests",
        "type": "int",
        "default": 0,
        "doc": "Write this many TF Serving warmup requests (0 to 1000, TF Serving's " +
               "limit) into `<version>/assets.extra/tf_serving_warmup_requests`: a " +
               "TFRecord file of `PredictionLog`s, each a `PredictRequest` of one example " +
               "on `serving_default`, from the seeded sample inputs verify uses (request " +
               "i from seed + i). TF Serving runs them when it loads the version, before " +
               "taking traffic. 0: no file.",
        "set_by": "user",
    },
    {
        "name": "require_batchable_inputs",
        "type": "bool",
        "default": False,
        "doc": "Fail the export when an input of a signature has no dynamic leading " +
               "(batch) dimension, which TF Serving's batcher needs to batch requests " +
               "together. False: such an input is a warning.",
        "set_by": "user",
    },
    {
        "name": "output_dir",
        "type": "string",
        "default": None,
        "doc": "Folder that receives the version folder; it may exist (empty or holding " +
               "other versions). The version folder is written under a temporary name " +
               "and renamed when complete; an existing one is never overwritten.",
        "set_by": "rule",
    },
    {
        "name": "manifest_out",
        "type": "string",
        "default": None,
        "doc": "Path of a JSON file (sorted keys) describing the export: version, " +
               "source and each signature's inputs and outputs with shape and dtype.",
        "set_by": "rule",
    },
    {
        "name": "workspace_status_file",
        "type": "string",
        "default": None,
        "doc": "Bazel's volatile status file: with version `timestamp`, its " +
               "BUILD_TIMESTAMP line gives the version.",
        "set_by": "rule",
    },
    {
        "name": "verify_atol",
        "type": "float",
        "default": 1e-5,
        "doc": "The absolute tolerance of verify.",
        "set_by": "library",
    },
    {
        "name": "verify_rtol",
        "type": "float",
        "default": 1e-5,
        "doc": "The relative tolerance of verify.",
        "set_by": "library",
    },
    {
        "name": "import_path",
        "type": "path_list",
        "default": [],
        "doc": "Folders put first on the Python path, in order, before the builder and " +
               "custom objects are imported (keras_saved_model passes its deps' roots).",
        "set_by": "program",
    },
    {
        "name": "quiet",
        "type": "bool",
        "default": False,
        "doc": "Print nothing on success (the Bazel convention for actions); on " +
               "failure, print everything the export printed.",
        "set_by": "program",
    },
    {
        "name": "target_label",
        "type": "string",
        "default": None,
        "doc": "The target running this program (a keras_saved_model, or for the " +
               "TFLite converter a keras_tflite_model): errors then name it and its " +
               "attributes instead of this program's flags.",
        "set_by": "program",
    },
    {
        "name": "persistent_worker",
        "type": "bool",
        "default": False,
        "doc": "Serve Bazel's persistent worker requests: import TensorFlow once, then " +
               "run each request (a list of flags) in a forked child.",
        "set_by": "program",
    },
    {
        "name": "worker_request_timeout",
        "type": "float",
        "default": 3600.0,
        "doc": "With persistent_worker: seconds after which a request's child is killed.",
        "set_by": "program",
    },
]
