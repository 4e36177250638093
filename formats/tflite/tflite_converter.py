"""Converts a SavedModel's serving_default signature to a TFLite file (keras_tflite_model).

Usage:
  tflite_converter --saved_model=EXPORT_DIR --tflite_out=model.tflite
      [--optimization=none|dynamic_range|float16] [--allow_select_tf_ops]
      [--tflite_manifest_out=model.tflite.json]

The same SavedModel, options and TensorFlow give the same bytes (formats/tflite/tflite.py
says what it takes). Bad input exits with status 1 and a one-paragraph message on stderr
naming the flag; nothing is written. The flags are keras_tflite_model's attributes, with
the same names and meanings (formats/tflite/settings.bzl).
"""

from export.lib import program

program.prepare("tflite_converter")

from absl import flags

from export.lib import settings

# One flag per setting of formats/tflite/settings.bzl, and the exporter's program flags.
_FLAGS = program.define_flags("tflite_converter")
flags.adopt_module_key_flags(settings)


def _convert(notes: list[str]) -> int:
    """One conversion from the parsed flags; returns the process exit code."""
    return program.convert(
        "tflite_converter", _FLAGS, ("saved_model", "tflite_out"), _write
    )


def _write() -> str:
    from formats.tflite import tflite

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
    return (
        f"{_FLAGS['tflite_out'].value} ({len(model.content)} bytes, ops sets"
        f" {'+'.join(model.ops_sets)})"
    )


def _warm_up() -> None:
    # TensorFlow's converter, imported once in a persistent worker.
    from tensorflow.lite.python import lite  # noqa: F401 - imported to warm up


if __name__ == "__main__":
    program.run("tflite_converter", _FLAGS, _convert, _warm_up)
