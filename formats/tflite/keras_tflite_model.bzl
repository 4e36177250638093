"""Implementation of keras_tflite_model: one build action converts an export to TFLite."""

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
load(":settings.bzl", "TFLITE_SETTINGS")

# Its settings table is settings.bzl beside it; its program :tflite_converter.
TFLITE_FORMAT = artifact_format("keras_tflite_model", TFLITE_SETTINGS)

TfliteModelInfo = provider(
    doc = "A TFLite model converted from a keras_saved_model export by keras_tflite_model.",
    fields = {
        "tflite": "File: `<name>.tflite`, the converted serving_default signature.",
        "manifest": "File: `<name>.tflite.json`, written by the converter: the " +
                    "signature's `inputs` and `outputs` (name to `dtype` and `shape`, " +
                    "None for any size), the `ops` it uses (builtin names, and " +
                    "`Flex<Op>` for TensorFlow ops), `select_tf_ops` (those TensorFlow " +
                    "ops), `ops_sets` (`TFLITE_BUILTINS`, and `SELECT_TF_OPS` when it " +
                    "uses any), `optimization` and `size` in bytes.",
        "optimization": "string: `none`, `dynamic_range` or `float16` (the attribute).",
        "supported_ops": "list of string: the ops sets the conversion could use, " +
                         "`[\"TFLITE_BUILTINS\"]`, plus `\"SELECT_TF_OPS\"` with " +
                         "`allow_select_tf_ops`; `manifest` says which it did use.",
        "saved_model": "SavedModelInfo: the export it was converted from.",
    },
)

def _keras_tflite_model_impl(ctx):
    converted = convert_export(ctx, TFLITE_FORMAT, "saved_model", "tflite", "TFLite")
    supported_ops = ["TFLITE_BUILTINS"]
    if ctx.attr.allow_select_tf_ops:
        supported_ops.append("SELECT_TF_OPS")
    return converted.providers + [
        TfliteModelInfo(
            tflite = converted.file,
            manifest = converted.manifest,
            optimization = ctx.attr.optimization,
            supported_ops = supported_ops,
            saved_model = converted.export,
        ),
    ]

keras_tflite_model_rule = artifact_rule(
    TFLITE_FORMAT,
    implementation = _keras_tflite_model_impl,
    doc = "Converts a keras_saved_model export's serving_default signature to " +
          "`<name>.tflite` in one build action. Use the keras_tflite_model macro.",
    attrs = {"saved_model": export_attribute(TFLITE_FORMAT, "saved_model")},
)

def keras_tflite_model(name, saved_model, **kwargs):
    """Converts a keras_saved_model export to a TFLite model in one build action.

    The output is `<name>.tflite`, the export's `serving_default` signature converted
    with `tf.lite.TFLiteConverter.from_saved_model`, byte-identical for the same export
    and attributes, and `<name>.tflite.json` (output group `manifest`) describing it.
    Provides `DefaultInfo` (the .tflite file) and `TfliteModelInfo`.

    Besides `<name>`, the macro makes `<name>.deps`, the export's `.deps` library
    (forwarded), which keras_tflite_model_test uses to rebuild the Keras model's sample
    inputs. The action runs the shared `@rules_keras//formats/tflite:tflite_converter`, as a
    persistent worker by default (`--strategy=KerasTfliteModel=sandboxed` turns
    workers off).

    Args:
      name: the target, and the name of the `.tflite` file.
      saved_model: a keras_saved_model target.
      **kwargs: the attributes of the rule, each documented once, in
        formats/tflite/settings.bzl and docs/rules.md (`optimization`,
        `allow_select_tf_ops`), and Bazel's common attributes (`visibility`, `tags` and
        `testonly` also apply to `<name>.deps`).
    """
    converted_artifact(keras_tflite_model_rule, name, "saved_model", saved_model, **kwargs)
