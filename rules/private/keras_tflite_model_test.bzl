"""Implementation of keras_tflite_model_test: a py_test that checks a TFLite model."""

load(":actions.bzl", "deps_of")
load(":providers.bzl", "TfliteModelInfo")
load(":py.bzl", "py_test")

def _tflite_files_impl(ctx):
    info = ctx.attr.tflite_model[TfliteModelInfo]
    export = info.saved_model
    paths = ctx.actions.declare_file(ctx.label.name + ".json")
    ctx.actions.write(paths, json.encode({
        "manifest": info.manifest.short_path,
        "saved_model": export.base_dir.short_path,
        "tflite": info.tflite.short_path,
    }))
    files = [paths, info.tflite, info.manifest, export.base_dir, export.signatures, export.export_info]
    files += [f for f in [export.src, export.weights] if f]
    return [DefaultInfo(files = depset([paths]), runfiles = ctx.runfiles(files = files))]

# The .tflite file, its manifest and the export it came from (with the `src` and
# `weights` the test rebuilds the Keras model from), and a JSON of their runfiles paths:
# the test's --tflite_files. (The zoo's checks take it too.)
tflite_files = rule(
    implementation = _tflite_files_impl,
    attrs = {"tflite_model": attr.label(mandatory = True, providers = [TfliteModelInfo])},
)

def keras_tflite_model_test(name, tflite_model, tolerance = None, deps = [], **kwargs):
    """A py_test that runs a keras_tflite_model in its own process and checks it.

    It checks that the TFLite interpreter's outputs on the export's own sample inputs
    (seeded, strings from the model's vocabularies, batch 3) equal the SavedModel's
    `serving_default` outputs within the optimization's bound, that the file's
    signature has the SavedModel's inputs and outputs, that the manifest describes
    the file, and that its weights are stored as the optimization stores them (float16
    with DEQUANTIZE ops, int8 for dynamic_range's large weights; docs/rules.md). A model with TensorFlow ops (`allow_select_tf_ops`) fails it: the Python
    interpreter here has no Flex delegate to run them.

    Args:
      name: the test.
      tflite_model: label of a keras_tflite_model target.
      tolerance: largest difference allowed, as a fraction of each output's largest
        magnitude (at least 1); default by `optimization`: `none` 1e-5,
        `float16` 5e-3, `dynamic_range` 5e-2 (docs/rules.md says why).
      deps: extra py_library deps for the test (the export's own deps are included).
      **kwargs: passed to py_test (size, tags, timeout, ...).
    """
    tflite_files(
        name = name + ".files",
        tflite_model = tflite_model,
        testonly = True,
        tags = kwargs.get("tags"),
        visibility = ["//visibility:private"],
    )
    args = ["--tflite_files=$(rootpath :%s.files)" % name]
    if tolerance != None:
        args.append("--tflite_tolerance=%s" % tolerance)
    py_test(
        name = name,
        srcs = [
            Label("//rules/private:export_info.py"),
            Label("//rules/private:keras_tflite_model_test_main.py"),
        ],
        main = Label("//rules/private:keras_tflite_model_test_main.py"),
        args = args,
        data = [":%s.files" % name],
        deps = [deps_of(tflite_model), Label("//export:lib")] + deps,
        **kwargs
    )
