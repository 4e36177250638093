"""Converts a SavedModel's serving_default signature to a TFLite file (keras_tflite_model).

Usage:
  tflite_converter --saved_model=EXPORT_DIR --tflite_out=model.tflite
      [--optimization=none|dynamic_range|float16] [--allow_select_tf_ops]
      [--tflite_manifest_out=model.tflite.json]

The same SavedModel, options and TensorFlow give the same bytes (export/lib/tflite.py
says what it takes). Bad input exits with status 1 and a one-paragraph message on stderr
naming the flag; nothing is written. The flags are keras_tflite_model's attributes, with
the same names and meanings (export/tflite_settings.bzl).
"""

import gc
import os
import signal
import sys

from export.lib import worker

# Before anything that can fail to import: a persistent worker that cannot start
# answers Bazel's requests with the cause instead of dying unexplained.
worker.explain_startup_failures("tflite_converter")

# TensorFlow's C++ info logs would bury the converter's own messages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging

from export.lib import program, settings
from export.lib.errors import ExportError

# One flag per setting of export/tflite_settings.bzl, and the exporter's program flags.
_FLAGS = settings.define_flags(flags.FLAGS, settings.CONVERTER_SETTINGS)
flags.adopt_module_key_flags(settings)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(
            f"tflite_converter: unexpected arguments {argv[1:]}; every input is a --flag"
            " (see --helpfull)",
            file=sys.stderr,
        )
        return 1
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    if _FLAGS["persistent_worker"].value:
        return _serve_as_worker()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return _convert()


def _convert() -> int:
    """One conversion from the parsed flags, its output held back under --quiet."""
    if _FLAGS["quiet"].value:
        return program.quietly(_convert_from_flags)
    return _convert_from_flags()


def _convert_from_flags() -> int:
    missing = [n for n in ("saved_model", "tflite_out") if not _FLAGS[n].value]
    try:
        if missing:
            raise ExportError(
                tuple(missing),
                "no SavedModel to convert or no file to write",
                "give both",
            )
        from export.lib import tflite

        model = tflite.convert(
            _FLAGS["saved_model"].value,
            _FLAGS["optimization"].value,
            _FLAGS["allow_select_tf_ops"].value,
        )
        tflite.write(
            model,
            _FLAGS["tflite_out"].value,
            _FLAGS["tflite_manifest_out"].value,
            optimization=_FLAGS["optimization"].value,
        )
    except ExportError as e:
        print(
            f"tflite_converter: error: {e.render(_FLAGS['target_label'].value)}",
            file=sys.stderr,
        )
        return 1
    print(
        f"tflite_converter: wrote {_FLAGS['tflite_out'].value} ({len(model.content)}"
        f" bytes, ops sets {'+'.join(model.ops_sets)})",
        file=sys.stderr,
    )
    return 0


def _serve_as_worker() -> int:
    # Import (never run) TensorFlow and the library in the worker itself, so each forked
    # request starts warm from the state of a fresh process.
    from tensorflow.lite.python import lite  # noqa: F401 - imported to warm up

    gc.freeze()
    return worker.serve(_run_request, _FLAGS["worker_request_timeout"].value)


def _run_request(arguments: list[str]) -> int:
    """Serves one WorkRequest in the worker's forked child: its flags, then converts."""
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS(["tflite_converter", *arguments])
    except flags.Error as e:
        print(f"tflite_converter: error: {e}", file=sys.stderr)
        return 1
    return _convert()


if __name__ == "__main__":
    program.run_and_exit(lambda: app.run(main))
