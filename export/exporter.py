"""Exports a Keras 3 model to a TensorFlow SavedModel (serve, eval and train signatures).

Usage:
  exporter --builder=my_pkg.models:build --output_dir=out [--version=N|timestamp]
  exporter --model_file=model.keras --output_dir=out [--weights=w.weights.h5]

Writes OUTPUT_DIR/VERSION/ (saved_model.pb or .pbtxt, variables/, fingerprint.pb,
assets/saved_model.json), byte-identical for the same inputs and --seed. Bad input exits
with status 1 and a one-paragraph message on stderr naming the flag; nothing is written.
See --helpfull for every flag. Run one export per process.
"""

import dataclasses
import os
import signal
import sys

# TensorFlow's C++ info logs would bury the exporter's own messages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging

from export.lib import options
from export.lib.errors import ExportError

_BUILDER = flags.DEFINE_string(
    "builder",
    None,
    "Model source (give this or --model_file): 'package.module:function', a function taking"
    " no arguments and returning a keras.Model, compiled or not. Compile it (loss,"
    " optimizer, metrics) to get the eval and train signatures.",
)
_MODEL_FILE = flags.DEFINE_string(
    "model_file",
    None,
    "Model source (give this or --builder): a .keras file written by model.save(). Legacy"
    " .h5 files are loaded on a best effort basis.",
)
_WEIGHTS = flags.DEFINE_string(
    "weights",
    None,
    "Optional .weights.h5 file (model.save_weights()) loaded into the built model; its"
    " layers and shapes must match.",
)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir",
    None,
    "Folder that receives the version folder OUTPUT_DIR/VERSION; it may already exist"
    " (empty or holding other versions). The version folder is written under a temporary"
    " name and renamed when complete; an existing one is never overwritten.",
)
_VERSION = flags.DEFINE_string(
    "version",
    "1",
    "Version folder name: a non-negative integer, or 'timestamp' for seconds since the"
    " epoch (taken from --workspace_status_file when given, else from the clock).",
)
_WORKSPACE_STATUS_FILE = flags.DEFINE_string(
    "workspace_status_file",
    None,
    "Bazel's volatile status file; with --version=timestamp its BUILD_TIMESTAMP line gives"
    " the version. Ignored for numeric versions.",
)
_CUSTOM_OBJECTS = flags.DEFINE_multi_string(
    "custom_objects",
    [],
    "Repeatable 'NAME=package.module:symbol': a class or function the model config refers"
    " to as NAME but Keras does not know (unregistered custom layers, losses, metrics).",
)
_AS_TEXT = flags.DEFINE_bool(
    "as_text",
    False,
    "Write saved_model.pbtxt (text proto) instead of the binary saved_model.pb.",
)
_MODES = flags.DEFINE_string(
    "modes",
    None,
    "Comma-separated subset of serve,eval,train. Default: every mode the model supports"
    " (serve always; eval when compiled with a loss; train when also compiled with an"
    " optimizer). serve is always included. Asking for a mode the model cannot do is an"
    " error.",
)
_SEED = flags.DEFINE_integer(
    "seed",
    0,
    "Random seed set with keras.utils.set_random_seed before building the model; also"
    " seeds the --verify inputs.",
)
_LABEL_SPEC = flags.DEFINE_multi_string(
    "label_spec",
    [],
    "Repeatable 'OUTPUT_NAME=SHAPE:DTYPE' giving the labels (<output>_target inputs) of"
    " the eval and train signatures, e.g. 'probs=None,10:float32' or 'probs=None:int64';"
    " SHAPE is comma-separated dims with None for unknown ones. Default, per output:"
    " sparse losses take int64 labels shaped like the output without its last dim; other"
    " losses take labels shaped and typed like the output.",
)
_SAFE_MODE = flags.DEFINE_bool(
    "safe_mode",
    True,
    "Refuse model files that contain Python code (Lambda layers), which would run when"
    " loaded. --nosafe_mode allows them for trusted files.",
)
_VERIFY = flags.DEFINE_bool(
    "verify",
    True,
    "Reload the written SavedModel and compare its serving outputs with the Keras model's"
    " on seeded random inputs; fail beyond the tolerance (1e-5 absolute + 1e-5 relative)."
    " --noverify skips this (it costs a SavedModel load).",
)
_MANIFEST_OUT = flags.DEFINE_string(
    "manifest_out",
    None,
    "Optional path of a JSON file (sorted keys) describing the export: version, source and"
    " each signature's inputs and outputs with shape and dtype.",
)


def main(argv: list[str]) -> int:
    # SystemExit unwinds through the library's cleanup, so a killed export (outside
    # Bazel) leaves no temporary folder behind.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if len(argv) > 1:
        print(
            f"exporter: unexpected arguments {argv[1:]}; every input is a --flag (see"
            " --helpfull)",
            file=sys.stderr,
        )
        return 1
    if not flags.FLAGS["verbosity"].present:
        # TensorFlow logs every save step at INFO; --verbosity=0 brings them back.
        logging.set_verbosity(logging.WARNING)
    request = options.ExportRequest(
        output_dir=_OUTPUT_DIR.value,
        builder=_BUILDER.value,
        model_file=_MODEL_FILE.value,
        weights=_WEIGHTS.value,
        version=_VERSION.value,
        workspace_status_file=_WORKSPACE_STATUS_FILE.value,
        custom_objects=_CUSTOM_OBJECTS.value,
        as_text=_AS_TEXT.value,
        modes=_MODES.value,
        seed=_SEED.value,
        label_specs=_LABEL_SPEC.value,
        safe_mode=_SAFE_MODE.value,
        verify=_VERIFY.value,
        manifest_out=_MANIFEST_OUT.value,
    )
    try:
        # Syntax first: bad flags fail before the seconds TensorFlow takes to import.
        resolved = options.resolve(request)
        # Read the clock once: a second resolve could land on the next second.
        request = dataclasses.replace(request, version=resolved.version)
        from export.lib import api

        result = api.export_with_result(request)
    except ExportError as e:
        print(f"exporter: error: {e}", file=sys.stderr)
        return 1
    detail = (
        ""
        if result.max_abs_diff is None
        else f", verified (max abs diff {result.max_abs_diff:g})"
    )
    print(
        f"exporter: wrote {result.path} ({','.join(result.modes)}{detail})",
        file=sys.stderr,
    )
    print(result.path)
    return 0


if __name__ == "__main__":
    app.run(main)
