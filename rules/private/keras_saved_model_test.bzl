"""Implementation of keras_saved_model_test: a py_test that checks an export."""

load(":artifact_rule.bzl", "artifact_test")
load(":keras_saved_model.bzl", "SAVED_MODEL_FORMAT")

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
    checker = str(Label("//cc:saved_model_checker"))
    args = ["--checker=$(rootpath %s)" % checker]
    data = [checker]
    if golden:
        args.append("--golden=$(rootpath %s)" % golden)
        data.append(golden)
    args.extend(["--expect_signature=%s" % signature for signature in signatures])
    if tolerance != None:
        args.append("--tolerance=%s" % tolerance)
    artifact_test(
        name,
        SAVED_MODEL_FORMAT,
        saved_model,
        args = args,
        data = data,
        deps = deps,
        srcs = [Label("//rules/private:tensors_file.py")],
        **kwargs
    )
