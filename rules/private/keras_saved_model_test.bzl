"""Implementation of keras_saved_model_test: a py_test that checks an export."""

load(":actions.bzl", "deps_of")
load(":providers.bzl", "SavedModelInfo")
load(":py.bzl", "py_test")

def _model_files_impl(ctx):
    info = ctx.attr.saved_model[SavedModelInfo]
    files = [f for f in [info.src, info.weights] if f]
    runfiles = ctx.runfiles(files = files).merge(ctx.attr.saved_model[DefaultInfo].default_runfiles)
    return [DefaultInfo(runfiles = runfiles)]

# The export's runfiles plus the `src` and `weights` it was made from, which the test
# rebuilds the Keras model from (the export's own runfiles leave them out).
_model_files = rule(
    implementation = _model_files_impl,
    attrs = {"saved_model": attr.label(mandatory = True, providers = [SavedModelInfo])},
)

def keras_saved_model_test(
        name,
        saved_model,
        golden = None,
        signatures = [],
        tolerance = None,
        deps = [],
        **kwargs):
    """A py_test that loads a keras_saved_model export in its own process and checks it.

    It checks that the expected signatures exist, that the serving outputs equal the
    Keras model's (rebuilt from the same builder or src, seed and weights) on seeded
    random inputs, or the outputs stored in `golden`, and that `load_keras_model`
    round-trips to the same predictions.

    Args:
      name: the test.
      saved_model: label of a keras_saved_model target.
      golden: optional `.npz` holding `input:<name>` and `output:<name>` arrays for
        the serving signature; its outputs are compared instead of the rebuilt model's.
      signatures: signature names that must exist, besides those the export lists.
      tolerance: max abs difference allowed (default 1e-5).
      deps: extra py_library deps for the test (the export's own deps are included).
      **kwargs: passed to py_test (size, tags, timeout, ...).
    """
    _model_files(
        name = name + ".model_files",
        saved_model = saved_model,
        testonly = True,
        tags = kwargs.get("tags"),
        visibility = ["//visibility:private"],
    )
    checker = str(Label("//cc:saved_model_checker"))
    args = [
        "--saved_model=$(rootpath %s)" % saved_model,
        "--checker=$(rootpath %s)" % checker,
    ]
    data = [saved_model, ":%s.model_files" % name, checker]
    if golden:
        args.append("--golden=$(rootpath %s)" % golden)
        data.append(golden)
    args.extend(["--expect_signature=%s" % signature for signature in signatures])
    if tolerance != None:
        args.append("--tolerance=%s" % tolerance)
    py_test(
        name = name,
        srcs = [
            Label("//rules/private:export_info.py"),
            Label("//rules/private:keras_saved_model_test_main.py"),
            Label("//rules/private:tensors_file.py"),
        ],
        main = Label("//rules/private:keras_saved_model_test_main.py"),
        args = args,
        data = data,
        deps = [deps_of(saved_model), Label("//export:lib")] + deps,
        **kwargs
    )
