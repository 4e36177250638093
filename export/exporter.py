"""Exports a Keras 3 model to a TensorFlow SavedModel (serve, eval and train signatures).

Usage:
  exporter --builder=my_pkg.models:build --output_dir=out [--version=N|timestamp]
  exporter --model_file=model.keras --output_dir=out [--weights=w.weights.h5]

Writes OUTPUT_DIR/VERSION/ (saved_model.pb or .pbtxt, variables/, fingerprint.pb,
assets/saved_model.json), byte-identical for the same inputs and --seed. Bad input exits
with status 1 and a one-paragraph message on stderr naming the flag; nothing is written.
See --helpfull for every flag. Run one export per process.
"""

import gc
import os
import signal
import sys
import tempfile

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


_IMPORT_PATH = flags.DEFINE_multi_string(
    "import_path",
    [],
    "Repeatable folder added to the front of the Python path before the builder and"
    " custom objects are imported (keras_saved_model passes its deps' roots).",
)
_TARGET_LABEL = flags.DEFINE_string(
    "target_label",
    None,
    "The keras_saved_model target running this export (set by the rule): errors then"
    " name it and its attributes (label_specs = {...}) instead of this program's flags.",
)
_QUIET = flags.DEFINE_bool(
    "quiet",
    False,
    "Print nothing on success (the Bazel convention for actions); on failure, print"
    " everything the export printed, TensorFlow's logs included.",
)
_PERSISTENT_WORKER = flags.DEFINE_bool(
    "persistent_worker",
    False,
    "Run as a Bazel persistent worker: import TensorFlow once, then serve each"
    " WorkRequest (a list of the flags above) in a forked child. Set by Bazel.",
)
_WORKER_REQUEST_TIMEOUT = flags.DEFINE_float(
    "worker_request_timeout",
    3600,
    "With --persistent_worker: seconds after which a request's child is killed.",
)


def main(argv: list[str]) -> int:
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
    if _PERSISTENT_WORKER.value:
        return _serve_as_worker()
    # SystemExit unwinds through the library's cleanup, so a killed export (outside
    # Bazel) leaves no temporary folder behind.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return _export()


def _export() -> int:
    """One export from the parsed flags, its output held back under --quiet."""
    return _quietly(_export_from_flags) if _QUIET.value else _export_from_flags()


def _export_from_flags() -> int:
    """One export from the parsed flags; returns the process exit code."""
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
    # Front of the path, in the order given, as absolute paths: a worker's requests
    # come relative to its working directory.
    sys.path[:0] = [os.path.abspath(p) for p in _IMPORT_PATH.value]
    try:
        # Syntax first: bad flags fail before the seconds TensorFlow takes to import.
        resolved = options.resolve(request)
        from export.lib import api

        _freeze_imported_objects()
        result = api.export_resolved(resolved)
    except ExportError as e:
        print(f"exporter: error: {e.render(_TARGET_LABEL.value)}", file=sys.stderr)
        return 1
    detail = (
        ""
        if result.max_abs_diff is None
        else f", verified (max abs diff {result.max_abs_diff:g})"
    )
    phases = ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items())
    print(
        f"exporter: wrote {result.path} ({','.join(result.modes)}{detail}; {phases})",
        file=sys.stderr,
    )
    print(result.path)
    return 0


def _quietly(run) -> int:
    """Runs `run()` with stdout and stderr captured; replays them only if it fails."""
    with tempfile.TemporaryFile() as log:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            code = run()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        if code != 0:
            log.seek(0)
            sys.stderr.buffer.write(log.read())
            sys.stderr.flush()
    return code


def _serve_as_worker() -> int:
    # Import (never run) TensorFlow, Keras and the library in the worker itself, so each
    # forked request starts warm; running any op here would change every output.
    from export.lib import api, worker  # noqa: F401 - api: imported to warm up

    _freeze_imported_objects()
    return worker.serve(_run_request, _WORKER_REQUEST_TIMEOUT.value)


def _freeze_imported_objects() -> None:
    """Keeps the garbage collector off the millions of objects TensorFlow's import made.

    Keras's clear_session() runs gc.collect(), which otherwise walks them all (a tenth
    of a small export: bench/README.md); in the worker, forked children also stop
    touching (and so copying) the parent's pages.
    """
    gc.freeze()


def _run_request(arguments: list[str]) -> int:
    """Serves one WorkRequest in the worker's forked child: its flags, then the export."""
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS(["exporter", *arguments])
    except flags.Error as e:
        print(f"exporter: error: {e}", file=sys.stderr)
        return 1
    return _export()


def run(argv: list[str] | None = None) -> None:
    """The program: parses flags, exports, and exits without tearing TensorFlow down."""
    try:
        app.run(main, argv=argv)
    except SystemExit as e:
        # Everything is written and closed by now; the interpreter's teardown of
        # TensorFlow would only cost seconds per export (bench/README.md).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(e.code if isinstance(e.code, int) else int(e.code is not None))


if __name__ == "__main__":
    run()
