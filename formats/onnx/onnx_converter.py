"""Converts a SavedModel's serving_default signature to an ONNX file (keras_onnx_model).

Usage:
  onnx_converter --export=EXPORT_DIR --onnx_out=model.onnx [--opset=17]
      [--onnx_manifest_out=model.onnx.json]

The same SavedModel, opset and packages give the same bytes (formats/onnx/onnx_model.py
says what it takes). Bad input exits with status 1 and a one-paragraph message on stderr
naming the flag; nothing is written. The flags are keras_onnx_model's attributes, with
the same names and meanings (formats/onnx/settings.bzl). Needs tf2onnx and onnx
(export/lib/packages.py), imported when a conversion runs.
"""

from export.lib import program

program.prepare("onnx_converter")

from absl import flags

from export.lib import settings

# One flag per setting of formats/onnx/settings.bzl, and the exporter's program flags.
_FLAGS = program.define_flags("onnx_converter")
flags.adopt_module_key_flags(settings)


def _convert(notes: list[str]) -> int:
    """One conversion from the parsed flags; returns the process exit code."""
    return program.convert("onnx_converter", _FLAGS, ("export", "onnx_out"), _write)


def _write() -> str:
    from formats.onnx import onnx_model

    model = onnx_model.convert(_FLAGS["export"].value, _FLAGS["opset"].value)
    onnx_model.write(model, _FLAGS["onnx_out"].value, _FLAGS["onnx_manifest_out"].value)
    return (
        f"{_FLAGS['onnx_out'].value} ({len(model.content)} bytes, opset"
        f" {model.opset}, {len(model.ops)} ops)"
    )


def _warm_up() -> None:
    # tf2onnx imports TensorFlow and onnx: once in a persistent worker, never run.
    # Without tf2onnx the request itself names the missing package.
    try:
        import tf2onnx  # noqa: F401 - imported to warm up
    except ImportError:
        import tensorflow  # noqa: F401 - imported to warm up


if __name__ == "__main__":
    program.run("onnx_converter", _FLAGS, _convert, _warm_up)
