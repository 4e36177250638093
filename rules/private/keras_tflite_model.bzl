"""Implementation of keras_tflite_model: one build action converts an export to TFLite."""

load("//export:tflite_settings.bzl", "TFLITE_SETTINGS")
load(
    ":artifact_rule.bzl",
    "ArtifactInfo",
    "artifact_format",
    "artifact_library",
    "artifact_rule",
    "program_arguments",
    "run_program",
    "setting_doc",
)
load(":providers.bzl", "SavedModelInfo", "TfliteModelInfo")

# Its settings table is export/tflite_settings.bzl; its program //export:tflite_converter.
TFLITE_FORMAT = artifact_format("keras_tflite_model", TFLITE_SETTINGS)

def _keras_tflite_model_impl(ctx):
    export = ctx.attr.saved_model[SavedModelInfo]
    tflite = ctx.actions.declare_file(ctx.label.name + ".tflite")
    manifest = ctx.actions.declare_file(ctx.label.name + ".tflite.json")

    args, _ = program_arguments(ctx, TFLITE_FORMAT)
    args.add(export.base_dir.path, format = "--saved_model=%s")
    args.add(tflite, format = "--tflite_out=%s")
    args.add(manifest, format = "--tflite_manifest_out=%s")
    run_program(
        ctx,
        TFLITE_FORMAT,
        args,
        inputs = [export.base_dir],
        outputs = [tflite, manifest],
        progress_message = "Converting %s to TFLite" % ctx.attr.saved_model.label,
    )
    supported_ops = ["TFLITE_BUILTINS"]
    if ctx.attr.allow_select_tf_ops:
        supported_ops.append("SELECT_TF_OPS")
    made_from = ctx.attr.saved_model[ArtifactInfo]
    return [
        DefaultInfo(
            files = depset([tflite]),
            runfiles = ctx.runfiles(files = [tflite, manifest]),
        ),
        TfliteModelInfo(
            tflite = tflite,
            manifest = manifest,
            optimization = ctx.attr.optimization,
            supported_ops = supported_ops,
            saved_model = export,
        ),
        ArtifactInfo(
            format = TFLITE_FORMAT.name,
            files = {"manifest": manifest, "saved_model": export.base_dir, "tflite": tflite},
            runfiles = ctx.runfiles(files = [tflite, manifest]).merge(made_from.runfiles),
            library = made_from.library,
        ),
        OutputGroupInfo(manifest = depset([manifest])),
    ]

keras_tflite_model_rule = artifact_rule(
    TFLITE_FORMAT,
    implementation = _keras_tflite_model_impl,
    doc = "Converts a keras_saved_model export's serving_default signature to " +
          "`<name>.tflite` in one build action. Use the keras_tflite_model macro.",
    attrs = {
        "saved_model": attr.label(
            mandatory = True,
            providers = [SavedModelInfo, ArtifactInfo],
            doc = setting_doc(TFLITE_FORMAT, "saved_model"),
        ),
    },
)

def keras_tflite_model(name, saved_model, visibility = None, tags = None, testonly = None, **kwargs):
    """Converts a keras_saved_model export to a TFLite model in one build action.

    The output is `<name>.tflite`, the export's `serving_default` signature converted
    with `tf.lite.TFLiteConverter.from_saved_model`, byte-identical for the same export
    and attributes, and `<name>.tflite.json` (output group `manifest`) describing it.
    Provides `DefaultInfo` (the .tflite file) and `TfliteModelInfo`.

    Besides `<name>`, the macro makes `<name>.deps`, the export's `.deps` library
    (forwarded), which keras_tflite_model_test uses to rebuild the Keras model's sample
    inputs. The action runs the shared `@rules_keras//export:tflite_converter`, as a
    persistent worker by default (`--strategy=KerasTfliteModel=sandboxed` turns
    workers off).

    Args:
      name: the target, and the name of the `.tflite` file.
      saved_model: a keras_saved_model target.
      visibility: as usual, also applied to the `<name>.deps` library.
      tags: as usual, also applied to the `<name>.deps` library.
      testonly: as usual, also applied to the `<name>.deps` library.
      **kwargs: the attributes of the rule, each documented once, in
        export/tflite_settings.bzl and docs/rules.md (`optimization`,
        `allow_select_tf_ops`), and Bazel's common attributes.
    """
    artifact_library(
        name = name + ".deps",
        target = saved_model,
        visibility = visibility,
        tags = tags,
        testonly = testonly,
    )
    keras_tflite_model_rule(
        name = name,
        saved_model = saved_model,
        visibility = visibility,
        tags = tags,
        testonly = testonly,
        **kwargs
    )
