"""Converts a SavedModel's serving_default signature to an ONNX file (keras_onnx_model).

Usage:
  onnx_converter --export=EXPORT_DIR --onnx_out=model.onnx [--opset=17]
      [--onnx_manifest_out=model.onnx.json]

The same SavedModel, opset and packages give the same bytes (export/lib/onnx_model.py
says what it takes). Bad input exits with status 1 and a one-paragraph message on stderr
naming the flag; nothing is written. The flags are keras_onnx_model's attributes, with
the same names and meanings (export/onnx_settings.bzl). Needs tf2onnx and onnx
(export/lib/packages.py), imported when a conversion runs.
"""

import sys

from export.lib import program

program.prepare("onnx_converter")

from absl import flags

from export.lib import settings
from export.lib.errors import ExportError

# One flag per setting of export/onnx_settings.bzl, and the exporter's program flags.
_FLAGS = program.define_flags("onnx_converter")
flags.adopt_module_key_flags(settings)


def _convert(notes: list[str]) -> int:
    """One conversion from the parsed flags; returns the process exit code."""
    missing = [n for n in ("export", "onnx_out") if not _FLAGS[n].value]
    try:
        if missing:
            raise ExportError(
                tuple(missing),
                "no SavedModel to convert or no file to write",
                "give both",
            )
        from export.lib import onnx_model

        model = onnx_model.convert(_FLAGS["export"].value, _FLAGS["opset"].value)
        onnx_model.write(
            model, _FLAGS["onnx_out"].value, _FLAGS["onnx_manifest_out"].value
        )
    except ExportError as e:
        print(
            f"onnx_converter: error: {e.render(_FLAGS['target_label'].value)}",
            file=sys.stderr,
        )
        return 1
    print(
        f"onnx_converter: wrote {_FLAGS['onnx_out'].value} ({len(model.content)}"
        f" bytes, opset {model.opset}, {len(model.ops)} ops)",
        file=sys.stderr,
    )
    return 0


def _warm_up() -> None:
    # tf2onnx imports TensorFlow and onnx: once in a persistent worker, never run.
    # Without tf2onnx the request itself names the missing package.
    try:
        import tf2onnx  # noqa: F401 - imported to warm up
    except ImportError:
        import tensorflow  # noqa: F401 - imported to warm up


if __name__ == "__main__":
    program.run("onnx_converter", _FLAGS, _convert, _warm_up)
