"""Implementation of keras_tflite_model: one build action converts an export to TFLite."""

load("//export:tflite_settings.bzl", "TFLITE_SETTINGS")
load(":actions.bzl", "ACTION_ENV", "add_flag", "attribute", "deps_of", "display_label")
load(":providers.bzl", "SavedModelInfo", "TfliteModelInfo")

# The settings a user sets: each is an attribute of the same name, type and doc, passed
# to the converter as the flag of that name (export/tflite_settings.bzl).
_ATTRIBUTE_SETTINGS = [s for s in TFLITE_SETTINGS if s["set_by"] == "user"]

# Passed by _keras_tflite_model_impl itself: a keras_saved_model target, not a file.
_PASSED_BY_HAND = ["saved_model"]

def _keras_tflite_model_impl(ctx):
    export = ctx.attr.saved_model[SavedModelInfo]
    tflite = ctx.actions.declare_file(ctx.label.name + ".tflite")
    manifest = ctx.actions.declare_file(ctx.label.name + ".tflite.json")

    args = ctx.actions.args()

    # Flags go through a file, as Bazel's persistent workers require.
    args.use_param_file("--flagfile=%s", use_always = True)
    args.set_param_file_format("multiline")
    args.add(export.base_dir.path, format = "--saved_model=%s")
    for setting in _ATTRIBUTE_SETTINGS:
        if setting["name"] not in _PASSED_BY_HAND:
            add_flag(args, setting, getattr(ctx.attr, setting["name"]))
    args.add(tflite, format = "--tflite_out=%s")
    args.add(manifest, format = "--tflite_manifest_out=%s")
    args.add("--quiet")

    # Errors then speak of this target's attributes, not of the converter's flags.
    args.add(display_label(ctx.label), format = "--target_label=%s")

    ctx.actions.run(
        executable = ctx.executable._converter,
        arguments = [args],
        inputs = [export.base_dir],
        outputs = [tflite, manifest],
        env = ACTION_ENV,
        mnemonic = "KerasTfliteModel",
        progress_message = "Converting %s to TFLite" % ctx.attr.saved_model.label,
        execution_requirements = {
            # Sandboxed without network: a conversion reads only the SavedModel.
            "block-network": "",
            # As for KerasSavedModel: TensorFlow imported once, a fresh fork per
            # request. --strategy=KerasTfliteModel=sandboxed turns it off.
            "supports-workers": "1",
        },
    )
    supported_ops = ["TFLITE_BUILTINS"]
    if ctx.attr.allow_select_tf_ops:
        supported_ops.append("SELECT_TF_OPS")
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
        OutputGroupInfo(manifest = depset([manifest])),
    ]

keras_tflite_model_rule = rule(
    implementation = _keras_tflite_model_impl,
    doc = "Converts a keras_saved_model export's serving_default signature to " +
          "`<name>.tflite` in one build action. Use the keras_tflite_model macro.",
    attrs = dict(
        {
            setting["name"]: attribute(setting, "keras_tflite_model")
            for setting in _ATTRIBUTE_SETTINGS
            if setting["name"] not in _PASSED_BY_HAND
        },
        saved_model = attr.label(
            mandatory = True,
            providers = [SavedModelInfo],
            doc = [s for s in TFLITE_SETTINGS if s["name"] == "saved_model"][0]["doc"],
        ),
        _converter = attr.label(
            default = Label("//export:tflite_converter"),
            executable = True,
            cfg = "exec",
        ),
    ),
)

def keras_tflite_model(name, saved_model, visibility = None, tags = None, testonly = None, **kwargs):
    """Converts a keras_saved_model export to a TFLite model in one build action.

    The output is `<name>.tflite`, the export's `serving_default` signature converted
    with `tf.lite.TFLiteConverter.from_saved_model`, byte-identical for the same export
    and attributes, and `<name>.tflite.json` (output group `manifest`) describing it.
    Provides `DefaultInfo` (the .tflite file) and `TfliteModelInfo`.

    Besides `<name>`, the macro makes `<name>.deps`, an alias of the export's `.deps`
    library, which keras_tflite_model_test uses to rebuild the Keras model's sample
    inputs. The action runs the shared `@rules_keras//export:tflite_converter`, as a
    persistent worker by default (`--strategy=KerasTfliteModel=sandboxed` turns
    workers off).

    Args:
      name: the target, and the name of the `.tflite` file.
      saved_model: a keras_saved_model target.
      visibility: as usual, also applied to the `<name>.deps` alias.
      tags: as usual, also applied to the `<name>.deps` alias.
      testonly: as usual, also applied to the `<name>.deps` alias.
      **kwargs: the attributes of the rule, each documented once, in
        export/tflite_settings.bzl and docs/rules.md (`optimization`,
        `allow_select_tf_ops`), and Bazel's common attributes.
    """
    native.alias(
        name = name + ".deps",
        actual = deps_of(saved_model),
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
