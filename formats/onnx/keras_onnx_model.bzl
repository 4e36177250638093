"""Implementation of keras_onnx_model: one build action converts an export to ONNX."""

# A format's folder is rules_keras's own: it builds on the shared rule machinery.
# buildifier: disable=bzl-visibility
load(
    "//rules/private:artifact_rule.bzl",
    "artifact_format",
    "artifact_rule",
    "convert_export",
    "converted_artifact",
    "export_attribute",
)
load(":settings.bzl", "ONNX_SETTINGS")

# Its settings table is settings.bzl beside it; its program :onnx_converter.
ONNX_FORMAT = artifact_format("keras_onnx_model", ONNX_SETTINGS)

OnnxModelInfo = provider(
    doc = "An ONNX model converted from a keras_saved_model export by keras_onnx_model.",
    fields = {
        "onnx": "File: `<name>.onnx`, the converted serving_default signature.",
        "manifest": "File: `<name>.onnx.json`, written by the converter: the graph's " +
                    "`inputs` and `outputs` (the signature's names, to `dtype` and " +
                    "`shape`, None for any size), the `ops` it uses (op types, " +
                    "`<domain>.<op>` outside ONNX's default domain), `opset`, " +
                    "`signature` and `size` in bytes.",
        "opset": "int: the ONNX opset it is written for (the attribute).",
        "saved_model": "SavedModelInfo: the export it was converted from.",
    },
)

def _keras_onnx_model_impl(ctx):
    converted = convert_export(ctx, ONNX_FORMAT, "export", "onnx", "ONNX")
    return converted.providers + [
        OnnxModelInfo(
            onnx = converted.file,
            manifest = converted.manifest,
            opset = ctx.attr.opset,
            saved_model = converted.export,
        ),
    ]

keras_onnx_model_rule = artifact_rule(
    ONNX_FORMAT,
    implementation = _keras_onnx_model_impl,
    doc = "Converts a keras_saved_model export's serving_default signature to " +
          "`<name>.onnx` in one build action. Use the keras_onnx_model macro.",
    attrs = {"export": export_attribute(ONNX_FORMAT, "export")},
)

def keras_onnx_model(name, export, **kwargs):
    """Converts a keras_saved_model export to an ONNX model in one build action.

    The output is `<name>.onnx`, the export's `serving_default` signature converted
    with tf2onnx from the SavedModel (its inputs and outputs keep the signature's
    names), byte-identical for the same export and attributes, and `<name>.onnx.json`
    (output group `manifest`) describing it. Provides `DefaultInfo` (the .onnx file)
    and `OnnxModelInfo`. Needs the PyPI packages tf2onnx and onnx.

    Besides `<name>`, the macro makes `<name>.deps`, the export's `.deps` library
    (forwarded), which keras_onnx_model_test uses to rebuild the Keras model's sample
    inputs. The action runs the shared `@rules_keras//formats/onnx:onnx_converter`, as a
    persistent worker by default (`--strategy=KerasOnnxModel=sandboxed` turns workers
    off).

    Args:
      name: the target, and the name of the `.onnx` file.
      export: a keras_saved_model target.
      **kwargs: the attributes of the rule, each documented once, in
        formats/onnx/settings.bzl and docs/rules.md (`opset`), and Bazel's common
        attributes (`visibility`, `tags` and `testonly` also apply to `<name>.deps`).
    """
    converted_artifact(keras_onnx_model_rule, name, "export", export, **kwargs)
